"""Hyper-Laplacian prior: lp on image gradients (Krishnan & Fergus 2009), ``0 < p <= 1``.

``g(x) = lam * sum_i (|(D_h x)_i|^p + |(D_v x)_i|^p)`` with circular forward differences ``D``.

Its proximal map ``argmin_x 1/2 ||x - v||^2 + s g(x)`` has no closed form (``D`` is not orthonormal), so
:meth:`LpGradient.prox` runs a few ADMM iterations on the split ``z = D x``:

    x <- (I + rho D^T D)^{-1} (v + rho D^T (z - u))        (one FFT solve: D^T D is diagonalised by the DFT)
    z <- GST(D x + u, s lam / rho)                          (generalized soft-thresholding, per component)
    u <- u + D x - z

starting from ``z = D v, u = 0`` (so the first x equals v). ADMM on this nonconvex problem converges to a
stationary point for ``rho`` large enough; with a handful of iterations the result is an *inexact* prox,
so the returned point is safeguarded: per image, it is kept only if its prox objective is not above
that of ``v`` (``s g(v)``), so ``prox`` never increases the prox objective. ``exact_prox`` is ``False``: the
PODM convergence theory assumes an exact prox, prefer :class:`podm_cli.priors.lp.LpDCT` for that.
"""

from __future__ import annotations

import torch
from torch import Tensor

from podm_cli.errors import InputError
from podm_cli.physics.differences import diff_otf_sq, forward_diff, forward_diff_adjoint
from podm_cli.priors.base import Prior, per_image_step
from podm_cli.priors.lp import _check_p, gst

__all__ = ["LpGradient"]


class LpGradient(Prior):
    """``lam * ||D x||_p^p`` on circular image gradients; prox by ``iterations`` ADMM steps (inexact)."""

    name = "hyper_laplacian"

    def __init__(
        self, p: float = 0.667, lam: float = 1e-4, gst_iterations: int = 2, iterations: int = 10, rho: float = 1.0
    ):
        self.p = _check_p(p)
        self.lam = float(lam)
        if self.lam < 0:
            raise InputError(f"lam must be >= 0, got {lam}")
        self.gst_iterations = int(gst_iterations)
        self.iterations = int(iterations)
        if self.iterations < 1:
            raise InputError(f"hyper_laplacian prox needs iterations >= 1, got {iterations}")
        self.rho = float(rho)
        if self.rho <= 0:
            raise InputError(f"rho must be > 0, got {rho}")

    @property
    def exact_prox(self) -> bool:
        return False

    def value(self, x: Tensor) -> Tensor:
        gh, gv = forward_diff(x)
        return self.lam * (gh.abs().pow(self.p) + gv.abs().pow(self.p)).flatten(1).sum(1)

    def prox(self, v: Tensor, step=1.0) -> Tensor:
        s = per_image_step(step, v)
        lam = s * self.lam / self.rho
        h, w = v.shape[-2:]
        denom = 1.0 + self.rho * diff_otf_sq((h, w), v.dtype, v.device)
        zh, zv = forward_diff(v)
        uh, uv = torch.zeros_like(v), torch.zeros_like(v)
        x = v
        for it in range(self.iterations):
            if it > 0:
                rhs = v + self.rho * forward_diff_adjoint(zh - uh, zv - uv)
                x = torch.fft.irfft2(torch.fft.rfft2(rhs) / denom, s=(h, w))
            gh, gv = forward_diff(x)
            zh = gst(gh + uh, lam, self.p, self.gst_iterations)
            zv = gst(gv + uv, lam, self.p, self.gst_iterations)
            uh = uh + gh - zh
            uv = uv + gv - zv
        rhs = v + self.rho * forward_diff_adjoint(zh - uh, zv - uv)
        x = torch.fft.irfft2(torch.fft.rfft2(rhs) / denom, s=(h, w))
        # safeguard: never return a point whose prox objective is worse than v's
        sv = s if not isinstance(s, Tensor) or s.ndim == 0 else s.reshape(-1)
        obj_x = 0.5 * (x - v).flatten(1).pow(2).sum(1) + sv * self.value(x)
        obj_v = sv * self.value(v)
        better = (obj_x <= obj_v).reshape(-1, *([1] * (v.ndim - 1)))
        return torch.where(better, x, v)
