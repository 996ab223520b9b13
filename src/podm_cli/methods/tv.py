"""Isotropic total-variation deconvolution by ADMM (FTVd).

Solves, for each image (and each colour channel separately),

    min_x  lam/2 ||k * x - y||^2 + TV(x),      TV(x) = sum_i sqrt((Dh x)_i^2 + (Dv x)_i^2),

with circular forward differences ``D = (Dh, Dv)`` (:mod:`podm_cli.physics.differences`) and the blur and
boundary handling of a :class:`~podm_cli.physics.DataTerm`.  Splitting ``w = D x`` gives the augmented
Lagrangian

    L(w, x, m) = sum_i ||w_i|| - m^T (w - D x) + beta/2 ||w - D x||^2 + lam/2 ||K x - y||^2,

minimised alternately (Tao & Yang's FTVd v4 / Wang, Yang, Yin & Zhang 2008, the ADMM form):

1. w-step, isotropic shrinkage per pixel:  ``w_i = max(||z_i|| - 1/beta, 0) z_i / ||z_i||``,
   ``z = D x + m / beta``;
2. x-step, one FFT solve (:meth:`~podm_cli.physics.DataTerm.solve_quadratic` with regulariser weight
   ``beta / lam`` and ``reg_sq = |Dh_hat|^2 + |Dv_hat|^2``):
   ``(K^T K + beta/lam D^T D) x = K^T phi + beta/lam D^T (w - m/beta)``;
3. multiplier step:  ``m <- m - gamma beta (w - D x)``, ``gamma in (0, (1 + sqrt 5)/2)`` (1.618);

from ``x^0 = data.initial()`` (``y``, or ``y`` extended), ``m^0 = 0``, until
``||x^{k+1} - x^k|| / ||x^k|| < tol`` or ``max_iter`` iterations.  The primal residual ``||D x^k - w^k||``
goes to 0 as ADMM converges (recorded in ``info``).

References: Y. Wang, J. Yang, W. Yin, Y. Zhang, "A new alternating minimization algorithm for total
variation image reconstruction", SIAM J. Imaging Sci. 1(3), 2008; M. Tao, J. Yang, "Alternating direction
algorithms for total variation deconvolution in image reconstruction", TR0918, Nanjing Univ., 2009
(FTVd v4: beta = 10, gamma = 1.618, tol = 1e-3).

Batched over N and C with per-item kernels; each batch item stops on its own (converged items are frozen),
so a batch gives the same result as a loop over its items.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

from podm_cli.errors import InputError
from podm_cli.methods.base import Method
from podm_cli.methods.data_weight import data_weight, noise_scaled
from podm_cli.optim.objective import item_norm
from podm_cli.physics import DataTerm
from podm_cli.physics.differences import diff_otf_sq, forward_diff, forward_diff_adjoint

__all__ = ["TV", "TVInfo", "shrink_isotropic", "tv_deconv"]


@dataclass
class TVInfo:
    """Diagnostics of one :func:`tv_deconv` run (per batch item).

    iterations: ``(N,)`` iterations each item ran; ``residual``: ``(K, N)`` primal residual
    ``||D x^k - w^k||`` after iteration ``k`` (a frozen item repeats its last value); ``rel_change``:
    ``(K, N)`` ``||x^k - x^{k-1}|| / ||x^{k-1}||``.
    """

    iterations: Tensor
    residual: Tensor
    rel_change: Tensor


def shrink_isotropic(zh: Tensor, zv: Tensor, thresh) -> tuple[Tensor, Tensor]:
    """Per-pixel 2-D shrinkage: ``argmin_w ||w|| + 1/(2 thresh) ||w - z||^2 = max(|z| - thresh, 0) z/|z|``.

    >>> wh, wv = shrink_isotropic(torch.tensor([3.0, 0.1]), torch.tensor([4.0, 0.0]), 1.0)
    >>> wh.tolist(), wv.tolist()
    ([2.4000000953674316, 0.0], [3.200000047683716, 0.0])
    """
    mag = torch.sqrt(zh * zh + zv * zv)
    scale = torch.clamp(mag - thresh, min=0) / torch.clamp(mag, min=torch.finfo(mag.dtype).tiny)
    return zh * scale, zv * scale


def tv_deconv(
    data: DataTerm,
    lam,
    beta: float = 10.0,
    gamma: float = 1.618,
    tol: float = 1e-3,
    max_iter: int = 500,
) -> tuple[Tensor, TVInfo]:
    """ADMM TV deconvolution of the observation of ``data``; returns ``(x, info)``, ``x`` on ``data.grid``.

    ``lam``: scalar or ``(N,)`` data weight.
    """
    if beta <= 0 or not 0 < gamma < (1 + 5**0.5) / 2:
        raise InputError(f"need beta > 0 and 0 < gamma < 1.618..., got beta={beta}, gamma={gamma}")
    x = data.initial()
    n = x.shape[0]
    reg_weight = beta / data_weight(lam, x, "tv")  # the x-step's regulariser weight beta / lam
    reg_sq = diff_otf_sq(data.grid, x.dtype, x.device)

    m_h = torch.zeros_like(x)
    m_v = torch.zeros_like(x)
    dh, dv = forward_diff(x)
    active = torch.ones(n, dtype=torch.bool, device=x.device)
    iterations = torch.zeros(n, dtype=torch.long, device=x.device)
    last_res = torch.zeros(n, dtype=x.dtype, device=x.device)
    residuals, changes = [], []
    for it in range(int(max_iter)):
        wh, wv = shrink_isotropic(dh + m_h / beta, dv + m_v / beta, 1.0 / beta)
        extra = reg_weight * torch.fft.rfft2(forward_diff_adjoint(wh - m_h / beta, wv - m_v / beta))
        x_new = data.solve_quadratic(extra, reg_weight, reg_sq, x=data.estimate(x, it))
        dh_new, dv_new = forward_diff(x_new)
        rh, rv = wh - dh_new, wv - dv_new
        res = torch.sqrt(item_norm(rh) ** 2 + item_norm(rv) ** 2)
        change = item_norm(x_new - x) / item_norm(x).clamp_min(torch.finfo(x.dtype).tiny)

        a4 = active.reshape(n, 1, 1, 1)
        x = torch.where(a4, x_new, x)
        dh = torch.where(a4, dh_new, dh)
        dv = torch.where(a4, dv_new, dv)
        m_h = torch.where(a4, m_h - (gamma * beta) * rh, m_h)
        m_v = torch.where(a4, m_v - (gamma * beta) * rv, m_v)
        last_res = torch.where(active, res, last_res)
        iterations += active.long()
        residuals.append(last_res)
        changes.append(torch.where(active, change, torch.zeros_like(change)))
        active = active & ~(change < tol)
        if not bool(active.any()):
            break
    info = TVInfo(iterations=iterations, residual=torch.stack(residuals), rel_change=torch.stack(changes))
    return x, info


class TV(Method):
    """Isotropic TV deconvolution (FTVd ADMM): ``min_x lam/2 ||k * x - y||^2 + TV(x)``.

    Parameters (paper symbols: Wang, Yang, Yin & Zhang 2008 / FTVd v4)
    ----------
    lam
        Data-fidelity weight for images on [0, 1] (FTVd's ``mu``; larger = less regularisation).  The
        default comes from the sweep in ``docs/tv_hl_weights.md`` (BSDS500 train crops, Schelten kernels,
        1 % noise).
    beta, gamma, tol, max_iter
        ADMM penalty (FTVd's ``beta``), multiplier step (``gamma``), stopping tolerance on the relative
        change, iteration cap (FTVd v4 defaults).
    sigma_ref, sigma_power
        A number (0.01 in ``configs/method/tv.yaml``, what ``podm eval`` / ``podm deblur`` use): ``lam`` is
        the weight at noise level ``sigma_ref`` and is rescaled per image as
        ``lam * (sigma_ref / max(sigma, MIN_NOISE_SIGMA))^sigma_power`` (1.5 measured by the sweep; 2 is the
        MAP weighting of a Gaussian likelihood at a fixed prior weight; the floor is 0.255/255).
        ``sigma_ref=None`` (the constructor's default, for sweeps of the raw weight): ``lam`` as is, whatever
        the noise level.

    Each ADMM iteration is a stage for the data term's ``adjust_after`` (``boundary="adjust"``); TV reports
    no stage estimates.  After each call ``last_info`` holds a :class:`TVInfo` (iterations, primal
    residuals, relative changes).
    """

    name = "tv"
    bytes_per_pixel = 850.0  # measured 310-810 (scripts/bench.py --memory-per-pixel)
    source = "recomputed"

    def __init__(
        self,
        lam: float = 1414.0,
        beta: float = 10.0,
        gamma: float = 1.618,
        tol: float = 1e-3,
        max_iter: int = 500,
        sigma_ref: float | None = None,
        sigma_power: float = 1.5,
    ):
        super().__init__()
        if not lam > 0:
            raise InputError(f"tv: lam must be > 0, got {lam}")
        if sigma_ref is not None and not sigma_ref > 0:
            raise InputError(f"tv: sigma_ref must be > 0 or null, got {sigma_ref}")
        if not beta > 0 or not 0 < gamma < (1 + 5**0.5) / 2:
            raise InputError(f"tv: need beta > 0 and 0 < gamma < 1.618..., got beta={beta}, gamma={gamma}")
        if int(max_iter) < 1 or not tol >= 0:
            raise InputError(f"tv: need max_iter >= 1 and tol >= 0, got {max_iter}, {tol}")
        self.lam = float(lam)
        self.beta = float(beta)
        self.gamma = float(gamma)
        self.tol = float(tol)
        self.max_iter = int(max_iter)
        self.sigma_ref = None if sigma_ref is None else float(sigma_ref)
        self.sigma_power = float(sigma_power)
        self.last_info: TVInfo | None = None

    def weight(self, sigma: Tensor) -> Tensor | float:
        """The per-image ``lam`` used for noise levels ``sigma`` (``(N,)``)."""
        return noise_scaled(self.lam, self.sigma_ref, sigma, "tv", self.sigma_power)

    def restore(self, data: DataTerm, sigma: Tensor, on_stage=None) -> Tensor:
        x, self.last_info = tv_deconv(data, self.weight(sigma), self.beta, self.gamma, self.tol, self.max_iter)
        return x
