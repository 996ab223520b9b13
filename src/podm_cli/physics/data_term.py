"""The deconvolution data term: one object that every method, model and solver inverts the blur with.

A :class:`DataTerm` is built once per call from the observation ``y`` (``(N, C, h, w)``), the kernel
(``(kh, kw)`` or ``(N, 1, kh, kw)``, a true convolution kernel centred at ``(kh // 2, kw // 2)``) and the
boundary handling. The estimate ``x`` lives on a *grid* ``(H, W)`` where the blur is circular, so every
step below is diagonal in the Fourier basis:

* ``mode="circular"``: the grid is ``y``'s own size and ``y = k (*) x`` (wrap-around).
* ``mode="valid"``: ``y`` is the ``valid`` part of a blur (no boundary assumption). The grid is
  ``(next_fast_len(h + kh - 1), next_fast_len(w + kw - 1))`` and ``y`` sits at ``crop`` in it, so that
  ``y = M (k (*) x)`` exactly (``M`` keeps ``crop``; the grid is large enough that no wrapped term reaches
  it). The Fourier steps need an observation on the whole grid, ``phi``:

  - ``boundary`` in ``liu | edgetaper | replicate``: ``phi`` is ``y`` extended once
    (:func:`~podm_cli.physics.boundary.extend_for_deconv`);
  - ``boundary="adjust"``: ``phi_t = P0 y + (1 - M)(k (*) x_t)`` with the current estimate ``x_t`` (the
    masked model of Almeida & Figueiredo 2013 as used by FDN, Kruse et al. 2017): ``y`` where it was
    observed, the current estimate re-blurred elsewhere. The first ``phi`` (no estimate yet) is ``y``
    extended by the ``start`` rule.

Maths (``F`` = ``rfft2``, ``K`` = the OTF on the grid):

* ``prox(v, rho, x)  = argmin_u 1/2 ||k (*) u - phi||^2 + rho/2 ||u - v||^2
                     = F^-1[(conj(K) F(phi) + rho F(v)) / (|K|^2 + rho)]``;
* ``solve_quadratic(extra_hat, weight, reg_sq, x) = F^-1[(conj(K) F(phi) + extra_hat) / (|K|^2 + weight reg_sq)]``;
* ``f(x) = 1/2 ||M (k (*) x) - P0 y||^2`` (circular: ``M = 1``, ``1/2 ||k (*) x - y||^2``), the *true*
  data term whatever the boundary rule, with its exact gradient ``grad_f(x) = K^T M (K x - P0 y)``.

Example::

    >>> import torch
    >>> from podm_cli.physics import Blur, DataTerm
    >>> k = torch.ones(5, 5, dtype=torch.float64) / 25
    >>> y = Blur(k, "valid")(torch.rand(2, 1, 40, 36, dtype=torch.float64))
    >>> data = DataTerm.build(y, k, mode="valid", boundary="adjust", start="liu")
    >>> tuple(y.shape), data.grid, data.crop
    ((2, 1, 36, 32), (40, 36), (slice(0, 36, None), slice(0, 32, None)))
    >>> x = data.prox(data.initial(), 0.01)                 # one Fourier step on the grid
    >>> tuple(data.output(x).shape)
    (2, 1, 36, 32)
    >>> phi = data.observation(x)                           # y inside crop, k * x outside
    >>> bool(torch.equal(phi[..., data.crop[0], data.crop[1]], y))
    True
"""

from __future__ import annotations

import numpy as np
import torch
from torch import Tensor

from podm_cli.errors import InputError
from podm_cli.physics.boundary import EXTEND_METHODS, extend_for_deconv
from podm_cli.physics.fft import psf2otf

__all__ = ["BOUNDARIES", "DATA_MODES", "START_RULES", "DataTerm", "item_weight"]

DATA_MODES = ("circular", "valid")
#: Boundary rules for ``valid`` data: extend ``y`` once (:data:`EXTEND_METHODS`) or adjust every step.
BOUNDARIES = (*EXTEND_METHODS, "adjust")
#: How ``boundary="adjust"`` makes its first observation (no estimate yet).
START_RULES = ("edgetaper", "liu", "replicate")


