"""FISTA (Beck & Teboulle 2009) on the same nonconvex ``Psi = f + g`` as PODM, for the convergence study.

    x^k = prox_{g/L}(z^k - 1/L grad f(z^k)),   t_{k+1} = (1 + sqrt(1 + 4 t_k^2)) / 2,
    z^{k+1} = x^k + (t_k - 1) / t_{k+1} (x^k - x^{k-1}).

With a nonconvex ``g`` (lp, p < 1) FISTA has no convergence guarantee and ``Psi`` may oscillate;
``monotone=True`` gives MFISTA (Beck & Teboulle, IEEE TIP 2009): ``x^k`` is the better of the prox point
``u^k`` and ``x^{k-1}``, and ``z^{k+1} = x^k + t_k/t_{k+1} (u^k - x^k) + (t_k - 1)/t_{k+1} (x^k - x^{k-1})``.
The stopping rule is PODM's (relative change below ``tol``), per image.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch
from torch import Tensor

from podm_cli.errors import InputError
from podm_cli.optim.objective import Deconvolution, item_norm
from podm_cli.optim.podm_solver import psnr_or_nan
from podm_cli.optim.trace import IterationRecord, SolverResult, Trace

__all__ = ["fista_solve"]


@torch.no_grad()
def fista_solve(
    problem: Deconvolution,
    *,
    L: float = 1.0,
    tol: float = 1e-4,
    max_iterations: int = 100,
    monotone: bool = False,
    x0: Tensor | None = None,
    truth: Tensor | None = None,
    callback: Callable[[int, Tensor, IterationRecord], None] | None = None,
) -> SolverResult:
    """FISTA / MFISTA with step ``1/L``; per-image stopping at relative change ``< tol``."""
    if L <= 0:
        raise InputError(f"L must be > 0, got {L}")
    x = (problem.data.initial() if x0 is None else x0).clone()
    n = x.shape[0]
    z = x
    t = 1.0
    active = torch.ones(n, dtype=torch.bool, device=x.device)
    iterations = torch.zeros(n, dtype=torch.int64)
    nan = torch.full((n,), math.nan, dtype=torch.float64)
    psi_prev = problem.psi(x)
    trace = Trace("fista")
    trace.append(IterationRecord(0, psi_prev, nan, nan, psnr_or_nan(x, truth), active.clone()))
    mask = lambda m: m.reshape(-1, *([1] * (x.ndim - 1)))
    for k in range(1, int(max_iterations) + 1):
        u = problem.prox_gradient(z, 1.0 / L)
        t_next = (1.0 + math.sqrt(1.0 + 4.0 * t * t)) / 2.0
        if monotone:
            psi_u = problem.psi(u)
            better = psi_u <= psi_prev
            x_new = torch.where(mask(better), u, x)
            psi_new = torch.where(better, psi_u, psi_prev)
            z_next = x_new + (t / t_next) * (u - x_new) + ((t - 1.0) / t_next) * (x_new - x)
        else:
            x_new = u
            psi_new = None
            z_next = x_new + ((t - 1.0) / t_next) * (x_new - x)
        x_new = torch.where(mask(active), x_new, x)
        z = torch.where(mask(active), z_next, z)
        if psi_new is None or not bool(active.all()):
            psi_new = problem.psi(x_new)
        scale = item_norm(x).clamp(min=torch.finfo(x.dtype).tiny)
        rel = item_norm(x_new - x) / scale
        # MFISTA may keep x (rel = 0) while the prox point still moves: stop on the prox point's change
        rel_stop = item_norm(u - x) / scale if monotone else rel
        record = IterationRecord(k, psi_new, rel, nan, psnr_or_nan(x_new, truth), active.clone())
        trace.append(record)
        iterations += active.cpu().to(torch.int64)
        active = active & ~(rel_stop < tol)
        x, psi_prev, t = x_new, psi_new, t_next
        if callback is not None:
            callback(k, x, record)
        if not bool(active.any()):
            break
    trace.method = "mfista" if monotone else "fista"
    return SolverResult(x=x, trace=trace, iterations=iterations, converged=~active.cpu())
