"""Fourier-domain pieces shared by the classical splitting solvers (:mod:`~podm_cli.methods.tv`,
:mod:`~podm_cli.methods.hl`).

Both solvers alternate a per-pixel step on gradient variables ``w ~ D x`` with a quadratic x-step

    (D^T D + (mu / beta) K^T K) x = D^T z + (mu / beta) K^T y,

with circular boundaries every operator is diagonal in the Fourier basis, so the solution is

    X = (F(D^T z) + (mu / beta) conj(K_hat) Y_hat) / (|Dh_hat|^2 + |Dv_hat|^2 + (mu / beta) |K_hat|^2).

``D = (Dh, Dv)`` are *circular forward differences*: ``(Dh x)[i, j] = x[i, j+1] - x[i, j]`` and
``(Dv x)[i, j] = x[i+1, j] - x[i, j]`` (indices mod H, W), the filters ``[1, -1]`` and ``[1; -1]`` of
Wang, Yang, Yin & Zhang (2008) and Krishnan & Fergus (2009). Their transfer functions satisfy
``|Dh_hat(ky, kx)|^2 = 2 - 2 cos(2 pi kx / W)`` (and the same in ``ky``/``H`` for ``Dv``), so ``D^T D`` never
needs an FFT.  Everything uses the half spectrum of ``torch.fft.rfft2`` (shape ``(..., H, W // 2 + 1)``).
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

from podm_cli.errors import InputError
from podm_cli.physics import psf2otf

__all__ = [
    "QuadraticFFTSolver",
    "blur_otf",
    "diff_otf_sq",
    "forward_diff",
    "forward_diff_adjoint",
    "item_norm",
    "noise_scaled",
    "per_item",
]


def forward_diff(x: Tensor) -> tuple[Tensor, Tensor]:
    """Circular forward differences ``(Dh x, Dv x)`` of ``x`` (``(..., H, W)``).

    >>> x = torch.tensor([[0.0, 1.0, 3.0]])
    >>> forward_diff(x)[0].tolist()
    [[1.0, 2.0, -3.0]]
    """
    return torch.roll(x, -1, dims=-1) - x, torch.roll(x, -1, dims=-2) - x


def forward_diff_adjoint(wh: Tensor, wv: Tensor) -> Tensor:
    """``D^T (wh, wv) = Dh^T wh + Dv^T wv`` with ``(Dh^T w)[j] = w[j-1] - w[j]`` (circular)."""
    return (torch.roll(wh, 1, dims=-1) - wh) + (torch.roll(wv, 1, dims=-2) - wv)


def diff_otf_sq(shape: tuple[int, int], dtype=torch.float64, device=None) -> Tensor:
    """``|Dh_hat|^2 + |Dv_hat|^2`` on the rfft2 grid ``(H, W // 2 + 1)`` (real, ``dtype``).

    This is the eigenvalue array of the periodic 5-point Laplacian ``D^T D``; it is 0 only at DC.

    >>> lap = diff_otf_sq((4, 4))
    >>> lap.shape, float(lap[0, 0]), float(lap[2, 2])
    (torch.Size([4, 3]), 0.0, 8.0)
    """
    H, W = int(shape[0]), int(shape[1])
    ky = torch.arange(H, dtype=torch.float64, device=device)
    kx = torch.arange(W // 2 + 1, dtype=torch.float64, device=device)
    lap = (2 - 2 * torch.cos(2 * math.pi * ky / H))[:, None] + (2 - 2 * torch.cos(2 * math.pi * kx / W))[None, :]
    return lap.to(dtype)


def blur_otf(kernel: Tensor, shape: tuple[int, int], dtype, device) -> Tensor:
    """OTF of ``kernel`` (``(kh, kw)`` or ``(N, 1, kh, kw)``) for ``shape``, in ``dtype``'s complex type.

    Thin wrapper over :func:`podm_cli.physics.psf2otf` (centre ``(kh // 2, kw // 2)`` moved to ``(0, 0)``,
    the same convention as :class:`podm_cli.physics.Blur` in circular mode).
    """
    return psf2otf(kernel.to(device=device, dtype=dtype), shape)


def item_norm(t: Tensor) -> Tensor:
    """Euclidean norm of each batch item: ``(N, ...) -> (N,)``."""
    return t.reshape(t.shape[0], -1).norm(dim=1)


def per_item(value, n: int, like: Tensor) -> Tensor:
    """A scalar or ``(N,)`` weight as an ``(N, 1, 1, 1)`` tensor in ``like``'s dtype and device."""
    t = torch.as_tensor(value, dtype=like.dtype, device=like.device).reshape(-1)
    if t.numel() == 1:
        t = t.expand(n)
    if t.numel() != n:
        raise ValueError(f"expected a scalar or {n} values, got {t.numel()}")
    return t.reshape(n, 1, 1, 1)


def noise_scaled(
    weight: float, sigma_ref: float | None, sigma: Tensor, who: str, power: float = 1.5
) -> Tensor | float:
    """Data weight for noise levels ``sigma`` (``(N,)``): ``weight`` itself if ``sigma_ref`` is None, else
    ``weight * (sigma_ref / sigma)^power`` per image, i.e. ``weight`` is the value at noise level
    ``sigma_ref``.  MAP reasoning (likelihood weight ``1 / sigma^2`` at a fixed prior weight) gives
    ``power = 2``; the TV/HL sweep (``docs/tv_hl_weights.md``) found the best weights at 2 % noise to be
    ``2^-1.5`` times those at 1 %, hence the default 1.5.

    >>> noise_scaled(1000.0, 0.01, torch.tensor([0.01, 0.04]), "tv").tolist()
    [1000.0, 125.0]
    """
    if sigma_ref is None:
        return weight
    sigma = torch.as_tensor(sigma).reshape(-1)
    if not torch.isfinite(sigma).all() or (sigma <= 0).any():
        raise InputError(f"{who}: noise-adaptive weights (sigma_ref set) need sigma > 0, got {sigma.tolist()}")
    return weight * (sigma_ref / sigma) ** power


class QuadraticFFTSolver:
    """Solves ``(D^T D + r K^T K) x = D^T z + r K^T y`` for fixed ``y``, ``K`` and any ``z``, ``r > 0``.

    ``r`` is ``mu / beta`` (TV) or ``lambda / beta`` (HL): a scalar or an ``(N, 1, 1, 1)`` tensor.  The
    numerator term ``conj(K_hat) Y_hat`` and ``|K_hat|^2`` are computed once; ``solve`` costs one ``rfft2``
    and one ``irfft2``.  Because ``K_hat(0) = sum(k) = 1``, the denominator is ``>= r > 0`` at DC: the
    system is always solvable.
    """

    def __init__(self, y: Tensor, kernel: Tensor):
        H, W = y.shape[-2:]
        self.shape = (int(H), int(W))
        self.otf = blur_otf(kernel, self.shape, y.dtype, y.device)
        self.ky = torch.conj(self.otf) * torch.fft.rfft2(y)
        self.k2 = self.otf.real**2 + self.otf.imag**2
        self.lap = diff_otf_sq(self.shape, y.dtype, y.device)
        self._r = None
        self._denom = None

    def blur(self, x: Tensor) -> Tensor:
        """``K x`` (circular)."""
        return torch.fft.irfft2(torch.fft.rfft2(x) * self.otf, s=self.shape)

    def solve(self, dtz: Tensor, r: Tensor | float) -> Tensor:
        """``x`` from ``D^T z`` (spatial, already formed by :func:`forward_diff_adjoint`) and ``r``."""
        if self._r is None or self._r is not r:  # cache the denominator for a given r object
            self._r = r
            self._denom = self.lap + r * self.k2
        return torch.fft.irfft2((torch.fft.rfft2(dtz) + r * self.ky) / self._denom, s=self.shape)
