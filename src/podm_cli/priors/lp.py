"""lp priors, ``0 < p <= 1``: generalized soft-thresholding and ``lam * ||W x||_p^p`` with an orthonormal DCT.

Generalized soft-thresholding (GST; Zuo, Meng, Zhang, Feng & Zhang, ICCV 2013) solves the scalar problem

    min_t 1/2 (t - v)^2 + lam |t|^p,      0 < p <= 1,

elementwise. The minimiser is 0 for ``|v| <= tau_p(lam)`` with

    tau_p(lam) = (2 lam (1 - p))^(1 / (2 - p)) + lam p (2 lam (1 - p))^((p - 1) / (2 - p)),

(the value at which the non-zero stationary point and 0 have the same objective) and otherwise
``sign(v) t`` where ``t`` is the fixed point of ``t <- |v| - lam p t^(p - 1)`` started at ``t = |v|``. The
iteration decreases monotonically to the larger stationary point and contracts with a factor at most
``p / 2`` there, so the default 2 iterations (as in the authors' code) are accurate to a few 1e-3 relative
near the threshold and much better away from it; raise ``iterations`` for more. At ``p = 1``,
``tau = lam`` and one iteration gives exactly soft-thresholding.

:class:`LpDCT` is the PODM authors' prior ``g(x) = lam ||W x||_p^p`` with ``W`` the orthonormal 2-D DCT-II
(per channel). Because ``W`` is orthonormal, ``prox_{s g}(v) = W^T GST(W v, s lam)`` exactly.
"""

from __future__ import annotations

import functools
import math

import torch
from torch import Tensor

from podm_cli.errors import InputError
from podm_cli.priors.base import Prior, per_image_step

__all__ = ["LpDCT", "dct2", "dct_matrix", "gst", "gst_threshold", "idct2"]


def _check_p(p: float) -> float:
    p = float(p)
    if not (0.0 < p <= 1.0):
        raise InputError(f"lp prior needs 0 < p <= 1, got p={p}")
    return p


def gst_threshold(lam, p: float):
    """The GST threshold ``tau_p(lam)`` (float or tensor ``lam``); ``lam`` at ``p = 1``."""
    p = _check_p(p)
    if p == 1.0:
        return lam
    base = 2.0 * lam * (1.0 - p)
    return base ** (1.0 / (2.0 - p)) + lam * p * base ** ((p - 1.0) / (2.0 - p))


def gst(v: Tensor, lam, p: float, iterations: int = 2) -> Tensor:
    """Generalized soft-thresholding: elementwise ``argmin_t 1/2 (t - v)^2 + lam |t|^p``.

    ``lam`` is a float or a tensor broadcastable against ``v`` (e.g. ``(N, 1, 1, 1)``), ``>= 0``.

    >>> v = torch.tensor([-2.0, -0.5, 0.0, 0.5, 2.0])
    >>> gst(v, 1.0, 1.0).tolist()  # p = 1 is soft-thresholding
    [-1.0, 0.0, 0.0, 0.0, 1.0]
    """
    p = _check_p(p)
    iterations = int(iterations)
    if iterations < 1:
        raise InputError(f"GST needs at least 1 fixed-point iteration, got {iterations}")
    a = v.abs()
    if p == 1.0:
        shrunk = a - lam
        return torch.where(shrunk > 0, torch.sign(v) * shrunk, torch.zeros_like(v))
    if isinstance(lam, Tensor):
        lam = lam.to(device=v.device, dtype=v.dtype)
    tau = gst_threshold(lam, p)
    keep = a > tau
    # Iterate on a safe value (|v| where kept, 1 elsewhere) so t^(p-1) never sees 0.
    t = torch.where(keep, a, torch.ones_like(a))
    a_safe = t
    for _ in range(iterations):
        t = a_safe - lam * p * t.pow(p - 1.0)
    return torch.where(keep, torch.sign(v) * t, torch.zeros_like(v))


@functools.lru_cache(maxsize=64)
def _dct_matrix_cpu64(n: int) -> Tensor:
    k = torch.arange(n, dtype=torch.float64)[:, None]
    i = torch.arange(n, dtype=torch.float64)[None, :]
    m = torch.cos(math.pi * (2.0 * i + 1.0) * k / (2.0 * n)) * math.sqrt(2.0 / n)
    m[0] /= math.sqrt(2.0)
    return m


_DEVICE_CACHE: dict[tuple, Tensor] = {}


def dct_matrix(n: int, device=None, dtype=torch.float64) -> Tensor:
    """Orthonormal DCT-II matrix ``D`` (n x n): ``D @ x`` is the DCT of ``x``, ``D.T @ D = I``.

    ``D[k, i] = c_k sqrt(2/n) cos(pi (2i + 1) k / (2n))``, ``c_0 = 1/sqrt(2)``, else 1 (scipy's
    ``dct(x, type=2, norm="ortho")``). Built in float64 and cached per (size, device, dtype).
    """
    key = (int(n), str(torch.device(device) if device is not None else "cpu"), dtype)
    m = _DEVICE_CACHE.get(key)
    if m is None:
        if len(_DEVICE_CACHE) > 64:
            _DEVICE_CACHE.clear()
        m = _dct_matrix_cpu64(int(n)).to(device=device, dtype=dtype)
        _DEVICE_CACHE[key] = m
    return m


def dct2(x: Tensor) -> Tensor:
    """Orthonormal 2-D DCT-II over the last two axes: ``D_H x D_W^T``."""
    dh = dct_matrix(x.shape[-2], x.device, x.dtype)
    dw = dct_matrix(x.shape[-1], x.device, x.dtype)
    return dh @ x @ dw.T


def idct2(c: Tensor) -> Tensor:
    """Inverse (= transpose) of :func:`dct2`: ``D_H^T c D_W``."""
    dh = dct_matrix(c.shape[-2], c.device, c.dtype)
    dw = dct_matrix(c.shape[-1], c.device, c.dtype)
    return dh.T @ c @ dw


class LpDCT(Prior):
    """``g(x) = lam * sum |W x|^p`` with ``W`` the orthonormal 2-D DCT-II (per channel); exact GST prox.

    Defaults are the PODM authors' (p = 0.8, lam = 1e-4, 2 GST iterations).

    >>> prior = LpDCT(p=1.0, lam=0.1)
    >>> round(prior.value(torch.ones(1, 1, 8, 8)).item(), 6)  # one DC coefficient, = 8
    0.8
    """

    name = "lp_dct"

    def __init__(self, p: float = 0.8, lam: float = 1e-4, gst_iterations: int = 2):
        self.p = _check_p(p)
        self.lam = float(lam)
        if self.lam < 0:
            raise InputError(f"lam must be >= 0, got {lam}")
        self.gst_iterations = int(gst_iterations)

    def value(self, x: Tensor) -> Tensor:
        c = dct2(x)
        return self.lam * c.abs().pow(self.p).flatten(1).sum(1)

    def prox(self, v: Tensor, step=1.0) -> Tensor:
        lam = per_image_step(step, v) * self.lam
        return idct2(gst(dct2(v), lam, self.p, self.gst_iterations))
