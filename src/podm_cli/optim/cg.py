"""Batched preconditioned conjugate gradients, and a linear solve that autograd differentiates implicitly.

:func:`conjugate_gradient` solves ``A x = b`` for a batch of symmetric positive-definite operators given as a
function ``apply_A(x)`` on ``(N, ...)`` tensors (one system per batch item, each stopped on its own relative
residual). :func:`spd_solve` wraps it for training: the solution ``x(theta) = A(theta)^{-1} b(theta)`` is
differentiated by the implicit-function (adjoint) rule — one more solve ``A v = dL/dx`` — instead of
backpropagating through the iterations:

    dL/db = v,    dL/dtheta = -d/dtheta <v, A(theta) x>  (x, v held fixed),

so memory does not grow with the number of CG iterations.

>>> import torch
>>> d = torch.tensor([[1.0, 2.0, 4.0]], dtype=torch.float64)
>>> x, info = conjugate_gradient(lambda v: d * v, torch.ones(1, 3, dtype=torch.float64), rtol=1e-12)
>>> x.tolist(), info["converged"]
([[1.0, 0.5, 0.25]], True)
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch
from torch import Tensor

__all__ = ["conjugate_gradient", "spd_solve"]


def _dot(a: Tensor, b: Tensor) -> Tensor:
    return (a * b).flatten(1).sum(1)


def _bcast(v: Tensor, like: Tensor) -> Tensor:
    return v.reshape((-1,) + (1,) * (like.ndim - 1))


def conjugate_gradient(apply_A: Callable[[Tensor], Tensor], b: Tensor,
                       precond: Callable[[Tensor], Tensor] | None = None, x0: Tensor | None = None,
                       rtol: float = 1e-5, max_iter: int = 500) -> tuple[Tensor, dict]:
    """Solve ``A x = b`` per batch item (preconditioned CG; ``precond(r)`` applies ``M^{-1}``, SPD).

    Stops an item when ``||r|| <= rtol ||b||``; returns ``(x, info)`` with ``info = {iterations,
    converged, rel_residual (N,)}``. Runs without autograd.
    """
    with torch.no_grad():
        x = torch.zeros_like(b) if x0 is None else x0.clone()
        r = b - apply_A(x) if x0 is not None else b.clone()
        bnorm = _dot(b, b).sqrt().clamp_min(torch.finfo(b.dtype).tiny)
        z = precond(r) if precond is not None else r
        p = z.clone()
        rz = _dot(r, z)
        it = 0
        rel = _dot(r, r).sqrt() / bnorm
        active = rel > rtol  # an item stops (alpha = beta = 0) once its residual is small enough
        while it < max_iter and bool(active.any()):
            ap = apply_A(p)
            pap = _dot(p, ap)
            alpha = torch.where(active, rz / torch.where(pap > 0, pap, torch.ones_like(pap)), torch.zeros_like(rz))
            x = x + _bcast(alpha, x) * p
            r = r - _bcast(alpha, r) * ap
            rel = _dot(r, r).sqrt() / bnorm
            active = active & (rel > rtol)
            z = precond(r) if precond is not None else r
            rz_new = _dot(r, z)
            beta = torch.where(active, rz_new / torch.where(rz != 0, rz, torch.ones_like(rz)), torch.zeros_like(rz))
            p = z + _bcast(beta, p) * p
            rz = rz_new
            it += 1
    return x, {"iterations": it, "converged": bool((rel <= rtol).all()), "rel_residual": rel}


class _SPDSolve(torch.autograd.Function):
    @staticmethod
    def forward(ctx, apply_A, precond, rtol, max_iter, b, *params):
        x, _ = conjugate_gradient(lambda v: apply_A(v, *params), b, precond, rtol=rtol, max_iter=max_iter)
        ctx.apply_A, ctx.precond, ctx.rtol, ctx.max_iter = apply_A, precond, rtol, max_iter
        ctx.save_for_backward(x, *params)
        return x

    @staticmethod
    def backward(ctx, grad_x):
        x, *params = ctx.saved_tensors
        v, _ = conjugate_gradient(lambda u: ctx.apply_A(u, *params), grad_x.contiguous(), ctx.precond,
                                  rtol=ctx.rtol, max_iter=ctx.max_iter)
        needs = [p.requires_grad for p in params]
        grads = [None] * len(params)
        if any(needs):
            with torch.enable_grad():
                leaves = [p.detach().requires_grad_(n) for p, n in zip(params, needs)]
                surrogate = -(v * ctx.apply_A(x, *leaves)).sum()
                wanted = [p for p in leaves if p.requires_grad]
                got = iter(torch.autograd.grad(surrogate, wanted, allow_unused=True))
                grads = [next(got) if n else None for n in needs]
        return (None, None, None, None, v, *grads)


def spd_solve(apply_A: Callable[..., Tensor], b: Tensor, params: Sequence[Tensor] = (),
              precond: Callable[[Tensor], Tensor] | None = None, rtol: float = 1e-5, max_iter: int = 500) -> Tensor:
    """``x = A(params)^{-1} b`` with ``apply_A(x, *params)`` symmetric positive definite for every item;
    differentiable in ``b`` and every tensor of ``params`` by the implicit-function rule (module docstring).
    ``precond`` (``M^{-1}``) is treated as a constant."""
    return _SPDSolve.apply(apply_A, precond, float(rtol), int(max_iter), b, *params)
