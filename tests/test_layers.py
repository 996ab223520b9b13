"""The package layers (README "Layout"): an import only points down, including imports inside functions.

Read from the source with :mod:`ast` (nothing is imported), so a cycle hidden in a function body is caught
as surely as a top-level one.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parents[1] / "src"

#: Bottom to top. A module may import its own layer and any layer below it, never one above.
LAYERS: tuple[tuple[str, ...], ...] = (
    ("podm_cli", "errors", "atomic", "imageio", "metrics", "noise_level", "npzfile", "paths"),  # ground: no podm imports
    ("physics",),      # blur operators and their data term, boundary extension, noise
    ("kernels",),      # kernel files and validation; the random-motion generator
    ("priors",),       # proximal operators
    ("optim",),        # solvers and schedules
    ("nets",),         # denoiser backbones and weight importers
    ("models",),       # trainable cascades (plain nn.Modules) and their weight files
    ("methods",),      # one file per method, one interface
    ("tiling", "restore"),  # `podm deblur` on files: tiles with blended seams
    ("data",),         # locator, manifest, fetch, protocol datasets
    ("evaluation",),   # scoring, runner, records, reports, studies
    ("training",),     # pairs, caches, Lightning, trainers
    ("apps", "cli", "benchmark"),  # Hydra / argparse edge
)

def layer_of(module: str) -> int | None:
    """Index in :data:`LAYERS` of ``podm_cli.<top>...``; ``None`` for a module no layer names."""
    parts = module.split(".")
    top = parts[1] if len(parts) > 1 else parts[0]
    return next((i for i, names in enumerate(LAYERS) if top in names), None)


def module_name(path: Path) -> str:
    parts = list(path.relative_to(SRC).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imports(module: str, source: str, is_package: bool = False) -> list[tuple[str, int]]:
    """Every ``podm_cli`` module ``source`` imports (anywhere in the file), with its line number."""
    package = module if is_package else module.rsplit(".", 1)[0]
    found = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            found += [(a.name, node.lineno) for a in node.names if a.name.split(".")[0] == "podm_cli"]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[: len(package.split(".")) - node.level + 1]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module or ""
            if target.split(".")[0] == "podm_cli":
                # `from podm_cli.apps import common` imports the module podm_cli.apps.common
                found += [(f"{target}.{a.name}" if _is_module(f"{target}.{a.name}") else target, node.lineno)
                          for a in node.names]
    return found


def _is_module(name: str) -> bool:
    path = SRC.joinpath(*name.split("."))
    return path.with_suffix(".py").is_file() or (path / "__init__.py").is_file()


def violations(module: str, source: str, is_package: bool = False) -> list[str]:
    """Upward imports of ``module``, one readable line each."""
    own = layer_of(module)
    out = []
    for target, line in imports(module, source, is_package):
        theirs = layer_of(target)
        if own is None or theirs is None or theirs <= own:
            continue
        out.append(f"{module}:{line} imports {target} (layer {LAYERS[theirs][0]} is above {LAYERS[own][0]})")
    return out


def _sources():
    for path in sorted((SRC / "podm_cli").rglob("*.py")):
        yield module_name(path), path.read_text(encoding="utf-8"), path.name == "__init__.py"


def test_every_module_has_a_layer():
    assert [m for m, _, _ in _sources() if layer_of(m) is None] == []


def test_imports_only_point_down():
    found = [v for m, src, pkg in _sources() for v in violations(m, src, pkg)]
    assert found == [], "\n".join(found)


@pytest.mark.parametrize("statement", [
    "from podm_cli.apps import common",
    "def f():\n    from podm_cli.apps import common\n",
    "import podm_cli.evaluation.metrics",
    "from ..training import pairs",
])
def test_an_upward_import_is_caught(statement):
    assert len(violations("podm_cli.physics.blur", statement)) == 1


def test_downward_and_same_layer_imports_pass():
    source = "from podm_cli.errors import InputError\nfrom podm_cli.physics.fft import psf2otf\nfrom . import noise\n"
    assert violations("podm_cli.physics.blur", source) == []
