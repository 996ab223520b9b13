"""Reusable solvers on the deconvolution objective ``Psi = f + g`` (DESIGN §2).

* :class:`~podm_cli.optim.objective.Deconvolution` - ``f``, ``grad f``, ``Psi``, the F-step solve;
* :func:`~podm_cli.optim.podm_solver.podm_solve` - PODM with the error check (and optional descent check);
* :func:`~podm_cli.optim.fista.fista_solve` - FISTA / MFISTA on the same nonconvex ``Psi``;
* :func:`~podm_cli.optim.hqs.hqs_solve` - IRCNN-style plug-and-play HQS (the "IRCNN" curve);
* :class:`~podm_cli.optim.trace.Trace` - per-iteration, per-image diagnostics.
"""

from podm_cli.optim.fista import fista_solve
from podm_cli.optim.hqs import hqs_solve, ircnn_mu
from podm_cli.optim.objective import Deconvolution, item_norm
from podm_cli.optim.podm_solver import Denoiser, StageOutput, podm_solve, podm_stage, sigma_schedule
from podm_cli.optim.trace import IterationRecord, SolverResult, Trace

__all__ = [
    "Deconvolution",
    "Denoiser",
    "IterationRecord",
    "SolverResult",
    "StageOutput",
    "Trace",
    "fista_solve",
    "hqs_solve",
    "ircnn_mu",
    "item_norm",
    "podm_solve",
    "podm_stage",
    "sigma_schedule",
]
