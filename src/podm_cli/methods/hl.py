"""Hyper-Laplacian deconvolution by half-quadratic splitting (Krishnan & Fergus 2009).

Solves, for each image (and each colour channel separately),

    min_x  E(x) = lam/2 ||k * x - y||^2 + sum_i |(Dh x)_i|^alpha + |(Dv x)_i|^alpha,    0 < alpha <= 1,

with circular forward differences ``D = (Dh, Dv)`` (:mod:`podm_cli.physics.differences`) and the blur and
boundary handling of a :class:`~podm_cli.physics.DataTerm`.  Half-quadratic splitting introduces
``w ~ D x`` and minimises

    E_beta(x, w) = lam/2 ||K x - y||^2 + beta/2 ||D x - w||^2 + sum |w|^alpha

alternately, for an increasing sequence ``beta_k = beta0 * beta_rate^k < beta_max`` (defaults 1, 2 sqrt 2,
256: six values 1 .. 181), ``inner_iterations`` alternations per ``beta``, from ``x = data.initial()``
(``y``, or ``y`` extended):

* w-step, separable per pixel: ``w = argmin_w |w|^alpha + beta/2 (w - v)^2`` with ``v = D x``
  (:func:`solve_w`).  The minimiser is 0 below a threshold ``tau(alpha, beta)`` and the largest
  stationary point above it.  For ``w > 0`` (``v > 0``; the problem is odd-symmetric) the stationarity
  condition ``alpha w^(alpha-1) + beta (w - v) = 0`` becomes, after substituting ``w = u^2`` (alpha = 1/2)
  or ``w = u^3`` (alpha = 2/3), the *depressed* polynomials

      alpha = 1/2:  u^3 - v u + 1/(2 beta) = 0,        alpha = 2/3:  u^4 - v u + 2/(3 beta) = 0,

  equivalent to Krishnan & Fergus' cubic ``w^3 - 2v w^2 + v^2 w - 1/(4 beta^2) = 0`` and quartic
  ``w^4 - 3v w^3 + 3v^2 w^2 - v^3 w + 8/(27 beta^3) = 0`` but with fewer terms; both are solved in closed
  form (trigonometric/Cardano for the cubic, Ferrari with a resolvent cubic for the quartic) and the root
  is kept only where it beats ``w = 0``.  Other alpha in (0, 1): a lookup table of the exact minimiser per
  beta (bisection on the convex branch, linear interpolation, exact threshold; see :class:`WLookupTable`).
  alpha = 1: soft thresholding.
* x-step: ``(K^T K + beta/lam D^T D) x = K^T phi + beta/lam D^T w``, one FFT solve
  (:meth:`~podm_cli.physics.DataTerm.solve_quadratic`).

Each step minimises ``E_beta`` exactly, so ``E_beta`` never increases while ``beta`` is fixed; the true
objective ``E(x)`` after each ``beta`` step is recorded in :class:`HLInfo`.

Reference: D. Krishnan, R. Fergus, "Fast image deconvolution using hyper-Laplacian priors", NIPS 2009
(lambda = 2000 for 1 % noise on [0, 1] images, alpha = 2/3, beta 1 -> 256 by 2 sqrt 2, 1 inner iteration).
"""

from __future__ import annotations

import math
from collections import OrderedDict
from dataclasses import dataclass

import torch
from torch import Tensor

from podm_cli.errors import InputError
from podm_cli.methods.base import Method
from podm_cli.methods.data_weight import data_weight, noise_scaled
from podm_cli.physics import DataTerm
from podm_cli.physics.differences import diff_otf_sq, forward_diff, forward_diff_adjoint

__all__ = [
    "HLInfo",
    "HyperLaplacian",
    "WLookupTable",
    "beta_schedule",
    "hl_deconv",
    "hl_threshold",
    "solve_w",
    "solve_w_half",
    "solve_w_two_thirds",
]

_TWO_THIRDS = 2.0 / 3.0


# ----------------------------------------------------------------------------------------- w-step


def _cost(w: Tensor, t: Tensor, alpha: float, beta: float) -> Tensor:
    return w.abs() ** alpha + (0.5 * beta) * (w - t) ** 2


