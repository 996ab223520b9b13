"""PODM: Propagation and Optimization based Deep Model (Liu, Cheng, Liu, Ma, Fan & Luo, NeurIPS 2018).

The provably convergent scheme (solver: :func:`podm_cli.optim.podm_solver.podm_solve`): per stage, the
IRCNN denoiser (A) at a decreasing noise level, the data term's proximal step (F,
:meth:`podm_cli.physics.DataTerm.prox`), one proximal-gradient step on ``Psi + alpha/2 ||x - x^{l-1}||^2``
with the designed prior (G), and the error check that accepts ``x_G`` or falls back to a plain
proximal-gradient step on ``Psi``.

Paper symbols: ``stages`` = the number of stages (denoiser levels), ``L`` and ``gamma = 1/L``, ``alpha``,
``C`` as in the paper; ``rho`` is the paper's ``mu`` (F's weight, ``H = mu I``); ``denoiser_first`` /
``denoiser_last`` the first / last denoiser level (the authors' 48/255 and 4/255); the prior's ``lam`` /
``p`` are the paper's ``lambda`` / ``p`` of ``g = lambda ||W x||_p^p``.

Defaults (``PODM()`` = ``configs/method/podm.yaml``) are the authors' constants (the official Keras demo)
except F's weight: ``L = 1``, ``alpha = 1e-3``, ``C = 0.08``, ``g = 1e-4 ||W x||_0.8^0.8`` (orthonormal DCT,
2 GST iterations), 30 stages with the denoiser level log-spaced from 48/255 to 4/255, stopping at relative
change ``1e-4`` -- and ``rho_rule = "ircnn"`` with ``rho_divisor = 1`` instead of the authors' constant
``rho = 1e-3``. That choice was made on disjoint data (BSDS500-train crops, Schelten kernels; never a test
set) by ``scripts/tune_podm.py``: 29.1 dB against 13.1 dB for the constant (docs/podm_defaults.md). The
error check is unchanged, so the convergence guarantee is too. The authors' constants exactly:
``PODM(rho_rule="constant", rho_divisor=3)`` or ``configs/method/podm_authors.yaml``.

Schedule and budget:

* ``stages`` distinct denoiser levels, ``denoiser_first -> denoiser_last`` (``spacing`` log | linear);
* ``max_iterations`` total iterations (``null`` = ``stages``); beyond the schedule ``post_schedule``
  decides: ``prox_gradient`` (default) drops the network and runs the convergent proximal-gradient
  tail, ``last`` keeps the last denoiser (checked steps go on; can cycle without ``descent_check``, see
  :mod:`podm_cli.optim.podm_solver`);
* ``rho_rule``: ``ircnn`` (default: IRCNN's coupling ``rho_l = (sigma_n^2 / rho_divisor) / s_l^2``,
  :func:`podm_cli.optim.schedules.hqs_rho`, which grows as the denoiser level falls) or ``constant``
  (``rho`` at every stage, the authors' 1e-3). With the constant 1e-3, F is close to an inverse filter:
  ``x_F`` (hence ``x^l``) keeps most of the amplified noise, and PSNR is low on deconvolution (below the
  blurred input; docs/podm_defaults.md).

Colour images are processed channel by channel by the grey denoisers; the designed prior is per channel.
After a call, ``last_info`` holds the :class:`~podm_cli.optim.trace.SolverResult` (per-stage ``Psi``,
relative change, accepted / fallback, per image).

Example (a stand-in denoiser, no weights needed)::

    >>> import torch
    >>> podm = PODM(denoiser=lambda x, s: x, stages=3)
    >>> y = torch.rand(2, 1, 32, 32)
    >>> podm(y, torch.ones(3, 3) / 9, 0.01).shape
    torch.Size([2, 1, 32, 32])
    >>> podm.last_info.trace.stack("psi").shape   # iterations + 1 rows, one column per image
    torch.Size([4, 2])
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping

import torch
from torch import Tensor

from podm_cli.errors import InputError
from podm_cli.methods.base import Method
from podm_cli.methods.ircnn import IRCNN, OfficialBank, bank_denoiser
from podm_cli.optim.objective import Deconvolution
from podm_cli.optim.podm_solver import POST_SCHEDULE, podm_solve
from podm_cli.optim.schedules import SPACINGS, denoiser_levels, hqs_rho
from podm_cli.optim.trace import SolverResult
from podm_cli.physics import DataTerm
from podm_cli.priors import Prior, build_prior

__all__ = ["PODM", "RHO_RULES"]

RHO_RULES = ("constant", "ircnn")


class PODM(OfficialBank, Method):
    """PODM with the official IRCNN denoiser bank and the lp-DCT prior (see the module docstring).

    Args:
        stages: number of denoiser stages (distinct noise levels), 30.
        denoiser_first, denoiser_last: first / last denoiser level on [0, 1] (48/255, 4/255);
            ``spacing``: log | linear.
        max_iterations: total iterations (``None`` = ``stages``); may exceed ``stages``.
        post_schedule: ``prox_gradient`` | ``last`` (see the module docstring).
        L, alpha, rho, C: step ``1/L``, proximal weight, F weight (``rho_rule=constant``; the paper's
            ``mu``), error-check constant.
        rho_rule: ``ircnn`` (default) | ``constant``; ``rho_divisor``: the ``ircnn`` rule's scale (1, chosen
            on disjoint data; IRCNN's own is 3).
        tol: relative-change stopping tolerance (1e-4).
        descent_check: also require ``Psi(x_G) <= Psi(x^{l-1})`` to accept a network step.
        prior: a :class:`~podm_cli.priors.Prior`, a prior name, or a mapping of its config
            (``{name: lp_dct, p: 0.8, lam: 1e-4, gst_iterations: 2}``, the default).
        precision: ``float64`` (default) or ``float32`` for the solver arithmetic (the nets run in their
            own dtype); ``None`` keeps the input's dtype.
        clip: clip the returned estimate to [0, 1] (the iterate itself is never clipped).
        weights, data_root: where the official bank is (``None`` = ``<data root>/weights/ircnn_gray_keras``;
            a folder of ``net{i}.hdf5`` or an ``ircnn_gray.pth``-layout file).
        bank: an already-loaded :class:`~podm_cli.nets.bank.DenoiserBank` (overrides ``weights``).
        denoiser: any ``denoiser(x, sigma) -> x`` callable (overrides the bank; for tests / other nets).
    """

    name = "podm"
    source = "recomputed (official IRCNN bank)"
    requirements = IRCNN.requirements  # the same official bank (weights/ircnn_gray_keras/net{1..25}.hdf5)

    def __init__(
        self,
        stages: int = 30,
        denoiser_first: float = 48.0 / 255.0,
        denoiser_last: float = 4.0 / 255.0,
        spacing: str = "log",
        max_iterations: int | None = None,
        post_schedule: str = "prox_gradient",
        L: float = 1.0,
        alpha: float = 1e-3,
        rho: float = 1e-3,
        rho_rule: str = "ircnn",
        rho_divisor: float = 1.0,
        C: float = 0.08,
        tol: float = 1e-4,
        descent_check: bool = False,
        prior: Prior | str | Mapping | None = None,
        precision: str | None = "float64",
        clip: bool = True,
        weights: str | os.PathLike | None = None,
        data_root: str | os.PathLike | None = None,
        bank=None,
        denoiser: Callable[[Tensor, float], Tensor] | None = None,
    ):
        super().__init__()
        self.stages = int(stages)
        if spacing not in SPACINGS:
            raise InputError(f"spacing must be one of {SPACINGS}, got {spacing!r}")
        self.denoiser_first, self.denoiser_last = float(denoiser_first), float(denoiser_last)
        self.spacing = str(spacing)
        self.levels = denoiser_levels(self.stages, self.denoiser_first, self.denoiser_last, self.spacing)
        self.max_iterations = None if max_iterations in (None, "null") else int(max_iterations)
        if self.max_iterations is not None and self.max_iterations < 1:
            raise InputError(f"max_iterations must be >= 1, got {max_iterations}")
        if post_schedule not in POST_SCHEDULE:
            raise InputError(f"post_schedule must be one of {POST_SCHEDULE}, got {post_schedule!r}")
        self.post_schedule = post_schedule
        if L <= 0 or alpha < 0 or C < 0 or rho <= 0 or tol < 0:
            raise InputError(f"need L > 0, alpha >= 0, C >= 0, rho > 0, tol >= 0 (got {L}, {alpha}, {C}, {rho}, {tol})")
        self.L, self.alpha, self.rho, self.C, self.tol = float(L), float(alpha), float(rho), float(C), float(tol)
        if rho_rule not in RHO_RULES:
            raise InputError(f"rho_rule must be one of {RHO_RULES}, got {rho_rule!r}")
        if not rho_divisor > 0:
            raise InputError(f"rho_divisor must be > 0, got {rho_divisor}")
        self.rho_rule, self.rho_divisor = rho_rule, float(rho_divisor)
        self.descent_check = bool(descent_check)
        self.prior = self._make_prior(prior)
        if precision not in (None, "float32", "float64"):
            raise InputError(f"precision must be float32, float64 or null, got {precision!r}")
        self.precision = precision
        self.clip = bool(clip)
        self._init_bank(weights, data_root, bank)  # OfficialBank: weights root, lazy bank, .to(device)
        self._denoiser = denoiser
        self.last_info: SolverResult | None = None

    # -- construction helpers --------------------------------------------------------------------------
    @staticmethod
    def _make_prior(prior) -> Prior:
        if prior is None:
            return build_prior("lp_dct", p=0.8, lam=1e-4, gst_iterations=2)
        if isinstance(prior, Prior):
            return prior
        if isinstance(prior, str):
            return build_prior(prior)
        if isinstance(prior, Mapping):
            cfg = dict(prior)
            return build_prior(cfg.pop("name", "lp_dct"), **cfg)
        raise InputError(f"prior must be a Prior, a name or a mapping, got {type(prior).__name__}")

    def _needs_bank(self) -> bool:
        return self._bank is None and self._denoiser is None

    def denoiser(self) -> Callable[[Tensor, float], Tensor]:
        """``denoiser(x, sigma)`` on (N, C, H, W) batches (grey nets applied per channel)."""
        return self._denoiser if self._denoiser is not None else bank_denoiser(self.bank)

    def rho_schedule(self, noise_sigma: Tensor):
        """F's weight: the constant ``rho``, or IRCNN's ``(sigma_n^2 / rho_divisor) / s_l^2`` as an
        ``(N, stages)`` tensor on ``noise_sigma``'s device and dtype."""
        if self.rho_rule == "constant":
            return self.rho
        return hqs_rho(noise_sigma.detach().cpu(), self.levels, self.rho_divisor).to(noise_sigma)

    # -- solve -----------------------------------------------------------------------------------------
    @torch.no_grad()
    def solve(
        self, data: DataTerm, sigma, truth: Tensor | None = None, max_iterations: int | None = None, callback=None,
    ) -> SolverResult:
        """Run PODM on ``data`` (noise ``sigma``, float or (N,)) and return the full :class:`SolverResult`
        (its ``x`` on ``data.grid``, unclipped). The solver runs in ``precision``."""
        dtype = {"float32": torch.float32, "float64": torch.float64, None: data.y.dtype}[self.precision]
        if data.y.device.type == "mps" and dtype == torch.float64:
            dtype = torch.float32
        data = data.to(dtype=dtype)
        device = data.y.device
        sig = torch.as_tensor(sigma, dtype=dtype, device=device).reshape(-1)
        if sig.numel() == 1:
            sig = sig.expand(data.y.shape[0])
        budget = max_iterations if max_iterations is not None else self.max_iterations
        result = podm_solve(
            Deconvolution(data, self.prior),
            self.denoiser(),
            self.levels,
            rho=self.rho_schedule(sig),
            L=self.L,
            alpha=self.alpha,
            C=self.C,
            tol=self.tol,
            max_iterations=budget if budget is not None else self.stages,
            post_schedule=self.post_schedule,
            descent_check=self.descent_check,
            truth=None if truth is None else truth.to(device=device, dtype=dtype),
            callback=callback,
        )
        self.last_info = result
        return result

    def restore(self, data: DataTerm, sigma: Tensor, on_stage=None) -> Tensor:
        out_dtype = data.y.dtype
        callback = None if on_stage is None else (lambda index, x, _record: on_stage(index, x))
        x = self.solve(data, sigma, callback=callback).x
        if self.clip:
            x = x.clamp(0.0, 1.0)
        return x.to(out_dtype)
