"""How a recovered kernel differs from the blur that made a photo: the model of kernel error shared by the
tuning set (:func:`podm_cli.data.tuning.approximate_kernels`) and the training pairs
(``train_data.kernel_error``).

The *true* kernel is the recovered one spread by a Gaussian of ``blur`` px (the lens / sensor spread a
recovered kernel misses, :func:`spread_kernel`); the *given* kernel is the recovered one plus Gaussian noise
of ``noise`` times its peak on its support dilated by one pixel, clipped at 0 and normalised
(:func:`noisy_kernel`). Two more ways a recovered kernel can be wrong serve the tuning set's checks: the
recovered kernel spread instead of the true one (a calibration target's own size, ``given_blur``), and a blur
that turns across the frame (:func:`rotate_kernel`; the shift-invariance that Levin et al. 2009 found
violated in their captures).

>>> import torch
>>> k = torch.zeros(1, 1, 5, 5, dtype=torch.float64); k[0, 0, 2, 1:4] = 1 / 3
>>> t = spread_kernel(k, 0.5); g = noisy_kernel(k[0], 0.1, torch.Generator().manual_seed(0))
>>> [round(float(v.sum()), 6) for v in (t, g)], bool((g >= 0).all()), bool(t[0, 0, 1, 2] > 0)
([1.0, 1.0], True, True)
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor

__all__ = ["noisy_kernel", "rotate_kernel", "spread_kernel"]


def spread_kernel(k: Tensor, std: float) -> Tensor:
    """``k`` (N, 1, K, K) convolved ('same', zero padded) with a separable Gaussian of ``std`` px, normalised;
    ``std = 0`` returns a normalised copy."""
    if std <= 0:
        return k / k.sum(dim=(-2, -1), keepdim=True)
    r = max(1, math.ceil(3 * std))
    t = torch.arange(-r, r + 1, dtype=k.dtype, device=k.device)
    g = torch.exp(-0.5 * (t / std) ** 2)
    g = g / g.sum()
    out = F.conv2d(k, g.reshape(1, 1, 1, -1), padding=(0, r))
    out = F.conv2d(out, g.reshape(1, 1, -1, 1), padding=(r, 0))
    return out / out.sum(dim=(-2, -1), keepdim=True)


def noisy_kernel(k: Tensor, noise: float, generator: torch.Generator) -> Tensor:
    """``k`` (..., K, K) plus Gaussian noise of ``noise`` x its peak on its support dilated by one pixel,
    clipped at 0 and normalised (noise drawn from ``generator``, on the CPU)."""
    support = F.max_pool2d((k > 0).to(k.dtype).reshape(-1, 1, *k.shape[-2:]), 3, stride=1, padding=1)
    eps = torch.randn(k.shape, generator=generator, dtype=k.dtype) * (noise * float(k.max())) * support.reshape(k.shape)
    out = (k + eps).clamp_min(0.0)
    return out / out.sum()


def rotate_kernel(k: Tensor, degrees: float) -> Tensor:
    """``k`` (N, 1, K, K) rotated by ``degrees`` about its centre (bilinear, same size), clipped at 0 and
    normalised; ``degrees = 0`` returns a normalised copy.

    >>> k = torch.zeros(1, 1, 7, 7, dtype=torch.float64); k[0, 0, 3, 1:6] = 0.2
    >>> r = rotate_kernel(k, 90.0)
    >>> round(float(r.sum()), 6), bool(torch.allclose(r[0, 0, 1:6, 3], torch.full((5,), 0.2, dtype=r.dtype), atol=1e-6))
    (1.0, True)
    """
    if degrees == 0:
        return k / k.sum(dim=(-2, -1), keepdim=True)
    import numpy as np
    from scipy.ndimage import rotate

    flat = k.detach().cpu().double().reshape(-1, *k.shape[-2:]).numpy()
    out = np.stack([np.clip(rotate(a, degrees, reshape=False, order=1), 0.0, None) for a in flat])
    out = torch.from_numpy(out).to(dtype=k.dtype, device=k.device).reshape(k.shape)
    return out / out.sum(dim=(-2, -1), keepdim=True)