def _keep_if_better(w: Tensor, t: Tensor, v: Tensor, ok: Tensor, alpha: float, beta: float) -> Tensor:
    """``sign(v) w`` where the stationary point exists (``ok``) and beats ``w = 0``; else 0."""
    ok = ok & (_cost(w, t, alpha, beta) < (0.5 * beta) * t * t)
    return torch.where(ok, torch.sign(v) * w, torch.zeros_like(w))


def solve_w_half(v: Tensor, beta: float) -> Tensor:
    """``argmin_w |w|^(1/2) + beta/2 (w - v)^2``, elementwise, in closed form.

    With ``w = u^2``, ``t = |v|``: ``u^3 - t u + q = 0``, ``q = 1/(2 beta)``.  It has two positive roots iff
    ``4 t^3 > 27 q^2``; the larger (the local minimum of the cost) is
    ``u = 2 sqrt(t/3) cos(acos(-(3 q / (2 t)) sqrt(3 / t)) / 3)``.

    >>> solve_w_half(torch.tensor([-3.0, 0.5, 2.0], dtype=torch.float64), 1.0).round(decimals=4).tolist()
    [-2.6955, 0.0, 1.6054]
    """
    t = v.abs()
    q = 0.5 / beta
    tt = t.clamp_min(torch.finfo(t.dtype).tiny ** (1 / 3))
    c = (-(1.5 * q / tt) * torch.sqrt(3.0 / tt)).clamp(-1.0, 1.0)
    u = 2.0 * torch.sqrt(tt / 3.0) * torch.cos(torch.acos(c) / 3.0)
    return _keep_if_better(u * u, t, v, 4.0 * t**3 > 27.0 * q * q, 0.5, beta)


def solve_w_two_thirds(v: Tensor, beta: float) -> Tensor:
    """``argmin_w |w|^(2/3) + beta/2 (w - v)^2``, elementwise, in closed form.

    With ``w = u^3``, ``t = |v|``, ``r = 2/(3 beta)``: ``u^4 - t u + r = 0``.  Ferrari: with ``m > 0`` a root
    of the resolvent ``m^3 - r m - t^2/8 = 0`` and ``s = sqrt(2 m)`` the quartic factors as
    ``(u^2 - s u + m - t/(2s)) (u^2 + s u + m + t/(2s))``; the second factor has no positive root, the first gives
    ``u = (s + sqrt(2 t / s - s^2)) / 2`` (the local minimum) when ``2 t / s > s^2``.  The resolvent's largest
    root is trigonometric when ``4 r^3 > 27 t^4 / 64`` (three real roots) and Cardano's
    ``A + r / (3 A)``, ``A = cbrt(t^2/16 + sqrt(t^4/256 - r^3/27))`` otherwise.

    >>> solve_w_two_thirds(torch.tensor([-3.0, 0.5, 2.0], dtype=torch.float64), 1.0).round(decimals=4).tolist()
    [-2.5094, 0.0, 1.4047]
    """
    t = v.abs()
    r = 2.0 / (3.0 * beta)
    t2 = t * t
    t4 = t2 * t2
    three_real = 4.0 * r**3 > 27.0 * t4 / 64.0
    c = ((3.0 * t2 / (16.0 * r)) * math.sqrt(3.0 / r)).clamp(-1.0, 1.0)
    m_trig = 2.0 * math.sqrt(r / 3.0) * torch.cos(torch.acos(c) / 3.0)
    a = (t2 / 16.0 + torch.sqrt((t4 / 256.0 - r**3 / 27.0).clamp_min(0.0))) ** (1.0 / 3.0)
    a = a.clamp_min(torch.finfo(t.dtype).tiny ** (1 / 3))
    m_card = a + r / (3.0 * a)
    m = torch.where(three_real, m_trig, m_card)
    s = torch.sqrt(2.0 * m)
    disc = 2.0 * t / s - s * s
    u = 0.5 * (s + torch.sqrt(disc.clamp_min(0.0)))
    return _keep_if_better(u**3, t, v, disc > 0, _TWO_THIRDS, beta)


