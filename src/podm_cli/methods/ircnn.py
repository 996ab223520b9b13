"""IRCNN baseline: half-quadratic splitting with the official bank of 25 CNN denoisers.

Zhang, Zuo, Gu & Zhang, "Learning Deep CNN Denoiser Prior for Image Restoration", CVPR 2017. The schedule
follows the authors' deblurring demo (cszn/IRCNN ``Demo_deblur.m``; DPIR's ``get_rho_sigma1`` is the same
rule), with ``sigma`` the measurement noise level on [0, 1]::

    s_i    = logspace(log10(sigma_max), log10(sigma_floor), iterations)[i]    # on [0, 255]
    lamda  = sigma^2 / lamda_divisor                                         # lamda_divisor = 3
    rho_i  = lamda * 255^2 / s_i^2  =  (sigma^2 / 3) / (s_i / 255)^2
    z_0    = y
    x_i    = argmin_x ||k * x - y||^2 + rho_i ||x - z_{i-1}||^2
           = IFFT[(conj(K) Y + rho_i FFT(z_{i-1})) / (|K|^2 + rho_i)]          # circular blur
    z_i    = D_{s_i}(x_i)      # bank net n = min(25, max(ceil(s_i / 2), 1)), i.e. index ceil(s_i/2) - 1

and the estimate is ``z_iterations`` (clipped to [0, 1]). Defaults: 30 iterations, ``sigma_max = 49``
and ``sigma_floor = 13``, as in the demo ("from {1 3 5 7 9 11 13 15}"). The floor was checked on data
disjoint from every test set (BSDS500 *train* crops, Schelten et al. kernels, 1 % noise): 13 gave the best
mean PSNR of {3, 5, 7.65, 10, 13, 16, 20} (``docs/ircnn_floor.md``). As in DPIR, ``sigma`` is bounded
below by 0.255/255 so a noise-free input does not make ``rho`` zero (an unregularised inverse filter).

The official nets are grey; colour images are restored channel by channel.

Example::

    >>> import torch
    >>> from podm_cli.methods.ircnn import hqs_schedule
    >>> s, rho = hqs_schedule(torch.tensor([0.01]), iterations=3, sigma_max=49.0, sigma_floor=13.0)
    >>> [round(v * 255, 2) for v in s.tolist()]
    [49.0, 25.24, 13.0]
    >>> round(float(rho[0, 0]), 6) == round(0.01**2 / 3 / (49 / 255) ** 2, 6)
    True
"""

from __future__ import annotations

import os

import torch
from torch import Tensor

from podm_cli.errors import InputError
from podm_cli.methods.base import Method, Requirements
from podm_cli.methods.official_bank import OfficialBank
from podm_cli.nets.bank import DenoiserBank
from podm_cli.nets.weights import IRCNN_COUNT, KERAS_RELPATH, keras_file

__all__ = ["DEFAULT_SIGMA_FLOOR", "IRCNN", "OfficialBank", "hqs_schedule"]

#: Default last denoiser level (0..255): the demo's 13, best on BSDS500-train data (docs/ircnn_floor.md).
DEFAULT_SIGMA_FLOOR = 13.0
#: Lower bound on the noise level used in rho (DPIR's 0.255/255).
MIN_NOISE_SIGMA = 0.255 / 255.0


def hqs_schedule(
    sigma: Tensor,
    iterations: int = 30,
    sigma_max: float = 49.0,
    sigma_floor: float = DEFAULT_SIGMA_FLOOR,
    lamda_divisor: float = 3.0,
) -> tuple[Tensor, Tensor]:
    """``(denoiser sigmas (iterations,) on [0, 1], rho (N, iterations))`` of IRCNN's HQS for noise ``sigma``.

    ``sigma``: (N,) noise levels on [0, 1]; ``sigma_max``/``sigma_floor`` on [0, 255].
    """
    if iterations < 1:
        raise InputError(f"IRCNN needs iterations >= 1, got {iterations}")
    if not (0 < sigma_floor <= sigma_max):
        raise InputError(f"need 0 < sigma_floor <= sigma_max, got {sigma_floor} and {sigma_max}")
    if lamda_divisor <= 0:
        raise InputError(f"lamda_divisor must be > 0, got {lamda_divisor}")
    sig = torch.as_tensor(sigma, dtype=torch.float64).reshape(-1)
    if not torch.isfinite(sig).all() or (sig < 0).any():
        raise InputError(f"noise sigma must be finite and >= 0, got {sig.tolist()}")
    s255 = torch.logspace(
        torch.log10(torch.tensor(float(sigma_max), dtype=torch.float64)),
        torch.log10(torch.tensor(float(sigma_floor), dtype=torch.float64)),
        int(iterations),
        dtype=torch.float64,
    )
    lamda = sig.clamp_min(MIN_NOISE_SIGMA) ** 2 / float(lamda_divisor)
    rho = lamda[:, None] * 255.0**2 / s255[None, :] ** 2
    return s255 / 255.0, rho


