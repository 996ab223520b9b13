"""Reusable solvers on the deconvolution objective ``Psi = f + g``; the data term comes from
:class:`podm_cli.physics.DataTerm`.

* :class:`~podm_cli.optim.objective.Deconvolution` - ``Psi = f + g``, ``grad f``, the prox-gradient step;
* :func:`~podm_cli.optim.podm_solver.podm_solve` - PODM with the error check (and optional descent check);
* :func:`~podm_cli.optim.fista.fista_solve` - FISTA / MFISTA on the same nonconvex ``Psi``;
* :func:`~podm_cli.optim.hqs.hqs_solve` - plug-and-play HQS (IRCNN; the study's "IRCNN" curve);
* :mod:`~podm_cli.optim.schedules` - denoiser levels and Fourier-step weights of IRCNN, PODM, RPODM;
* :class:`~podm_cli.optim.trace.Trace` - per-iteration, per-image diagnostics.
"""

from podm_cli.optim.fista import fista_solve
from podm_cli.optim.hqs import hqs_solve
from podm_cli.optim.objective import Deconvolution, item_norm
from podm_cli.optim.podm_solver import Denoiser, StageOutput, podm_solve, podm_stage
from podm_cli.optim.schedules import at_stage, denoiser_levels, hqs_rho, ircnn_schedule, rpodm_levels
from podm_cli.optim.trace import IterationRecord, SolverResult, Trace

__all__ = [
    "Deconvolution",
    "Denoiser",
    "IterationRecord",
    "SolverResult",
    "StageOutput",
    "Trace",
    "at_stage",
    "denoiser_levels",
    "fista_solve",
    "hqs_rho",
    "hqs_solve",
    "ircnn_schedule",
    "item_norm",
    "podm_solve",
    "podm_stage",
    "rpodm_levels",
]
