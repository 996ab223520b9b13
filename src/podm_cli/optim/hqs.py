"""Plug-and-play half-quadratic splitting with a denoiser bank (IRCNN, Zhang et al. CVPR 2017).

    x^k = argmin_x f(x) + mu_k/2 ||x - z^{k-1}||^2   (closed form in the Fourier domain)
    z^k = D(x^k; sigma_k)

with IRCNN's rule ``mu_k = lam * sigma_n^2 / sigma_k^2`` (``lam`` = 1/3 in the IRCNN deblurring demo) and
``sigma_k`` log-spaced from ``sigma_max`` to a floor. The iterate reported (and scored by ``Psi``) is the
denoiser output ``z^k`` -- what IRCNN returns; ``x^k`` after the Fourier step still carries the
amplified noise of a small ``mu`` -- and ``z^0 = y``. This is the "IRCNN" curve of the convergence study: the same objective ``Psi`` is
evaluated along the HQS iterates, which do not minimise it (no ``g`` in the updates) -- the point of the
paper's Fig. 2. After the schedule the last level is kept. Stopping as PODM (relative change of ``x``).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence

import torch
from torch import Tensor

from podm_cli.optim.objective import Deconvolution, item_norm
from podm_cli.optim.podm_solver import Denoiser, _mu_at, psnr_or_nan
from podm_cli.optim.trace import IterationRecord, SolverResult, Trace

__all__ = ["hqs_solve", "ircnn_mu"]


def ircnn_mu(noise_sigma, sigma_d: float, lam: float = 1.0 / 3.0):
    """IRCNN's HQS weight ``lam * sigma_n^2 / sigma_d^2`` (``noise_sigma`` float or ``(N,)`` tensor)."""
    return lam * noise_sigma**2 / (sigma_d**2)


@torch.no_grad()
def hqs_solve(
    problem: Deconvolution,
    denoiser: Denoiser,
    sigmas: Sequence[float],
    mu,
    *,
    tol: float = 1e-4,
    max_iterations: int | None = None,
    truth: Tensor | None = None,
    callback: Callable[[int, Tensor, IterationRecord], None] | None = None,
) -> SolverResult:
    """Run plug-and-play HQS; ``sigmas`` on [0, 1] (last one held beyond the schedule).

    ``mu``: the Fourier-step weight, a float, a per-iteration sequence (e.g. ``[rho[:, i] ...]`` from
    :meth:`podm_cli.methods.ircnn.IRCNN.schedule`, last value held) or ``mu(index)``; see :func:`ircnn_mu`.
    With IRCNN's schedule, ``clip(x^iterations, 0, 1)`` is exactly what ``IRCNN.restore_circular`` returns.
    """
    sigmas = [float(s) for s in sigmas]
    n_iter = len(sigmas) if max_iterations is None else int(max_iterations)
    x = problem.y.clone()  # the reported iterate: z^k
    n = x.shape[0]
    active = torch.ones(n, dtype=torch.bool, device=x.device)
    iterations = torch.zeros(n, dtype=torch.int64)
    nan = torch.full((n,), math.nan, dtype=torch.float64)
    trace = Trace("ircnn")
    trace.append(IterationRecord(0, problem.psi(x), nan, nan, psnr_or_nan(x, truth), active.clone()))
    mask = lambda m: m.reshape(-1, *([1] * (x.ndim - 1)))
    for k in range(1, n_iter + 1):
        sigma = sigmas[min(k - 1, len(sigmas) - 1)]
        x_f = problem.solve_fidelity(x, _mu_at(mu, k - 1, x))
        x_new = torch.where(mask(active), denoiser(x_f, sigma), x)
        rel = item_norm(x_new - x) / item_norm(x).clamp(min=torch.finfo(x.dtype).tiny)
        record = IterationRecord(
            k, problem.psi(x_new), rel, nan, psnr_or_nan(x_new, truth), active.clone(), sigma
        )
        trace.append(record)
        iterations += active.cpu().to(torch.int64)
        active = active & ~(rel < tol)
        x = x_new
        if callback is not None:
            callback(k, x, record)
        if not bool(active.any()):
            break
    return SolverResult(x=x, trace=trace, iterations=iterations, converged=~active.cpu())
