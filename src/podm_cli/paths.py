"""Where podm finds files: the data root and every model or asset path (ground layer: no podm imports).

The data root is chosen in this order (first match wins):

1. the configured value (``data.root`` in the Hydra configs, or ``--root`` on ``podm data``);
2. the ``PODM_DATA`` environment variable;
3. the project's ``data/`` folder: ``<repo>/data`` when podm runs from a source checkout (detected from
   the package location ``<repo>/src/podm_cli``), otherwise a per-user folder for wheel installs:
   ``$XDG_DATA_HOME/podm`` or ``~/.local/share/podm``.

A method's model or weights path (``weights=``, ``model=``, ``gmm=`` in its config) resolves through
:func:`resolve_model_path` alone: ``asset:NAME`` is a file shipped in the package, an absolute path is
itself, a relative one is taken from the working directory when it exists there, else under the data root.

>>> data_root("/tmp/podm-data") == Path("/tmp/podm-data")
True
>>> resolve_model_path("weights/x.pth", "/tmp/podm-data")
PosixPath('/tmp/podm-data/weights/x.pth')
>>> resolve_model_path(None, default="asset:rtf_sigma1.npz") == asset_path("rtf_sigma1.npz")
True
"""

from __future__ import annotations

import os
from importlib import resources
from pathlib import Path

__all__ = ["ENV_VAR", "asset_path", "data_root", "describe_root", "project_data_dir", "resolve_model_path"]

#: What a config says for "no path": the method's default.
_UNSET = (None, "", "null", "None")


#: Environment variable that points podm at a data folder.
ENV_VAR = "PODM_DATA"


def _checkout_root() -> Path | None:
    """The repository root when this package is imported from a source checkout, else ``None``."""
    package = Path(__file__).resolve().parent  # .../src/podm_cli
    src = package.parent
    if src.name != "src":
        return None
    repo = src.parent
    if (repo / "pyproject.toml").is_file():
        return repo
    return None


def _user_data_dir() -> Path:
    """``$XDG_DATA_HOME/podm`` (or ``~/.local/share/podm``) for installs outside a checkout."""
    xdg = os.environ.get("XDG_DATA_HOME", "").strip()
    base = Path(xdg).expanduser() if xdg else Path.home() / ".local" / "share"
    return base / "podm"


def project_data_dir() -> Path:
    """The project's default data folder: ``<repo>/data`` in a checkout, else the user data folder."""
    repo = _checkout_root()
    return repo / "data" if repo is not None else _user_data_dir()


def _as_path(value: str | os.PathLike) -> Path:
    return Path(os.path.expandvars(os.fspath(value))).expanduser().absolute()


def describe_root(configured: str | os.PathLike | None = None) -> tuple[Path, str]:
    """``(root, source)`` where ``source`` says which rule chose it: config, PODM_DATA, checkout or user."""
    if configured is not None and os.fspath(configured).strip():
        return _as_path(configured), "config (data.root / --root)"
    env = os.environ.get(ENV_VAR, "").strip()
    if env:
        return _as_path(env), f"${ENV_VAR}"
    if _checkout_root() is not None:
        return project_data_dir(), "source checkout data/"
    return project_data_dir(), "user data folder"


def data_root(configured: str | os.PathLike | None = None) -> Path:
    """The folder podm reads data from: ``configured``, else ``$PODM_DATA``, else the project's ``data/``.

    The folder need not exist yet (``podm data fetch`` creates it). Relative paths are taken relative to
    the current directory; ``~`` and ``$VARS`` are expanded.
    """
    return describe_root(configured)[0]


def asset_path(name: str) -> Path:
    """A model shipped in the package: ``podm_cli/assets/<name>``."""
    return Path(str(resources.files("podm_cli") / "assets" / name))


def resolve_model_path(value: str | os.PathLike | None, data_root_: str | os.PathLike | None = None,
                       default: str | os.PathLike | None = None) -> Path:
    """The file a model/weights setting names (see the module docstring); ``None`` -> ``default``.

    ``data_root_`` is the data root (``None``: :func:`data_root`'s choice). Nothing is checked or created.
    """
    if value in _UNSET:
        if default in _UNSET:
            raise ValueError("resolve_model_path: no value and no default")
        value = default
    text = os.fspath(value)
    if text.startswith("asset:"):
        return asset_path(text[len("asset:"):])
    p = Path(os.path.expandvars(text)).expanduser()
    if p.is_absolute() or p.exists():
        return p
    return data_root(data_root_) / p
