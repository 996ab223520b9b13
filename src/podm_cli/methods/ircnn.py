"""IRCNN baseline: half-quadratic splitting with the official bank of 25 CNN denoisers.

Zhang, Zuo, Gu & Zhang, "Learning Deep CNN Denoiser Prior for Image Restoration", CVPR 2017. IRCNN is the
one HQS loop (:func:`podm_cli.optim.hqs.hqs_solve`) with IRCNN's schedule
(:func:`podm_cli.optim.schedules.ircnn_schedule`), as in the authors' deblurring demo (cszn/IRCNN
``Demo_deblur.m``; DPIR's ``get_rho_sigma1`` is the same rule). With ``sigma`` the measurement noise level
and every level on [0, 1]::

    s_i    = logspace(denoiser_first, denoiser_last, stages)[i]
    rho_i  = (max(sigma_scale * sigma, 0.255/255)^2 / rho_divisor) / s_i^2    # rho_divisor = 3
    z_0    = y
    x_i    = argmin_x 1/2 ||k * x - y||^2 + rho_i/2 ||x - z_{i-1}||^2    (data.prox)
    z_i    = D_{s_i}(x_i)      # bank net n = min(25, max(ceil(255 s_i / 2), 1))

and the estimate is ``z_stages`` (clipped to [0, 1]). Paper / demo symbols: ``stages`` is the demo's
``totalIter`` (30); ``denoiser_first`` / ``denoiser_last`` its ``sigma`` range 49 -> 13 (divided by 255);
``rho`` is the paper's ``mu`` (the demo's ``rho``); ``rho_divisor`` makes the demo's
``lamda = sigma^2 / 3``. The last level 13/255 was checked on data disjoint from every test set (BSDS500
*train* crops, Schelten et al. kernels, 1 % noise): it gave the best mean PSNR of {3, 5, 7.65, 10, 13, 16,
20}/255 (``docs/ircnn_floor.md``). The official nets are grey; colour images are restored channel by channel.

``sigma_scale`` (default 1, the demo's rule, right for an exactly known kernel) multiplies the given noise
level in ``rho``. For a kernel known only approximately (captured blurs such as ``levin_real``, estimated
kernels) the noise level is raised further by ``approximate_kernel_sigma_scale`` = 2
(``IRCNN_SIGMA_SCALE_APPROXIMATE_KERNEL``; ``podm eval`` applies it on protocols whose kernel is approximate),
chosen on data disjoint from every test set made like a captured blur -- BSDS500 *train* crops, ``valid`` blur
by Schelten et al. kernels, noise 1.5/255, 8-bit rounding, the method given only an approximate kernel
(:meth:`podm_cli.data.tuning.TuningSet.observe_captured`) and the adjusted boundary after 10 stages: mean
PSNR over 16 crops 26.24 / 26.92 / 26.82 / 26.50 dB for 1 / 2 / 3 / 4 (``docs/noise_level.md``). With a
kernel known only approximately, the model error adds to the noise that the data step must absorb.

Example (a stand-in bank of untrained nets)::

    >>> import torch
    >>> from podm_cli.nets.bank import DenoiserBank
    >>> from podm_cli.nets.ircnn import IRCNNDenoiser
    >>> m = IRCNN(stages=3, bank=DenoiserBank([IRCNNDenoiser(channels=4) for _ in range(25)]))
    >>> m(torch.rand(1, 1, 24, 24), torch.ones(3, 3) / 9, 0.01).shape
    torch.Size([1, 1, 24, 24])
"""

from __future__ import annotations

import math
import os

import torch
from torch import Tensor

from podm_cli.errors import InputError
from podm_cli.methods.base import Method, Requirements
from podm_cli.methods.official_bank import OfficialBank
from podm_cli.nets.bank import DenoiserBank
from podm_cli.nets.weights import IRCNN_COUNT, KERAS_RELPATH, keras_file
from podm_cli.optim.hqs import hqs_solve
from podm_cli.optim.schedules import (
    IRCNN_LAST_LEVEL,
    IRCNN_SIGMA_SCALE,
    IRCNN_SIGMA_SCALE_APPROXIMATE_KERNEL,
    ircnn_schedule,
)

__all__ = ["IRCNN", "IRCNN_SIGMA_SCALE", "IRCNN_SIGMA_SCALE_APPROXIMATE_KERNEL", "OfficialBank", "bank_denoiser"]