def hl_threshold(alpha: float, beta: float) -> tuple[float, float]:
    """``(tau, w_tau)``: ``argmin_w |w|^alpha + beta/2 (w - v)^2`` is 0 for ``|v| <= tau`` and jumps to
    ``w_tau`` at ``|v| = tau``.  With ``l = 1/beta`` (generalised soft-thresholding, Zuo et al. 2013):
    ``w_tau = (2 l (1 - alpha))^(1/(2 - alpha))``, ``tau = w_tau + l alpha w_tau^(alpha - 1)``.

    >>> [round(x, 6) for x in hl_threshold(0.5, 1.0)]
    [1.5, 1.0]
    """
    if not 0 < alpha < 1:
        raise InputError(f"hl: threshold defined for 0 < alpha < 1, got {alpha}")
    lam = 1.0 / beta
    w_tau = (2.0 * lam * (1.0 - alpha)) ** (1.0 / (2.0 - alpha))
    return w_tau + lam * alpha * w_tau ** (alpha - 1.0), w_tau


def _bisect_branch(t: Tensor, alpha: float, beta: float, w_lo: float, iterations: int = 64) -> Tensor:
    """The root of ``alpha w^(alpha-1) + beta (w - t) = 0`` in ``[w_lo, t]`` for ``t >= tau`` (float64)."""
    lo = torch.full_like(t, w_lo)
    hi = t.clone()
    for _ in range(iterations):
        mid = 0.5 * (lo + hi)
        pos = alpha * mid ** (alpha - 1.0) + beta * (mid - t) > 0
        hi = torch.where(pos, mid, hi)
        lo = torch.where(pos, lo, mid)
    return 0.5 * (lo + hi)


class WLookupTable:
    """Lookup table for ``w(v) = argmin_w |w|^alpha + beta/2 (w - v)^2`` at one ``(alpha, beta)``.

    Like Krishnan & Fergus' LUT for general alpha, with three refinements: the jump is exact (``w = 0``
    for ``|v| <= tau``, :func:`hl_threshold`); the table holds the *shrinkage* ``d(t) = t - w(t)`` of the
    nonzero branch (smooth and ``O(1/beta)``, so linear interpolation errs far less than on ``w``); and the
    nodes ``t_j = tau + span (j / (size - 1))^2`` crowd near ``tau``, where the branch curves most.  Nodes are
    exact up to float64 bisection.  ``|v| > tau + span`` (rare for [0, 1] images with the default span 2)
    is solved exactly by bisection.
    """

    def __init__(self, alpha: float, beta: float, span: float = 2.0, size: int = 4096):
        self.alpha, self.beta, self.span, self.size = float(alpha), float(beta), float(span), int(size)
        self.tau, self.w_tau = hl_threshold(self.alpha, self.beta)
        t = self.tau + self.span * torch.linspace(0.0, 1.0, self.size, dtype=torch.float64) ** 2
        w = _bisect_branch(t, self.alpha, self.beta, self.w_tau)
        w[0] = self.w_tau
        self._tables: dict[tuple, Tensor] = {(torch.device("cpu"), torch.float64): t - w}

    def _table(self, device, dtype) -> Tensor:
        key = (torch.device(device), dtype)
        if key not in self._tables:
            self._tables[key] = self._tables[(torch.device("cpu"), torch.float64)].to(device=device, dtype=dtype)
        return self._tables[key]

    def __call__(self, v: Tensor) -> Tensor:
        table = self._table(v.device, v.dtype)
        t = v.abs()
        f = torch.sqrt(((t - self.tau) / self.span).clamp(0.0, 1.0)) * (self.size - 1)
        i = f.floor().clamp(max=self.size - 2).long()
        w = t - torch.lerp(table[i], table[i + 1], f - i.to(f.dtype))
        far = t > self.tau + self.span
        if bool(far.any()):
            exact = _bisect_branch(t[far].double(), self.alpha, self.beta, self.w_tau)
            w = w.masked_scatter(far, exact.to(w.dtype))
        return torch.where(t > self.tau, torch.sign(v) * w, torch.zeros_like(w))


_LUT_CACHE: OrderedDict[tuple, WLookupTable] = OrderedDict()


def _lut(alpha: float, beta: float) -> WLookupTable:
    key = (float(alpha), float(beta))
    if key in _LUT_CACHE:
        _LUT_CACHE.move_to_end(key)
    else:
        _LUT_CACHE[key] = WLookupTable(alpha, beta)
        while len(_LUT_CACHE) > 64:
            _LUT_CACHE.popitem(last=False)
    return _LUT_CACHE[key]


