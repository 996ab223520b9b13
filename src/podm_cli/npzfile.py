"""The ``.npz`` model files podm writes for its own trained models (EPLL's GMM, CSF): arrays plus a JSON
``meta`` string, written atomically, read back without pickle, every failure one :class:`InputError`.

>>> import tempfile, numpy as np
>>> path = save_npz(tempfile.mkdtemp() + "/m.npz", {"note": "x"}, a=np.arange(3))
>>> arrays, meta = load_npz(path, "demo", ("a",))
>>> arrays["a"].tolist(), meta
([0, 1, 2], {'note': 'x'})
"""

from __future__ import annotations

import json
import os
import zipfile
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from podm_cli.atomic import atomic_path
from podm_cli.errors import InputError

__all__ = ["load_npz", "save_npz"]


def save_npz(path: str | os.PathLike, meta: dict, **arrays) -> Path:
    """Write ``arrays`` and ``meta`` (as JSON) compressed to ``path``, atomically (no temp file left behind)."""
    path = Path(path)
    with atomic_path(path) as tmp:
        np.savez_compressed(tmp, meta=np.array(json.dumps(meta)), **arrays)
    return path


def load_npz(path: str | os.PathLike, who: str, keys: Sequence[str],
             not_npz: str = "is not an .npz archive") -> tuple[dict[str, np.ndarray], dict]:
    """``({key: array}, meta)`` from a file :func:`save_npz` wrote; ``who`` prefixes every error message and
    ``not_npz`` says what else the file should have been."""
    path = Path(path)
    if not path.is_file():
        raise InputError(f"{who}: no such file {path}")
    if not zipfile.is_zipfile(path):
        raise InputError(f"{who}: {path} {not_npz}")
    try:
        with np.load(path, allow_pickle=False) as f:
            arrays = {k: f[k] for k in keys}
            meta = json.loads(str(f["meta"])) if "meta" in f else {}
    except (OSError, KeyError, ValueError) as e:
        raise InputError(f"{who}: cannot read {path}: {e}") from None
    return arrays, meta
