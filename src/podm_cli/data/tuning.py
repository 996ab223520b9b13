"""The disjoint tuning set: where baselines' and PODM's free parameters are chosen, never on a test set.

Images: grey (BT.601 luma) centre crops of BSDS500 *train* images, evenly spaced in sorted name order
(never Levin, Sun, BSD68 = BSDS500 *val*, or Set12). Kernels: real camera-shake kernels of Schelten et
al. 2015 (``train/kernels_schelten2015.mat``) with both sides <= ``max_kernel`` px, evenly spaced among
those, negatives clipped, normalised, zero-padded to ``max_kernel`` x ``max_kernel``, one per image.
Observations: circular blur, Gaussian noise seeded per image (:func:`podm_cli.physics.image_seed`), float32.

Used by ``scripts/choose_ircnn_floor.py`` (docs/ircnn_floor.md) and ``scripts/tune_podm.py``
(docs/podm_defaults.md), so both tune on exactly the same kind of data::

    ts = load_tuning_set(data_root(None), images=8, crop=128)
    y = ts.observe(0.01)        # (8, 1, 128, 128) float32
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import Tensor

__all__ = ["TuningSet", "evenly", "load_tuning_set"]

BSDS_TRAIN = "train/BSDS500/train"
SCHELTEN = "train/kernels_schelten2015.mat"


def evenly(n: int, k: int) -> list[int]:
    """Up to ``k`` distinct indices evenly spaced in ``0 .. n-1`` (first and last included).

    >>> evenly(10, 4)
    [0, 3, 6, 9]
    """
    return sorted({round(float(v)) for v in np.linspace(0, n - 1, k)})


@dataclass(frozen=True)
class TuningSet:
    """Sharp crops ``(N, 1, crop, crop)`` and kernels ``(N, 1, K, K)`` (float64), one kernel per image."""

    sharp: Tensor
    kernels: Tensor
    names: list[str]

    def observe(self, sigma: float) -> Tensor:
        """Circular blur + Gaussian noise ``sigma`` (seeded per image by name), float32."""
        from podm_cli.physics import Blur, add_gaussian_noise, image_seed

        blurred = Blur(self.kernels)(self.sharp)
        return add_gaussian_noise(blurred, sigma, seed=[image_seed(n) for n in self.names]).float()

    def describe(self, sigma: float) -> str:
        n, crop, kk = len(self.names), self.sharp.shape[-1], self.kernels.shape[-1]
        return f"{n} BSDS500-train crops {crop}x{crop}, Schelten kernels <= {kk} px, circular blur, sigma {sigma}"


def load_tuning_set(root: str | os.PathLike, images: int = 16, crop: int = 128, max_kernel: int = 31) -> TuningSet:
    """The first ``images`` evenly spaced BSDS500-train crops with as many evenly spaced Schelten kernels."""
    import scipy.io

    from podm_cli.imageio import read_image

    root = Path(root)
    files = sorted((root / BSDS_TRAIN).glob("*.jpg"))
    files = [files[i] for i in evenly(len(files), images)]
    mats = scipy.io.loadmat(root / SCHELTEN)["kernels"].ravel()
    small = [np.asarray(k, dtype=np.float64) for k in mats if max(k.shape) <= max_kernel]
    small = [small[i] for i in evenly(len(small), images)]
    xs, ks, names = [], [], []
    for f, k in zip(files, small):
        x, _ = read_image(f, mode="gray")
        h, w = x.shape[-2:]
        t, l = (h - crop) // 2, (w - crop) // 2
        xs.append(x[:, t : t + crop, l : l + crop])
        k = np.clip(k, 0, None)
        pad = np.zeros((max_kernel, max_kernel))
        oy, ox = (max_kernel - k.shape[0]) // 2, (max_kernel - k.shape[1]) // 2
        pad[oy : oy + k.shape[0], ox : ox + k.shape[1]] = k / k.sum()
        ks.append(torch.from_numpy(pad))
        names.append(f.stem)
    return TuningSet(torch.stack(xs).double(), torch.stack(ks)[:, None], names)
