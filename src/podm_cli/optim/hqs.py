"""Plug-and-play half-quadratic splitting with a denoiser (IRCNN, Zhang et al. CVPR 2017): the one HQS loop.

    x^k = argmin_x f(x) + rho_k/2 ||x - z^{k-1}||^2   (``data.prox``: closed form in the Fourier domain)
    z^k = D(x^k; s_k)

``z^0 = data.initial()``; ``rho_k`` and the denoiser levels ``s_k`` come from a schedule
(:func:`podm_cli.optim.schedules.ircnn_schedule` for IRCNN: ``rho_k = (sigma_n^2 / 3) / s_k^2`` with
``s_k`` log-spaced). The reported iterate is the denoiser output ``z^k`` -- what IRCNN returns; ``x^k``
after the Fourier step still carries the amplified noise of a small ``rho``. With ``boundary="adjust"``
data the Fourier step's observation is re-estimated from ``z^{k-1}`` at every iteration.

In the convergence study (the "IRCNN" curve of the paper's Fig. 2) an ``objective`` ``Psi`` is evaluated
along the iterates, which do not minimise it (no ``g`` in the updates); past its schedule the last level and
weight are held. ``tol`` stops an image at a relative change of ``z`` below it (``0``: run every iteration).

Example (a stand-in denoiser)::

    >>> import torch
    >>> from podm_cli.physics import DataTerm
    >>> data = DataTerm.build(torch.rand(2, 1, 16, 16, dtype=torch.float64), torch.ones(3, 3) / 9)
    >>> res = hqs_solve(data, lambda x, s: x.clamp(0, 1), [0.1, 0.05], [0.01, 0.02], tol=0)
    >>> tuple(res.x.shape), res.iterations.tolist(), len(res.trace.rows())
    ((2, 1, 16, 16), [2, 2], 6)
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence

import torch
from torch import Tensor

from podm_cli.optim.objective import Deconvolution, item_norm
from podm_cli.optim.podm_solver import Denoiser, psnr_or_nan
from podm_cli.optim.schedules import at_stage
from podm_cli.optim.trace import IterationRecord, SolverResult, Trace
from podm_cli.physics import DataTerm

__all__ = ["hqs_solve"]


@torch.no_grad()
def hqs_solve(
    data: DataTerm,
    denoiser: Denoiser,
    levels: Sequence[float],
    rho,
    *,
    objective: Deconvolution | None = None,
    tol: float = 1e-4,
    max_iterations: int | None = None,
    truth: Tensor | None = None,
    callback: Callable[[int, Tensor, IterationRecord], None] | None = None,
) -> SolverResult:
    """Run plug-and-play HQS on ``data``; returns ``z^k`` (unclipped), its trace and convergence flags.

    Args:
        levels: denoiser levels on [0, 1], one per iteration (the last one held beyond them).
        rho: the Fourier-step weight: a float, a per-iteration sequence, an ``(N, iterations)`` tensor or
            ``rho(index)`` (the last value held); see :func:`podm_cli.optim.schedules.ircnn_schedule`.
        objective: ``Psi`` recorded per iteration (``None``: NaN, nothing extra computed).
        tol: per-image relative-change stopping rule (``0`` never stops early).
        max_iterations: default ``len(levels)``.
        truth: sharp images for the PSNR column; callback: ``callback(k, z^k, record)``.
    """
    levels = [float(s) for s in levels]
    n_iter = len(levels) if max_iterations is None else int(max_iterations)
    z = data.initial()
    n = z.shape[0]
    active = torch.ones(n, dtype=torch.bool, device=z.device)
    iterations = torch.zeros(n, dtype=torch.int64)
    nan = torch.full((n,), math.nan, dtype=torch.float64)
    psi = (lambda v: nan) if objective is None else objective.psi
    trace = Trace("ircnn")
    trace.append(IterationRecord(0, psi(z), nan, nan, psnr_or_nan(z, truth), active.clone()))
    mask = lambda m: m.reshape(-1, *([1] * (z.ndim - 1)))
    for k in range(1, n_iter + 1):
        level = levels[min(k - 1, len(levels) - 1)]
        x = data.prox(z, at_stage(rho, k - 1, z), x=data.estimate(z, k - 1))
        z_new = denoiser(x, level)
        if not bool(active.all()):
            z_new = torch.where(mask(active), z_new, z)
        rel = item_norm(z_new - z) / item_norm(z).clamp(min=torch.finfo(z.dtype).tiny)
        record = IterationRecord(k, psi(z_new), rel, nan, psnr_or_nan(z_new, truth), active.clone(), level)
        trace.append(record)
        iterations += active.cpu().to(torch.int64)
        active = active & ~(rel < tol)
        z = z_new
        if callback is not None:
            callback(k, z, record)
        if not bool(active.any()):
            break
    return SolverResult(x=z, trace=trace, iterations=iterations, converged=~active.cpu())