def item_weight(value, like: Tensor) -> Tensor:
    """A float or ``(N,)`` weight as a 0-d tensor or ``(N, 1, 1, 1)``, in ``like``'s real dtype and device.

    >>> item_weight(0.5, torch.zeros(2, 1, 3, 3)).shape, item_weight(torch.tensor([1.0, 2.0]), torch.zeros(2, 1, 3, 3)).shape
    (torch.Size([]), torch.Size([2, 1, 1, 1]))
    """
    dtype = like.real.dtype if like.is_complex() else like.dtype
    t = torch.as_tensor(value, dtype=dtype, device=like.device)
    if t.ndim == 0 or t.numel() == 1:
        return t.reshape(())
    return t.reshape(-1, *([1] * (like.ndim - 1)))


class DataTerm:
    """The data term of one batch of observations; see the module docstring for the maths.

    Build it with :meth:`build`. Attributes: ``y`` (the observation as given), ``kernel``, ``mode``,
    ``boundary``, ``grid`` ``(H, W)``, ``crop`` (``x[..., crop[0], crop[1]]`` is aligned with ``y``),
    ``otf`` (half-spectrum OTF on the grid, ``(H, W//2+1)`` or ``(N, 1, H, W//2+1)``) and
    ``otf_sq = |otf|^2``.
    """

    def __init__(self, y: Tensor, kernel: Tensor, mode: str, boundary: str, crop: tuple[slice, slice],
                 initial: Tensor, adjust_after: int = 0):
        self.y = y
        self.kernel = kernel
        self.mode = mode
        self.boundary = boundary
        self.crop = crop
        self._initial = initial
        self.adjust_after = int(adjust_after)
        self.grid = (int(initial.shape[-2]), int(initial.shape[-1]))
        self.otf = psf2otf(kernel, self.grid)
        self.otf_sq = self.otf.real**2 + self.otf.imag**2
        self._phi0_rhs: Tensor | None = None  # conj(K) F(initial()), built on first use
        self._y0: Tensor | None = None  # P0 y on the grid (valid)
        self._true_rhs: Tensor | None = None  # conj(K) F(P0 y)
        self._quad_key = None
        self._quad_denom = None

    # ------------------------------------------------------------------ construction
    @classmethod
    def build(cls, y: Tensor, kernel, mode: str = "circular", boundary: str = "liu", taper_iterations: int = 3,
              start: str = "edgetaper", adjust_after: int = 0) -> DataTerm:
        """The data term of ``y`` blurred by ``kernel`` (see the module docstring).

        ``boundary`` (``liu | edgetaper | replicate | adjust``), ``taper_iterations`` (edgetaper's) and
        ``start`` (``adjust``'s first observation: ``edgetaper | liu | replicate``) matter for ``valid`` only;
        ``adjust_after``: solvers keep the first observation for their first ``adjust_after`` stages
        (:meth:`estimate`).
        The kernel is used in ``y``'s dtype and on its device.
        """
        if mode not in DATA_MODES:
            raise InputError(f"blur mode must be one of {DATA_MODES}, got {mode!r}")
        if boundary not in BOUNDARIES:
            raise InputError(f"boundary must be one of {BOUNDARIES}, got {boundary!r}")
        if start not in START_RULES:
            raise InputError(f"boundary start rule must be one of {START_RULES}, got {start!r}")
        if int(adjust_after) < 0:
            raise InputError(f"adjust_after must be >= 0, got {adjust_after}")
        if not isinstance(y, Tensor) or y.ndim != 4:
            raise InputError(f"y must be a (N, C, H, W) tensor, got {tuple(getattr(y, 'shape', ()))}")
        if y.dtype not in (torch.float32, torch.float64):
            y = y.to(torch.float32)
        k = kernel if isinstance(kernel, Tensor) else torch.as_tensor(np.asarray(kernel))
        if k.ndim not in (2, 4) or (k.ndim == 4 and (k.shape[1] != 1 or k.shape[0] != y.shape[0])):
            raise InputError(f"kernel must be (kh, kw) or ({y.shape[0]}, 1, kh, kw), got {tuple(k.shape)}")
        k = k.to(device=y.device, dtype=y.dtype)
        h, w = int(y.shape[-2]), int(y.shape[-1])
        if mode == "circular":
            return cls(y, k, mode, boundary, (slice(0, h), slice(0, w)), y, adjust_after)
        rule = start if boundary == "adjust" else boundary
        initial, crop = extend_for_deconv(y, k, method=rule, taper_iterations=taper_iterations)
        return cls(y, k, mode, boundary, crop, initial, adjust_after)

    def to(self, device=None, dtype=None) -> DataTerm:
        """The same data term in another dtype / on another device (observations cast, not recomputed)."""
        cast = lambda t: t.to(device=device or t.device, dtype=dtype or t.dtype)
        if (dtype is None or dtype == self.y.dtype) and (device is None or torch.device(device) == self.y.device):
            return self
        return DataTerm(cast(self.y), cast(self.kernel), self.mode, self.boundary, self.crop, cast(self._initial),
                        self.adjust_after)

    # ------------------------------------------------------------------ operators
    @property
    def adjusting(self) -> bool:
        """True when the observation follows the estimate (``valid`` data, ``boundary="adjust"``)."""
        return self.mode == "valid" and self.boundary == "adjust"

    def blur(self, x: Tensor, x_hat: Tensor | None = None) -> Tensor:
        """Circular ``k (*) x`` on the grid (``x_hat``: ``rfft2(x)`` if already known)."""
        X = torch.fft.rfft2(x) if x_hat is None else x_hat
        return torch.fft.irfft2(X * self.otf, s=self.grid)

    def blur_adjoint(self, r: Tensor) -> Tensor:
        """``K^T r``: circular correlation with the kernel on the grid."""
        return torch.fft.irfft2(torch.fft.rfft2(r) * self.otf.conj(), s=self.grid)

    def estimate(self, x: Tensor, stage: int) -> Tensor | None:
        """What a solver passes as ``x`` to :meth:`prox` at 0-based ``stage``: ``x``, or ``None`` (the first
        observation) before ``adjust_after`` stages.

        >>> DataTerm.build(torch.zeros(1, 1, 4, 4), torch.ones(1, 1), adjust_after=2).estimate(1.0, 1) is None
        True
        """
        return x if stage >= self.adjust_after else None

    def initial(self) -> Tensor:
        """The first estimate / first observation on the grid: ``y`` (circular) or ``y`` extended."""
        return self._initial

    def observation(self, x: Tensor | None = None) -> Tensor:
        """``phi``: ``initial()``, or for ``boundary="adjust"`` with an estimate ``x``, ``P0 y + (1 - M)(k (*) x)``."""
        if x is None or not self.adjusting:
            return self._initial
        phi = self.blur(x)  # a fresh tensor: y is written into it in place
        phi[..., self.crop[0], self.crop[1]] = self.y
        return phi

    def _placed_y(self) -> Tensor:
        """``P0 y``: ``y`` zero-padded into the grid at ``crop``."""
        if self._y0 is None:
            if self.mode == "circular":
                self._y0 = self.y
            else:
                y0 = self.y.new_zeros(*self.y.shape[:-2], *self.grid)
                y0[..., self.crop[0], self.crop[1]] = self.y
                self._y0 = y0
        return self._y0

    def _rhs(self, x: Tensor | None) -> Tensor:
        """``conj(K) F(phi)`` for ``phi = observation(x)`` (cached when it does not depend on ``x``)."""
        if x is not None and self.adjusting:
            return self.otf.conj() * torch.fft.rfft2(self.observation(x))
        if self._phi0_rhs is None:
            self._phi0_rhs = self.otf.conj() * torch.fft.rfft2(self._initial)
        return self._phi0_rhs

    # ------------------------------------------------------------------ Fourier steps
    def prox_hat(self, v: Tensor, rho, x: Tensor | None = None) -> Tensor:
        """Half spectrum of :meth:`prox` (callers that reuse it save an FFT)."""
        r = item_weight(rho, v)
        return (self._rhs(x) + r * torch.fft.rfft2(v)) / (self.otf_sq + r)

    def prox(self, v: Tensor, rho, x: Tensor | None = None) -> Tensor:
        """``argmin_u 1/2 ||k (*) u - phi||^2 + rho/2 ||u - v||^2`` with ``phi = observation(x)``.

        ``rho`` > 0: a float or one value per image (``(N,)``). ``x`` is the current estimate (only used by
        ``boundary="adjust"``; ``None`` = the first observation).
        """
        return torch.fft.irfft2(self.prox_hat(v, rho, x), s=self.grid)

    def solve_quadratic(self, extra_hat: Tensor, weight, reg_sq: Tensor, x: Tensor | None = None) -> Tensor:
        """``F^-1[(conj(K) F(phi) + extra_hat) / (|K|^2 + weight reg_sq)]``: the x-update of quadratic
        regularisers (TV / HL splitting, CSF, FDN), ``reg_sq = sum_i |F(f_i)|^2`` on the rfft2 grid (e.g.
        :func:`~podm_cli.physics.differences.diff_otf_sq`). ``weight``: float or ``(N,)``. The denominator is
        cached for the last ``(weight, reg_sq)`` objects passed.
        """
        if self._quad_key is None or self._quad_key[0] is not weight or self._quad_key[1] is not reg_sq:
            self._quad_key = (weight, reg_sq)  # held, so the identity check cannot be fooled by a reused id
            self._quad_denom = self.otf_sq + item_weight(weight, extra_hat) * reg_sq
        return torch.fft.irfft2((self._rhs(x) + extra_hat) / self._quad_denom, s=self.grid)

    # ------------------------------------------------------------------ the true data term
    def _residual(self, x: Tensor, x_hat: Tensor | None = None) -> Tensor:
        """``M (K x) - P0 y`` on the grid (circular: ``K x - y``)."""
        r = self.blur(x, x_hat) - self._placed_y()
        if self.mode == "valid":
            inside = torch.zeros_like(r)
            inside[..., self.crop[0], self.crop[1]] = r[..., self.crop[0], self.crop[1]]
            r = inside
        return r

    def f(self, x: Tensor) -> Tensor:
        """``1/2 ||M (k (*) x) - P0 y||^2`` per image, ``(N,)``."""
        return 0.5 * self._residual(x).flatten(1).pow(2).sum(1)

    def grad_f(self, x: Tensor, x_hat: Tensor | None = None) -> Tensor:
        """``K^T M (K x - P0 y)`` (``x_hat``: ``rfft2(x)`` if already known)."""
        X = torch.fft.rfft2(x) if x_hat is None else x_hat
        if self.mode == "circular":
            if self._true_rhs is None:
                self._true_rhs = self._rhs(None)  # phi = y for circular data
            return torch.fft.irfft2(self.otf_sq * X - self._true_rhs, s=self.grid)
        return self.blur_adjoint(self._residual(x, X))

    def lipschitz(self) -> Tensor:
        """A Lipschitz constant of ``grad_f``: ``max |K|^2`` per kernel (0-d, or ``(N,)`` per-item kernels)."""
        if self.otf_sq.ndim == 2:
            return self.otf_sq.max()
        return self.otf_sq.flatten(1).max(dim=1).values

    def output(self, x: Tensor) -> Tensor:
        """``x[..., crop]``: the estimate aligned with ``y`` (what a method returns)."""
        if self.mode == "circular":
            return x
        return x[..., self.crop[0], self.crop[1]].contiguous()

    def __repr__(self) -> str:
        return (f"DataTerm(y={tuple(self.y.shape)}, kernel={tuple(self.kernel.shape)}, mode={self.mode!r}, "
                f"boundary={self.boundary!r}, grid={self.grid})")