def solve_w(v: Tensor, alpha: float, beta: float) -> Tensor:
    """``argmin_w |w|^alpha + beta/2 (w - v)^2`` elementwise (closed form for alpha in {1/2, 2/3, 1},
    else a cached :class:`WLookupTable` per ``(alpha, beta)``)."""
    if not 0 < alpha <= 1:
        raise InputError(f"hl: alpha must be in (0, 1], got {alpha}")
    if alpha == 1.0:
        return torch.sign(v) * (v.abs() - 1.0 / beta).clamp_min(0.0)
    if alpha == 0.5:
        return solve_w_half(v, beta)
    if abs(alpha - _TWO_THIRDS) < 1e-12:
        return solve_w_two_thirds(v, beta)
    return _lut(alpha, beta)(v)


# ----------------------------------------------------------------------------------------- solver


def beta_schedule(beta0: float = 1.0, beta_rate: float = 2 * math.sqrt(2), beta_max: float = 256.0) -> list[float]:
    """``[beta0 * beta_rate^k for k = 0, 1, ... while < beta_max]``.

    >>> [round(b, 2) for b in beta_schedule()]
    [1.0, 2.83, 8.0, 22.63, 64.0, 181.02]
    """
    if not (beta0 > 0 and beta_rate > 1 and beta_max > beta0):
        raise InputError(f"hl: need 0 < beta0 < beta_max and beta_rate > 1, got {beta0}, {beta_rate}, {beta_max}")
    betas, b = [], float(beta0)
    while b < beta_max:
        betas.append(b)
        b *= beta_rate
    return betas


@dataclass
class HLInfo:
    """Diagnostics of one :func:`hl_deconv` run (per batch item).

    betas: the continuation values; ``objective``: ``(len(betas) + 1, N)`` true objective ``E(x)`` at
    ``x = data.initial()`` and after each beta step; ``energy``: ``(2 * len(betas) * inner_iterations, N)`` the
    half-quadratic energy ``E_beta(x, w)`` after every w-step and x-step (at that step's beta).
    """

    betas: list[float]
    objective: Tensor
    energy: Tensor


def _sum_items(t: Tensor) -> Tensor:
    return t.reshape(t.shape[0], -1).sum(dim=1)


def hl_deconv(
    data: DataTerm,
    lam,
    alpha: float = _TWO_THIRDS,
    beta0: float = 1.0,
    beta_rate: float = 2 * math.sqrt(2),
    beta_max: float = 256.0,
    inner_iterations: int = 1,
    on_stage=None,
) -> tuple[Tensor, HLInfo]:
    """Hyper-Laplacian deconvolution of the observation of ``data``; returns ``(x, info)``, ``x`` on
    ``data.grid``.  ``lam``: scalar or ``(N,)`` data weight; ``on_stage(index, x)`` (optional) receives the
    estimate after each beta step."""
    if not 0 < alpha <= 1:
        raise InputError(f"hl: alpha must be in (0, 1], got {alpha}")
    if int(inner_iterations) < 1:
        raise InputError(f"hl: inner_iterations must be >= 1, got {inner_iterations}")
    x = data.initial()
    lam_t = data_weight(lam, x, "hl")
    betas = beta_schedule(beta0, beta_rate, beta_max)
    reg_sq = diff_otf_sq(data.grid, x.dtype, x.device)
    lam_items = lam_t.reshape(-1)

    def prior(dh: Tensor, dv: Tensor) -> Tensor:
        return _sum_items(dh.abs() ** alpha + dv.abs() ** alpha)

    dh, dv = forward_diff(x)
    fit = lam_items * data.f(x)
    objective = [fit + prior(dh, dv)]
    energy = []
    for index, beta in enumerate(betas):
        reg_weight = beta / lam_t  # the x-step's regulariser weight beta / lam
        for _ in range(int(inner_iterations)):
            wh, wv = solve_w(dh, alpha, beta), solve_w(dv, alpha, beta)
            w_cost = prior(wh, wv)
            energy.append(fit + 0.5 * beta * _sum_items((dh - wh) ** 2 + (dv - wv) ** 2) + w_cost)
            extra = reg_weight * torch.fft.rfft2(forward_diff_adjoint(wh, wv))
            x = data.solve_quadratic(extra, reg_weight, reg_sq, x=data.estimate(x, index))
            dh, dv = forward_diff(x)
            fit = lam_items * data.f(x)
            energy.append(fit + 0.5 * beta * _sum_items((dh - wh) ** 2 + (dv - wv) ** 2) + w_cost)
        objective.append(fit + prior(dh, dv))
        if on_stage is not None:
            on_stage(index, x)
    return x, HLInfo(betas=betas, objective=torch.stack(objective), energy=torch.stack(energy))


