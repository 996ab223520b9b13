"""PODM: Propagation and Optimization based Deep Model (Liu, Cheng, Liu, Ma, Fan & Luo, NeurIPS 2018).

The provably convergent scheme of DESIGN §2 (solver: :func:`podm_cli.optim.podm_solver.podm_solve`): per
stage, the IRCNN denoiser (A) at a decreasing noise level, the closed-form Fourier fidelity step (F), one
proximal-gradient step on ``Psi + alpha/2 ||x - x^{l-1}||^2`` with the designed prior (G), and the error
check that accepts ``x_G`` or falls back to a plain proximal-gradient step on ``Psi``.

Defaults (``PODM()`` = ``configs/method/podm.yaml``) are the authors' constants (the official Keras demo)
except F's weight: ``L = 1``, ``alpha = 1e-3``, ``C = 0.08``, ``g = 1e-4 ||W x||_0.8^0.8`` (orthonormal DCT,
2 GST iterations), 30 stages with the denoiser level log-spaced from 48 to 4 (on 0..255), stopping at
relative change ``1e-4`` -- and ``mu_rule = "ircnn"`` with ``lamda_divisor = 1`` instead of the authors'
constant ``mu = 1e-3``. That choice was made on disjoint data (BSDS500-train crops, Schelten kernels; never a
test set) by ``scripts/tune_podm.py``: 29.1 dB against 13.1 dB for the constant (docs/podm_defaults.md).
The error check is unchanged, so the convergence guarantee is too. The authors' constants exactly:
``PODM(mu_rule="constant", lamda_divisor=3)`` or ``configs/method/podm_authors.yaml``.

Schedule and budget:

* ``stages`` distinct denoiser levels, ``sigma_max -> sigma_min`` (``spacing`` log | linear);
* ``max_iterations`` total iterations (``null`` = ``stages``); beyond the schedule ``post_schedule``
  decides: ``prox_gradient`` (default) drops the network and runs the convergent proximal-gradient
  tail, ``last`` keeps the last denoiser (checked steps go on; can cycle without ``descent_check``, see
  :mod:`podm_cli.optim.podm_solver`);
* ``mu_rule``: ``ircnn`` (default: IRCNN's coupling ``mu_l = (sigma_n^2 / lamda_divisor) / sigma_l^2``,
  which grows as the denoiser level falls) or ``constant`` (``mu`` at every stage, the authors' 1e-3). With
  the constant 1e-3, F is close to an inverse filter: ``x_F`` (hence ``x^l``) keeps most of the amplified
  noise, and PSNR is low on deconvolution (below the blurred input; docs/podm_defaults.md).

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
from podm_cli.methods.ircnn import IRCNN, OfficialBank
from podm_cli.optim.objective import Deconvolution
from podm_cli.optim.podm_solver import POST_SCHEDULE, podm_solve, sigma_schedule
from podm_cli.optim.trace import SolverResult
from podm_cli.priors import Prior, build_prior

__all__ = ["MU_RULES", "PODM"]

MU_RULES = ("constant", "ircnn")


class PODM(OfficialBank, Method):
    """PODM with the official IRCNN denoiser bank and the lp-DCT prior (DESIGN §2).

    Args:
        stages: number of denoiser stages (distinct noise levels), 30.
        sigma_max, sigma_min: first / last denoiser level on 0..255 (48, 4); ``spacing``: log | linear.
        max_iterations: total iterations (``None`` = ``stages``); may exceed ``stages``.
        post_schedule: ``prox_gradient`` | ``last`` (see the module docstring).
        L, alpha, mu, C: step ``1/L``, proximal weight, F weight, error-check constant.
        mu_rule: ``ircnn`` (default) | ``constant``; ``lamda_divisor``: the ``ircnn`` rule's scale (1, chosen
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
        mode, boundary, edgetaper_iterations: see :class:`~podm_cli.methods.base.Method`.
    """

    name = "podm"
    bytes_per_pixel = 1000.0  # measured 640-790, float32 input, float64 solves (scripts/bench.py --memory-per-pixel)
    source = "recomputed (official IRCNN bank)"
    requirements = IRCNN.requirements  # the same official bank (weights/ircnn_gray_keras/net{1..25}.hdf5)

    def __init__(
        self,
        stages: int = 30,
        sigma_max: float = 48.0,
        sigma_min: float = 4.0,
        spacing: str = "log",
        max_iterations: int | None = None,
        post_schedule: str = "prox_gradient",
        L: float = 1.0,
        alpha: float = 1e-3,
        mu: float = 1e-3,
        mu_rule: str = "ircnn",
        lamda_divisor: float = 1.0,
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
        mode: str = "circular",
        boundary: str = "liu",
        edgetaper_iterations: int = 3,
    ):
        super().__init__(mode=mode, boundary=boundary, edgetaper_iterations=edgetaper_iterations)
        self.stages = int(stages)
        self.sigma_max, self.sigma_min, self.spacing = float(sigma_max), float(sigma_min), str(spacing)
        self.sigmas = [s / 255.0 for s in sigma_schedule(self.stages, self.sigma_max, self.sigma_min, self.spacing)]
        self.max_iterations = None if max_iterations in (None, "null") else int(max_iterations)
        if self.max_iterations is not None and self.max_iterations < 1:
            raise InputError(f"max_iterations must be >= 1, got {max_iterations}")
        if post_schedule not in POST_SCHEDULE:
            raise InputError(f"post_schedule must be one of {POST_SCHEDULE}, got {post_schedule!r}")
        self.post_schedule = post_schedule
        if L <= 0 or alpha < 0 or C < 0 or mu <= 0 or tol < 0:
            raise InputError(f"need L > 0, alpha >= 0, C >= 0, mu > 0, tol >= 0 (got {L}, {alpha}, {C}, {mu}, {tol})")
        self.L, self.alpha, self.mu, self.C, self.tol = float(L), float(alpha), float(mu), float(C), float(tol)
        if mu_rule not in MU_RULES:
            raise InputError(f"mu_rule must be one of {MU_RULES}, got {mu_rule!r}")
        if not lamda_divisor > 0:
            raise InputError(f"lamda_divisor must be > 0, got {lamda_divisor}")
        self.mu_rule, self.lamda_divisor = mu_rule, float(lamda_divisor)
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
        if self._denoiser is not None:
            return self._denoiser
        bank = self.bank

        def run(x: Tensor, sigma: float) -> Tensor:
            n, c, h, w = x.shape
            return bank.denoise(x.reshape(n * c, 1, h, w), float(sigma)).reshape(n, c, h, w)

        return run

    def mu_schedule(self, noise_sigma: Tensor):
        """The F weight per stage: the constant ``mu`` or IRCNN's ``(sigma_n^2 / divisor) / sigma_l^2``."""
        if self.mu_rule == "constant":
            return self.mu
        sig = noise_sigma.reshape(-1).clamp_min(0.255 / 255.0)
        return [sig**2 / self.lamda_divisor / s**2 for s in self.sigmas]

    # -- solve -----------------------------------------------------------------------------------------
    @torch.no_grad()
    def solve(
        self, y: Tensor, kernel: Tensor, sigma, truth: Tensor | None = None, max_iterations: int | None = None,
        callback=None,
    ) -> SolverResult:
        """Run PODM on circular observations ``y`` and return the full :class:`SolverResult`."""
        if y.ndim != 4:
            raise InputError(f"PODM expects (N, C, H, W), got shape {tuple(y.shape)}")
        dtype = {"float32": torch.float32, "float64": torch.float64, None: y.dtype}[self.precision]
        if y.device.type == "mps" and dtype == torch.float64:
            dtype = torch.float32
        y = y.to(dtype)
        sig = torch.as_tensor(sigma, dtype=dtype, device=y.device).reshape(-1)
        if sig.numel() == 1:
            sig = sig.expand(y.shape[0])
        problem = Deconvolution(y, kernel.to(device=y.device, dtype=dtype), self.prior)
        budget = max_iterations if max_iterations is not None else self.max_iterations
        result = podm_solve(
            problem,
            self.denoiser(),
            self.sigmas,
            mu=self.mu_schedule(sig),
            L=self.L,
            alpha=self.alpha,
            C=self.C,
            tol=self.tol,
            max_iterations=budget if budget is not None else self.stages,
            post_schedule=self.post_schedule,
            descent_check=self.descent_check,
            truth=None if truth is None else truth.to(device=y.device, dtype=dtype),
            callback=callback,
        )
        self.last_info = result
        return result

    def restore_circular(self, y: Tensor, kernel: Tensor, sigma: Tensor) -> Tensor:
        out_dtype = y.dtype
        x = self.solve(y, kernel, sigma, callback=self._stage_hook()).x
        if self.clip:
            x = x.clamp(0.0, 1.0)
        return x.to(out_dtype)
