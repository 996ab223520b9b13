"""Where podm's reference data lives, and one-line errors when a file is missing.

The data root itself (``data.root``, else ``$PODM_DATA``, else the project's ``data/``) is chosen by
:func:`podm_cli.paths.data_root`, re-exported here. The layout under the root mirrors the reference data (``levin/``, ``sun/``, ``train/``, ``weights/``,
``real/``); see ``data/README.md`` at the repository root.

Example:
    >>> from pathlib import Path
    >>> data_root("/tmp/podm-data") == Path("/tmp/podm-data")
    True
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field
from pathlib import Path

from podm_cli.errors import DataNotFoundError
from podm_cli.paths import ENV_VAR, _as_path, data_root, describe_root, project_data_dir

__all__ = [
    "ENV_VAR",
    "SUN_PATTERNS",
    "SunLayout",
    "data_root",
    "describe_root",
    "fetch_hint",
    "find_sun_layout",
    "project_data_dir",
    "require",
    "sun_role",
]

def fetch_hint(target: str) -> str:
    """The command that obtains ``target``, as printed in error messages."""
    return f"run `podm data fetch {target}` (or set {ENV_VAR} / data.root to a folder that has it)"


def require(
    root: str | os.PathLike | None, relpath: str, what: str, fetch_target: str
) -> Path:
    """Return ``root / relpath`` if it exists, else raise :class:`DataNotFoundError` (one line).

    Args:
        root: the data root; ``None`` means :func:`data_root()`.
        relpath: path under the root, e.g. ``"levin/gt/im_1.png"`` (a file or a folder).
        what: human name used in the message, e.g. ``"Levin data"``.
        fetch_target: the ``podm data fetch`` target that provides it, e.g. ``"levin"``.

    Example:
        >>> try:
        ...     require("/nowhere", "levin/gt/im_1.png", "Levin data", "levin")
        ... except DataNotFoundError as err:
        ...     print(err)
        Levin data not found: /nowhere/levin/gt/im_1.png is missing; run `podm data fetch levin` (or set PODM_DATA / data.root to a folder that has it)
    """
    base = data_root() if root is None else _as_path(root)
    path = base / relpath
    if not path.exists():
        raise DataNotFoundError(f"{what} not found: {path} is missing; {fetch_hint(fetch_target)}")
    return path


#: File names of the Sun et al. 2013 release (ICCP 2013, http://cs.brown.edu/~lbsun/deblur2013/):
#: the test set ``input80imgs8kernels/{i}_{j}_blurred.png`` (i = 1..80 images, j = 1..8 Levin kernels) and,
#: from the "all results" archive, the ground truth ``img{i}_groundtruth_img.png`` (the centre of the
#: sharp image, 50 px smaller on every side than the blurred one) and ``kernel{j}_groundtruth_kernel.png``.
SUN_PATTERNS = {
    "blurred": re.compile(r"^(\d+)_(\d+)_blurred\.png$", re.IGNORECASE),
    "gt": re.compile(r"^img(\d+)_groundtruth_img\.png$", re.IGNORECASE),
    "kernel": re.compile(r"^kernel(\d+)_groundtruth_kernel\.png$", re.IGNORECASE),
}
SUN_IMAGES, SUN_KERNELS = 80, 8


@dataclass
class SunLayout:
    """The Sun et al. 2013 files found under ``<root>/sun`` (searched recursively, first match wins)."""

    folder: Path
    blurred: dict[tuple[int, int], Path] = field(default_factory=dict)
    gt: dict[int, Path] = field(default_factory=dict)
    kernels: dict[int, Path] = field(default_factory=dict)

    @property
    def complete(self) -> bool:
        """True when all 640 blurred images and the 80 ground truths are present."""
        want_b = {(i, j) for i in range(1, SUN_IMAGES + 1) for j in range(1, SUN_KERNELS + 1)}
        return want_b <= set(self.blurred) and set(range(1, SUN_IMAGES + 1)) <= set(self.gt)

    def summary(self) -> str:
        """One line: how many blurred images, ground truths and kernels were found."""
        return (
            f"{len(self.blurred)}/{SUN_IMAGES * SUN_KERNELS} blurred, {len(self.gt)}/{SUN_IMAGES} ground truth, "
            f"{len(self.kernels)}/{SUN_KERNELS} kernel images in {self.folder}"
        )


def sun_role(name: str) -> tuple[str, tuple[int, ...]] | None:
    """``("blurred", (i, j))``, ``("gt", (i,))``, ``("kernel", (j,))`` for a Sun file name, else ``None``."""
    for role, pattern in SUN_PATTERNS.items():
        match = pattern.match(name)
        if match:
            return role, tuple(int(g) for g in match.groups())
    return None


def find_sun_layout(root: str | os.PathLike | None = None) -> SunLayout:
    """Scan ``<root>/sun`` for the Sun et al. 2013 files (any sub-folder layout; names as released)."""
    folder = (data_root() if root is None else _as_path(root)) / "sun"
    layout = SunLayout(folder)
    if not folder.is_dir():
        return layout
    for path in sorted(folder.rglob("*.png")):
        found = sun_role(path.name)
        if found is None or not path.is_file():
            continue
        role, key = found
        if role == "blurred":
            layout.blurred.setdefault((key[0], key[1]), path)
        elif role == "gt":
            layout.gt.setdefault(key[0], path)
        else:
            layout.kernels.setdefault(key[0], path)
    return layout
