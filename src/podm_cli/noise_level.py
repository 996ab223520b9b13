"""Noise-level estimation on a (blurry) image: the wavelet MAD estimator (Donoho & Johnstone 1994).

sigma = median(|HH|) / 0.6745 over the finest diagonal Haar sub-band, which blur barely reaches.

>>> import torch
>>> g = torch.Generator().manual_seed(0)
>>> x = torch.full((1, 1, 256, 256), 0.5) + 0.02 * torch.randn(1, 1, 256, 256, generator=g)
>>> round(float(estimate_noise_sigma(x)[0]), 3)
0.02
"""

from __future__ import annotations

import torch
from torch import Tensor


def estimate_noise_sigma(y: Tensor) -> Tensor:
    """Per-image noise standard deviation of ``y`` (N, C, H, W) on its own scale; channels pooled."""
    if y.ndim != 4 or y.shape[-1] < 4 or y.shape[-2] < 4:
        raise ValueError("estimate_noise_sigma needs (N, C, H, W) with H, W >= 4")
    h, w = (y.shape[-2] // 2) * 2, (y.shape[-1] // 2) * 2
    z = y[..., :h, :w].to(torch.float64)
    hh = (z[..., 0::2, 0::2] - z[..., 0::2, 1::2] - z[..., 1::2, 0::2] + z[..., 1::2, 1::2]) / 2
    return hh.abs().flatten(1).median(dim=1).values / 0.6745
