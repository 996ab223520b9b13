"""HDF5 cache of RPODM's training and validation images, written once by ``podm data prepare``.

Layout (h5py): groups ``train`` and ``val``, each with ``pixels`` (uint8, all images' grey pixels flattened
and concatenated), ``shapes`` (int32 ``(n, 2)``), ``offsets`` (int64 ``(n,)``) and ``names`` (UTF-8); file
attributes ``format``, ``excluded`` (the BSDS500 val images recognised as BSD68 and left out) and
``sources``. Reading one file instead of decoding 430 JPEGs makes a run start in well under a second and
lets DataLoader workers share nothing but the arrays.

Example::

    >>> import tempfile, torch
    >>> path = tempfile.mkdtemp() + "/c.h5"
    >>> _ = write_images(path, {"train": [("a", torch.rand(1, 4, 5))], "val": []}, excluded={})
    >>> [(n, tuple(im.shape)) for n, im in read_cache(path, "train")]
    [('a', (1, 4, 5))]
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import torch
from torch import Tensor

from podm_cli.atomic import atomic_path
from podm_cli.errors import InputError

__all__ = ["CACHE_FORMAT", "default_cache_path", "prepare_cache", "read_cache", "write_images"]

CACHE_FORMAT = "podm-train-images/2"  # 2: without the BSDS image that contains Set12 04


def default_cache_path() -> Path:
    """``$PODM_CACHE/rpodm_train_images.h5`` (default ``~/.cache/podm``): the data root may be read-only."""
    base = os.environ.get("PODM_CACHE") or Path.home() / ".cache" / "podm"
    return Path(base).expanduser() / "rpodm_train_images.h5"


def write_images(path, splits: dict[str, list[tuple[str, Tensor]]], excluded: dict[str, str],
                 sources: dict | None = None) -> Path:
    """Write ``{split: [(name, (1, H, W) in [0, 1])]}`` to ``path`` (atomically)."""
    import h5py

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(path) as tmp, h5py.File(tmp, "w") as f:
        f.attrs["format"] = CACHE_FORMAT
        f.attrs["excluded"] = json.dumps(excluded)
        f.attrs["sources"] = json.dumps(sources or {})
        for split, items in splits.items():
            g = f.create_group(split)
            arrays = [np.round(im[0].numpy() * 255).clip(0, 255).astype(np.uint8) for _, im in items]
            sizes = [a.size for a in arrays]
            g["pixels"] = np.concatenate([a.ravel() for a in arrays]) if arrays else np.zeros(0, np.uint8)
            g["shapes"] = np.array([a.shape for a in arrays], dtype=np.int32).reshape(-1, 2)
            g["offsets"] = np.concatenate([[0], np.cumsum(sizes)[:-1]]).astype(np.int64) if arrays else np.zeros(0, np.int64)
            g["names"] = np.array([n for n, _ in items], dtype=h5py.string_dtype())
    return path


def read_cache(path, split: str) -> list[tuple[str, Tensor]]:
    """``[(name, (1, H, W) float32)]`` of ``split`` from a cache file."""
    import h5py

    try:
        with h5py.File(path, "r") as f:
            if f.attrs.get("format") != CACHE_FORMAT:
                raise InputError(f"{path}: not a podm training-image cache (run `podm data prepare`)")
            g = f[split]
            pixels, shapes, offsets = g["pixels"][()], g["shapes"][()], g["offsets"][()]
            names = [n.decode() if isinstance(n, bytes) else str(n) for n in g["names"][()]]
    except (OSError, KeyError) as err:
        raise InputError(f"{path}: unreadable training-image cache ({err}); run `podm data prepare` again") from None
    out = []
    for name, (h, w), o in zip(names, shapes, offsets):
        a = pixels[o : o + h * w].reshape(h, w).astype(np.float32) / 255.0
        out.append((name, torch.from_numpy(a)[None]))
    return out


def prepare_cache(root=None, path: str | os.PathLike | None = None) -> Path:
    """Decode the training (BSDS500 train + test) and validation (BSDS500 val minus BSD68) images once."""
    from podm_cli.data.locator import data_root
    from podm_cli.training.pairs import BSDS_TRAIN_SETS, BSDS_VAL, bsd68_in_val, training_images

    root = data_root(root)
    path = Path(path) if path is not None else default_cache_path()
    splits = {"train": training_images(root, "train"), "val": training_images(root, "val")}
    sources = {"train": list(BSDS_TRAIN_SETS), "val": BSDS_VAL + " minus BSD68"}
    return write_images(path, splits, bsd68_in_val(root), sources)
