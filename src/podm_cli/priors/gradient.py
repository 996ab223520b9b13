"""Finite differences shared by the gradient-domain priors (hyper-Laplacian, TV)."""

from __future__ import annotations

import torch
from torch import Tensor

__all__ = ["dtd_spectrum", "grad_circular", "grad_circular_adjoint", "grad_neumann", "grad_neumann_adjoint"]


def grad_circular(x: Tensor) -> tuple[Tensor, Tensor]:
    """Forward differences with wrap-around: ``(x[i, j+1] - x[i, j], x[i+1, j] - x[i, j])``."""
    return torch.roll(x, -1, dims=-1) - x, torch.roll(x, -1, dims=-2) - x


def grad_circular_adjoint(gh: Tensor, gv: Tensor) -> Tensor:
    """Exact adjoint of :func:`grad_circular` (``-div``)."""
    return (torch.roll(gh, 1, dims=-1) - gh) + (torch.roll(gv, 1, dims=-2) - gv)


def dtd_spectrum(h: int, w: int, device=None, dtype=torch.float64) -> Tensor:
    """Eigenvalues of ``D^T D`` for :func:`grad_circular` on the ``rfft2`` grid: ``(h, w // 2 + 1)``."""
    ky = torch.arange(h, device=device, dtype=dtype)[:, None]
    kx = torch.arange(w // 2 + 1, device=device, dtype=dtype)[None, :]
    two_pi = 2.0 * torch.pi
    return (2.0 - 2.0 * torch.cos(two_pi * kx / w)) + (2.0 - 2.0 * torch.cos(two_pi * ky / h))


def grad_neumann(x: Tensor) -> tuple[Tensor, Tensor]:
    """Forward differences with a zero difference across the last column/row (Neumann boundary)."""
    gh = torch.zeros_like(x)
    gv = torch.zeros_like(x)
    gh[..., :, :-1] = x[..., :, 1:] - x[..., :, :-1]
    gv[..., :-1, :] = x[..., 1:, :] - x[..., :-1, :]
    return gh, gv


def grad_neumann_adjoint(gh: Tensor, gv: Tensor) -> Tensor:
    """Exact adjoint of :func:`grad_neumann` (``-div``)."""
    out = torch.zeros_like(gh)
    out[..., :, :-1] -= gh[..., :, :-1]
    out[..., :, 1:] += gh[..., :, :-1]
    out[..., :-1, :] -= gv[..., :-1, :]
    out[..., 1:, :] += gv[..., :-1, :]
    return out
