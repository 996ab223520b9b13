"""The one clean list of images podm learns from: BSDS500 *train* + *test*, minus every image that contains
a test image.

Every model podm ships (RPODM, RTF, CSF, EPLL's GMM) is trained on images of this list, and every free
parameter chosen on the disjoint tuning set (:mod:`podm_cli.data.tuning`) is chosen on images of its
BSDS500 *train* part. BSDS500 *val* is never in it (68 of its 100 images are BSD68, a test set).

:data:`CONTAINS_TEST_IMAGE` was found by content: a normalised cross-correlation of every Levin/Set12
image's centre against every position of every BSDS500 train/test/val image
(``tests/test_training_data.py``, slow) found Set12's starfish (``04.png``) inside BSDS500 train ``12003``
and nothing else. This module only lists file names (it decodes nothing), so data and training code can
both use it.

Example (a throw-away folder in the BSDS500 layout)::

    >>> import shutil, tempfile
    >>> root = Path(tempfile.mkdtemp())
    >>> for rel in ("train/BSDS500/train/2092.jpg", "train/BSDS500/train/12003.jpg",
    ...             "train/BSDS500/test/100007.jpg", "train/BSDS500/test/notes.txt"):
    ...     (root / rel).parent.mkdir(parents=True, exist_ok=True); (root / rel).touch()
    >>> [f"{p.parent.name}/{p.name}" for p in clean_files(root)]
    ['train/2092.jpg', 'test/100007.jpg']
    >>> shutil.rmtree(root)
"""

from __future__ import annotations

import os
from pathlib import Path

from podm_cli.data.locator import data_root, fetch_hint, require
from podm_cli.errors import DataNotFoundError

__all__ = ["BSDS_TEST", "BSDS_TRAIN", "BSDS_TRAIN_SETS", "CONTAINS_TEST_IMAGE", "clean_files", "clean_picks",
           "image_files"]

BSDS_TRAIN = "train/BSDS500/train"
BSDS_TEST = "train/BSDS500/test"
#: The training sets, in the order their images are listed.
BSDS_TRAIN_SETS = (BSDS_TRAIN, BSDS_TEST)
#: ``{BSDS500 image stem: the test image it contains}`` (see the module docstring for how it was found).
CONTAINS_TEST_IMAGE = {"12003": "Set12/04.png"}


def image_files(root: str | os.PathLike | None, rel: str) -> list[Path]:
    """Every ``.jpg``/``.png`` file of the folder ``rel`` under the data root, sorted by name (nothing left
    out); a missing folder raises :class:`~podm_cli.errors.DataNotFoundError`."""
    folder = require(data_root(root), rel, "training images", "train")
    return sorted(p for p in folder.iterdir() if p.suffix.lower() in (".jpg", ".png") and p.is_file())


def clean_files(root: str | os.PathLike | None, sets: tuple[str, ...] = BSDS_TRAIN_SETS) -> list[Path]:
    """The ``.jpg``/``.png`` files of ``sets`` (folders under the data root ``root``; ``None``: the
    locator's), sorted by name within each set, sets in the given order, minus :data:`CONTAINS_TEST_IMAGE`.

    A missing folder, or no image at all, raises :class:`~podm_cli.errors.DataNotFoundError` (one line).
    """
    root = data_root(root)
    files = [p for rel in sets for p in image_files(root, rel) if p.stem not in CONTAINS_TEST_IMAGE]
    if not files:
        raise DataNotFoundError(f"training images not found: no image in {', '.join(sets)} under {root}; "
                                f"{fetch_hint('train')}")
    return files


def clean_picks(root: str | os.PathLike | None, rel: str, positions) -> list[Path]:
    """The files of set ``rel`` at ``positions`` (a callable ``n -> indices`` into the sorted listing of all
    ``n`` files, excluded ones counted), each excluded file replaced by the next clean file not yet picked.

    Counting the excluded files keeps every selection made before :data:`CONTAINS_TEST_IMAGE` was found
    (the tuning set, the TV/HL sweep) exactly as it was when it never landed on one.

    >>> import shutil, tempfile
    >>> root = Path(tempfile.mkdtemp())
    >>> for stem in ("10", "12003", "13", "14"):
    ...     (root / "set").mkdir(exist_ok=True); (root / "set" / f"{stem}.jpg").touch()
    >>> [p.stem for p in clean_picks(root, "set", lambda n: [1, 3])]   # position 1 is 12003: the next clean
    ['13', '14']
    >>> [p.stem for p in clean_picks(root, "set", lambda n: [1, 2])]   # 13 already taken: 14
    ['13', '14']
    >>> shutil.rmtree(root)
    """
    listing = image_files(root, rel)
    picked: list[Path] = []
    for i in positions(len(listing)):
        j = int(i)
        while j < len(listing) and (listing[j].stem in CONTAINS_TEST_IMAGE or listing[j] in picked):
            j += 1
        if j == len(listing):
            j = next(k for k, p in enumerate(listing) if p.stem not in CONTAINS_TEST_IMAGE and p not in picked)
        picked.append(listing[j])
    return picked
