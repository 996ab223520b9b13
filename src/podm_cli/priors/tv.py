"""Isotropic total variation ``g(x) = lam * sum_i sqrt((D_h x)_i^2 + (D_v x)_i^2)`` (Neumann boundary).

The prox ``argmin_x 1/2 ||x - v||^2 + s g(x)`` is computed on the dual by Beck & Teboulle's fast gradient
projection (FGP, IEEE TIP 2009): with ``t = s lam``,

    p <- Proj_{|p_i| <= 1}( r + 1/(8 t) D (v - t D^T r) ),   r <- p + (t_k - 1)/t_{k+1} (p - p_prev),

and ``x = v - t D^T p`` (``||D||^2 <= 8``). ``iterations`` (default 10) dual steps; the dual converges at
``O(1/k^2)``, so the prox is accurate to about 1e-3 of the pixel range for small ``t`` after 10 steps.
Differences are taken per channel.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

from podm_cli.errors import InputError
from podm_cli.physics.differences import forward_diff_neumann, forward_diff_neumann_adjoint
from podm_cli.priors.base import Prior, per_image_step

__all__ = ["TV"]


class TV(Prior):
    """Isotropic TV with a fast-gradient-projection prox (``iterations`` dual steps)."""

    name = "tv"

    def __init__(self, lam: float = 1e-4, iterations: int = 10):
        self.lam = float(lam)
        if self.lam < 0:
            raise InputError(f"lam must be >= 0, got {lam}")
        self.iterations = int(iterations)
        if self.iterations < 1:
            raise InputError(f"tv prox needs iterations >= 1, got {iterations}")

    @property
    def exact_prox(self) -> bool:
        return False

    def value(self, x: Tensor) -> Tensor:
        gh, gv = forward_diff_neumann(x)
        return self.lam * torch.sqrt(gh * gh + gv * gv).flatten(1).sum(1)

    def prox(self, v: Tensor, step=1.0) -> Tensor:
        t = per_image_step(step, v) * self.lam
        if not isinstance(t, Tensor):
            if t <= 0:
                return v
            t = torch.as_tensor(t, dtype=v.dtype, device=v.device)
        t_safe = torch.clamp(t, min=torch.finfo(v.dtype).tiny)
        ph, pv = torch.zeros_like(v), torch.zeros_like(v)
        rh, rv = ph, pv
        tk = 1.0
        for _ in range(self.iterations):
            gh, gv = forward_diff_neumann(v - t * forward_diff_neumann_adjoint(rh, rv))
            qh = rh + gh / (8.0 * t_safe)
            qv = rv + gv / (8.0 * t_safe)
            norm = torch.clamp(torch.sqrt(qh * qh + qv * qv), min=1.0)
            nh, nv = qh / norm, qv / norm
            tk_next = (1.0 + math.sqrt(1.0 + 4.0 * tk * tk)) / 2.0
            beta = (tk - 1.0) / tk_next
            rh, rv = nh + beta * (nh - ph), nv + beta * (nv - pv)
            ph, pv, tk = nh, nv, tk_next
        return v - t * forward_diff_neumann_adjoint(ph, pv)