class IRCNN(OfficialBank, Method):
    """IRCNN (HQS + the 25 official grey CNN denoisers), non-blind deconvolution baseline.

    Args:
        iterations: HQS iterations (30).
        sigma_max: first denoiser level on [0, 255] (49).
        sigma_floor: last denoiser level on [0, 255]; levels are log-spaced in between.
        lamda_divisor: ``lamda = sigma^2 / lamda_divisor`` (the demo's 3, "from {1 2 3 4}").
        weights: ``None`` = the official Keras bank under the data root; or a folder of ``net{i}.hdf5``
            or an ``ircnn_gray.pth``-layout file.
        data_root: data root for the default weights (default: the locator's choice).
        bank: an already-loaded :class:`~podm_cli.nets.bank.DenoiserBank` (overrides ``weights``).
        mode, boundary, edgetaper_iterations: see :class:`~podm_cli.methods.base.Method`.
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
        iterations: int = 30,
        sigma_max: float = 49.0,
        sigma_floor: float = DEFAULT_SIGMA_FLOOR,
        lamda_divisor: float = 3.0,
        weights: str | os.PathLike | None = None,
        data_root: str | os.PathLike | None = None,
        bank: DenoiserBank | None = None,
        mode: str = "circular",
        boundary: str = "liu",
        edgetaper_iterations: int = 3,
    ):
        super().__init__(mode=mode, boundary=boundary, edgetaper_iterations=edgetaper_iterations)
        hqs_schedule(torch.zeros(1), iterations, sigma_max, sigma_floor, lamda_divisor)  # validate early
        self.iterations = int(iterations)
        self.sigma_max = float(sigma_max)
        self.sigma_floor = float(sigma_floor)
        self.lamda_divisor = float(lamda_divisor)
        self._init_bank(weights, data_root, bank)

    # -- solver ----------------------------------------------------------------------------------------
    def schedule(self, sigma: Tensor) -> tuple[Tensor, Tensor]:
        """``(denoiser sigmas, rho)`` for noise levels ``sigma`` (N,), see :func:`hqs_schedule`."""
        return hqs_schedule(sigma, self.iterations, self.sigma_max, self.sigma_floor, self.lamda_divisor)

    def restore_circular(self, y: Tensor, kernel: Tensor, sigma: Tensor) -> Tensor:
        if y.ndim != 4:
            raise InputError(f"IRCNN expects (N, C, H, W), got shape {tuple(y.shape)}")
        from podm_cli.physics import psf2otf

        n, c, h, w = y.shape
        bank = self.bank
        dtype = y.dtype if y.dtype in (torch.float32, torch.float64) else torch.float32
        y = y.to(dtype)
        otf = psf2otf(kernel.to(device=y.device, dtype=dtype), (h, w))
        if otf.ndim == 2:
            otf = otf[None, None]
        upper = otf.conj() * torch.fft.rfft2(y)
        denom = otf.real**2 + otf.imag**2
        sig_den, rho = self.schedule(sigma.detach().to("cpu"))
        rho = rho.to(device=y.device, dtype=dtype)  # (N, iterations)
        z = y
        for i in range(self.iterations):
            r = rho[:, i].reshape(n, 1, 1, 1)
            x = torch.fft.irfft2((upper + r * torch.fft.rfft2(z)) / (denom + r), s=(h, w))
            z = bank.denoise(x.reshape(n * c, 1, h, w), float(sig_den[i])).reshape(n, c, h, w)
            self._emit_stage(i, z)  # save_stages hook (no-op unless stage_callback is set)
        return z.clamp(0.0, 1.0)
