"""Finite-difference operators: the one place podm defines image gradients.

``D = (Dh, Dv)`` are forward differences, ``(Dh x)[i, j] = x[i, j+1] - x[i, j]`` and
``(Dv x)[i, j] = x[i+1, j] - x[i, j]`` (the filters ``[1, -1]`` and ``[1; -1]`` of Wang, Yang, Yin & Zhang
2008 and Krishnan & Fergus 2009), in two boundary conventions:

* circular (indices mod ``H, W``): :func:`forward_diff`, its exact adjoint :func:`forward_diff_adjoint`
  (``-div``) and :func:`diff_otf_sq`, the eigenvalues of ``D^T D`` on the ``rfft2`` grid,
  ``|Dh_hat|^2 + |Dv_hat|^2 = (2 - 2 cos(2 pi kx / W)) + (2 - 2 cos(2 pi ky / H))`` -- the
  ``reg_sq`` of :meth:`podm_cli.physics.DataTerm.solve_quadratic` for gradient regularisers;
* Neumann (no difference across the last column / row): :func:`forward_diff_neumann` and its adjoint.

>>> import torch
>>> x = torch.tensor([[0.0, 1.0, 3.0]])
>>> forward_diff(x)[0].tolist()
[[1.0, 2.0, -3.0]]
>>> forward_diff_neumann(x)[0].tolist()
[[1.0, 2.0, 0.0]]
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

__all__ = [
    "diff_otf_sq",
    "forward_diff",
    "forward_diff_adjoint",
    "forward_diff_neumann",
    "forward_diff_neumann_adjoint",
]


def forward_diff(x: Tensor) -> tuple[Tensor, Tensor]:
    """Circular forward differences ``(Dh x, Dv x)`` of ``x`` (``(..., H, W)``)."""
    return torch.roll(x, -1, dims=-1) - x, torch.roll(x, -1, dims=-2) - x


def forward_diff_adjoint(gh: Tensor, gv: Tensor) -> Tensor:
    """Exact adjoint of :func:`forward_diff`: ``Dh^T gh + Dv^T gv`` with ``(Dh^T g)[j] = g[j-1] - g[j]``.

    >>> x, gh, gv = torch.rand(3, 5, 6, dtype=torch.float64)
    >>> dh, dv = forward_diff(x)
    >>> bool(torch.isclose((dh * gh + dv * gv).sum(), (x * forward_diff_adjoint(gh, gv)).sum()))
    True
    """
    return (torch.roll(gh, 1, dims=-1) - gh) + (torch.roll(gv, 1, dims=-2) - gv)


def diff_otf_sq(shape: tuple[int, int], dtype=torch.float64, device=None) -> Tensor:
    """``|Dh_hat|^2 + |Dv_hat|^2`` on the rfft2 grid ``(H, W // 2 + 1)`` (real, ``dtype``).

    The eigenvalues of the periodic 5-point Laplacian ``D^T D`` (0 only at DC), computed in float64.

    >>> lap = diff_otf_sq((4, 4))
    >>> lap.shape, float(lap[0, 0]), float(lap[2, 2])
    (torch.Size([4, 3]), 0.0, 8.0)
    """
    H, W = int(shape[0]), int(shape[1])
    ky = torch.arange(H, dtype=torch.float64, device=device)
    kx = torch.arange(W // 2 + 1, dtype=torch.float64, device=device)
    lap = (2 - 2 * torch.cos(2 * math.pi * ky / H))[:, None] + (2 - 2 * torch.cos(2 * math.pi * kx / W))[None, :]
    return lap.to(dtype)


def forward_diff_neumann(x: Tensor) -> tuple[Tensor, Tensor]:
    """Forward differences with a zero difference across the last column / row (Neumann boundary)."""
    gh = torch.zeros_like(x)
    gv = torch.zeros_like(x)
    gh[..., :, :-1] = x[..., :, 1:] - x[..., :, :-1]
    gv[..., :-1, :] = x[..., 1:, :] - x[..., :-1, :]
    return gh, gv


def forward_diff_neumann_adjoint(gh: Tensor, gv: Tensor) -> Tensor:
    """Exact adjoint of :func:`forward_diff_neumann` (``-div``).

    >>> x, gh, gv = torch.rand(3, 5, 6, dtype=torch.float64)
    >>> dh, dv = forward_diff_neumann(x)
    >>> bool(torch.isclose((dh * gh + dv * gv).sum(), (x * forward_diff_neumann_adjoint(gh, gv)).sum()))
    True
    """
    out = torch.zeros_like(gh)
    out[..., :, :-1] -= gh[..., :, :-1]
    out[..., :, 1:] += gh[..., :, :-1]
    out[..., :-1, :] -= gv[..., :-1, :]
    out[..., 1:, :] += gv[..., :-1, :]
    return out