class HyperLaplacian(Method):
    """Krishnan & Fergus (2009) hyper-Laplacian deconvolution:
    ``min_x lam/2 ||k * x - y||^2 + sum |D x|^alpha`` by half-quadratic splitting.

    Parameters (paper symbols: Krishnan & Fergus 2009)
    ----------
    lam
        Data-fidelity weight for images on [0, 1] (the paper's ``lambda``; they suggest 2000 for 1 % noise).
        The default comes from the sweep in ``docs/tv_hl_weights.md``.
    alpha
        Prior exponent in (0, 1] (the paper's ``alpha``); 1/2 and 2/3 have closed-form w-steps, others use a
        lookup table.
    beta0, beta_rate, beta_max, inner_iterations
        Continuation of the splitting weight ``beta = beta0 * beta_rate^k < beta_max`` (the paper's
        ``beta_0``, ``beta_Inc``, ``beta_Max``) and w/x alternations per beta (the paper's ``T``).
    sigma_ref, sigma_power
        A number (0.01 in ``configs/method/hl.yaml``, what ``podm eval`` / ``podm deblur`` use): ``lam`` is
        the weight at noise level ``sigma_ref``, rescaled per image as
        ``lam * (sigma_ref / max(sigma, MIN_NOISE_SIGMA))^sigma_power`` (1.5, measured).  ``sigma_ref=None``
        (the constructor's default, for sweeps of the raw weight): ``lam`` as is.

    The estimate after each beta step is a stage (``on_stage``).  After each call ``last_info`` holds an
    :class:`HLInfo` (objective per beta step, HQS energies).
    """

    name = "hl"
    bytes_per_pixel = 400.0  # measured 180-320 (scripts/bench.py --memory-per-pixel)
    source = "recomputed"

    def __init__(
        self,
        lam: float = 2828.0,
        alpha: float = _TWO_THIRDS,
        beta0: float = 1.0,
        beta_rate: float = 2 * math.sqrt(2),
        beta_max: float = 256.0,
        inner_iterations: int = 1,
        sigma_ref: float | None = None,
        sigma_power: float = 1.5,
    ):
        super().__init__()
        if not lam > 0:
            raise InputError(f"hl: lam must be > 0, got {lam}")
        if not 0 < alpha <= 1:
            raise InputError(f"hl: alpha must be in (0, 1], got {alpha}")
        if int(inner_iterations) < 1:
            raise InputError(f"hl: inner_iterations must be >= 1, got {inner_iterations}")
        if sigma_ref is not None and not sigma_ref > 0:
            raise InputError(f"hl: sigma_ref must be > 0 or null, got {sigma_ref}")
        beta_schedule(beta0, beta_rate, beta_max)  # validates
        self.lam = float(lam)
        self.alpha = float(alpha)
        self.beta0, self.beta_rate, self.beta_max = float(beta0), float(beta_rate), float(beta_max)
        self.inner_iterations = int(inner_iterations)
        self.sigma_ref = None if sigma_ref is None else float(sigma_ref)
        self.sigma_power = float(sigma_power)
        self.last_info: HLInfo | None = None

    def weight(self, sigma: Tensor) -> Tensor | float:
        """The per-image ``lam`` used for noise levels ``sigma`` (``(N,)``)."""
        return noise_scaled(self.lam, self.sigma_ref, sigma, "hl", self.sigma_power)

    def restore(self, data: DataTerm, sigma: Tensor, on_stage=None) -> Tensor:
        x, self.last_info = hl_deconv(
            data,
            self.weight(sigma),
            self.alpha,
            self.beta0,
            self.beta_rate,
            self.beta_max,
            self.inner_iterations,
            on_stage,
        )
        return x