def bank_denoiser(bank: DenoiserBank):
    """``denoiser(x, level)`` on (N, C, H, W) batches with a bank of grey nets (applied per channel)."""

    def run(x: Tensor, level: float) -> Tensor:
        n, c, h, w = x.shape
        return bank.denoise(x.reshape(n * c, 1, h, w), float(level)).reshape(n, c, h, w)

    return run


class IRCNN(OfficialBank, Method):
    """IRCNN (HQS + the 25 official grey CNN denoisers), non-blind deconvolution baseline.

    Args:
        stages: HQS iterations, one denoiser level each (30; the demo's ``totalIter``).
        denoiser_first: first denoiser level on [0, 1] (49/255).
        denoiser_last: last denoiser level on [0, 1] (13/255); levels are log-spaced in between.
        rho_divisor: ``rho_i = (sigma^2 / rho_divisor) / s_i^2`` (the demo's 3, "from {1 2 3 4}").
        sigma_scale: the noise level in ``rho`` is ``sigma_scale`` times the given ``sigma`` (see below).
        approximate_kernel_sigma_scale: the factor :meth:`~podm_cli.methods.base.Method.input_sigma` applies
            when the kernel is known only approximately (``podm eval`` on ``levin_real``): 2, chosen on
            disjoint captured-blur-like data (``docs/noise_level.md``).
        weights: ``None`` = the official Keras bank under the data root; or a folder of ``net{i}.hdf5``
            or an ``ircnn_gray.pth``-layout file.
        data_root: data root for the default weights (default: the locator's choice).
        bank: an already-loaded :class:`~podm_cli.nets.bank.DenoiserBank` (overrides ``weights``).
    """

    name = "ircnn"
    bytes_per_pixel = 800.0  # measured 560-650 (scripts/bench.py --memory-per-pixel)
    source = "recomputed"
    requirements = Requirements(
        files=tuple(f"{KERAS_RELPATH}/{keras_file(i)}" for i in range(IRCNN_COUNT)),
        fetch="weights",
        prefers_gpu=True,
        notes=("official IRCNN grey denoisers (Keras, via dlut-dimt/PODM)",),
    )

    def __init__(
        self,
        stages: int = 30,
        denoiser_first: float = 49.0 / 255.0,
        denoiser_last: float = IRCNN_LAST_LEVEL,
        rho_divisor: float = 3.0,
        sigma_scale: float = IRCNN_SIGMA_SCALE,
        approximate_kernel_sigma_scale: float = IRCNN_SIGMA_SCALE_APPROXIMATE_KERNEL,
        weights: str | os.PathLike | None = None,
        data_root: str | os.PathLike | None = None,
        bank: DenoiserBank | None = None,
    ):
        super().__init__()
        ircnn_schedule(torch.zeros(1), stages, denoiser_first, denoiser_last, rho_divisor)  # validate early
        self.stages = int(stages)
        self.denoiser_first = float(denoiser_first)
        self.denoiser_last = float(denoiser_last)
        self.rho_divisor = float(rho_divisor)
        for name, value in (("sigma_scale", sigma_scale),
                            ("approximate_kernel_sigma_scale", approximate_kernel_sigma_scale)):
            if not (math.isfinite(value) and value > 0):
                raise InputError(f"{name} must be a finite number > 0, got {value}")
        self.sigma_scale = float(sigma_scale)
        self.approximate_kernel_sigma_scale = float(approximate_kernel_sigma_scale)
        self._init_bank(weights, data_root, bank)

    def schedule(self, sigma: Tensor) -> tuple[Tensor, Tensor]:
        """``(denoiser levels (stages,), rho (N, stages))`` for given noise levels ``sigma`` (N,); ``rho``
        uses ``sigma_scale * sigma``."""
        return ircnn_schedule(sigma * self.sigma_scale, self.stages, self.denoiser_first, self.denoiser_last,
                              self.rho_divisor)

    def restore(self, data, sigma: Tensor, on_stage=None) -> Tensor:
        levels, rho = self.schedule(sigma.detach().to("cpu"))
        y = data.initial()
        callback = None if on_stage is None else (lambda k, z, _record: on_stage(k - 1, z))
        result = hqs_solve(data, bank_denoiser(self.bank), levels.tolist(), rho.to(device=y.device, dtype=y.dtype),
                           tol=0.0, callback=callback)
        return result.x.clamp(0.0, 1.0)
