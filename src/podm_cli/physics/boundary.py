"""Boundary handling for deconvolving ``valid`` (non-periodic) blurs with circular, FFT-based solvers.

* :func:`edgetaper` -- MATLAB ``edgetaper`` semantics: blend the image with its circularly blurred self,
  using a weight that is 0 on the border and 1 farther than the kernel's extent from it.
* :func:`wrap_boundary_liu` -- Liu & Jia (ICIP 2008, "Reducing boundary artifacts in image
  deconvolution"): enlarge the image (kept in the top-left corner) to a size where the wrap-around is
  smooth, filling the new pixels with a harmonic (Laplace) interpolation.
* :func:`extend_for_deconv` -- pad a blurred image to a fast FFT size with one of those methods and say
  where the estimate aligned with the input lies in the circular solver's output.

Alignment (why ``crop`` is what it is): if ``y = Blur(k, "valid")(x)`` then ``y[i] = (k (*) x)[i + o]``
with ``o = valid_offset(kh, kw)`` and ``(*)`` the *centred* circular convolution used by
``Blur(k, "circular")``.  Placing ``y`` at offset ``p`` in ``y_ext`` and solving ``k (*) x_ext = y_ext``
circularly, ``x_ext`` is (up to the fake extension) ``x`` rolled so that ``x[i + o]`` lands at ``p + i``;
the needed support ``p + i - o .. p + i + kh//2`` has ``h + kh - 1`` rows, which fits in ``y_ext`` without
overlapping itself.  Hence ``crop = (slice(py, py + h), slice(px, px + w))`` holds the estimate of
``x[oy : oy + h, ox : ox + w]``, the region aligned with ``y``.
"""

from __future__ import annotations

import functools

import numpy as np
import scipy.sparse as sp
import scipy.sparse.linalg as spla
import torch
import torch.nn.functional as F

from podm_cli.errors import InputError
from podm_cli.physics.blur import Blur
from podm_cli.physics.fft import next_fast_len

__all__ = ["EXTEND_METHODS", "edgetaper", "edgetaper_weight", "extend_for_deconv", "wrap_boundary_liu"]

EXTEND_METHODS = ("liu", "edgetaper", "replicate")


def _as_kernel(kernel, like: torch.Tensor) -> torch.Tensor:
    k = kernel if isinstance(kernel, torch.Tensor) else torch.as_tensor(np.asarray(kernel))
    if k.ndim not in (2, 4) or (k.ndim == 4 and k.shape[1] != 1):
        raise InputError(f"kernel must be (kh, kw) or (N, 1, kh, kw), got {tuple(k.shape)}")
    return k.to(device=like.device, dtype=like.dtype)


def _taper_profile(proj: torch.Tensor, n: int) -> torch.Tensor:
    """``1 - beta`` along one axis: ``beta`` = cyclic autocorrelation of ``proj`` (length ``n - 1``),
    normalised to peak 1 and closed to length ``n`` by repeating its first sample (MATLAB's recipe)."""
    spec = torch.fft.rfft(proj, n=n - 1)
    z = torch.fft.irfft(spec.real**2 + spec.imag**2, n=n - 1)
    z = torch.cat([z, z[..., :1]], dim=-1)
    beta = z / z.amax(dim=-1, keepdim=True)
    return 1.0 - beta


def edgetaper_weight(kernel: torch.Tensor, shape: tuple[int, int]) -> torch.Tensor:
    """Edgetaper's weight ``alpha`` (``(H, W)`` or ``(N, 1, H, W)``): 1 inside, falling to 0 at the border."""
    H, W = int(shape[0]), int(shape[1])
    kh, kw = kernel.shape[-2:]
    if kh >= H or kw >= W:
        raise InputError(f"edgetaper needs a kernel smaller than the image: {kh}x{kw} vs {H}x{W}")
    a_rows = _taper_profile(kernel.sum(dim=-1), H)  # (..., H)
    a_cols = _taper_profile(kernel.sum(dim=-2), W)  # (..., W)
    return a_rows[..., :, None] * a_cols[..., None, :]


def edgetaper(y: torch.Tensor, kernel, iterations: int = 1) -> torch.Tensor:
    """Taper the edges of ``y`` (``(N, C, H, W)``) so its circular wrap-around is smooth.

    Each iteration replaces ``y`` by ``alpha * y + (1 - alpha) * (k (*) y)`` where ``(*)`` is the circular
    blur and ``alpha`` is built, as in MATLAB's ``edgetaper``, from the autocorrelations of the kernel's
    row and column projections.  Pixels farther than ``kernel - 1`` from every edge are unchanged.

    >>> y = torch.rand(1, 1, 32, 32, dtype=torch.float64); k = torch.ones(5, 5, dtype=torch.float64) / 25
    >>> t = edgetaper(y, k, iterations=3)
    >>> bool(torch.allclose(t[..., 5:-5, 5:-5], y[..., 5:-5, 5:-5]))
    True
    """
    if iterations < 0:
        raise InputError(f"edgetaper iterations must be >= 0, got {iterations}")
    k = _as_kernel(kernel, y)
    k = k / k.sum(dim=(-2, -1), keepdim=True)
    alpha = edgetaper_weight(k, y.shape[-2:])
    blur = Blur(k, mode="circular")
    out = y
    for _ in range(int(iterations)):
        out = alpha * out + (1.0 - alpha) * blur(out)
    return out


@functools.lru_cache(maxsize=4)
def _harmonic_fill_system(h: int, w: int, H: int, W: int):
    """Factorised Laplace system for the pixels of an ``H x W`` torus outside its top-left ``h x w`` block.

    Returns ``(lu, unknown, known, L_uk)``: solving ``lu.solve(-L_uk @ values_known)`` gives the harmonic
    values at the flat indices ``unknown``.
    """
    n = H * W
    idx = np.arange(n).reshape(H, W)
    rows = np.repeat(idx.ravel(), 4)
    cols = np.stack(
        [np.roll(idx, 1, 0), np.roll(idx, -1, 0), np.roll(idx, 1, 1), np.roll(idx, -1, 1)], axis=-1
    ).ravel()
    adjacency = sp.csr_matrix((np.ones(rows.size), (rows, cols)), shape=(n, n))
    lap = (sp.identity(n, format="csr") * 4.0 - adjacency).tocsr()  # periodic 5-point Laplacian (SPD part)
    known_mask = np.zeros((H, W), dtype=bool)
    known_mask[:h, :w] = True
    known = np.flatnonzero(known_mask.ravel())
    unknown = np.flatnonzero(~known_mask.ravel())
    lap_u = lap[unknown]
    L_uu = lap_u[:, unknown].tocsc()
    L_uk = lap_u[:, known].tocsr()
    lu = spla.splu(L_uu, permc_spec="COLAMD")
    return lu, unknown, known, L_uk


def wrap_boundary_liu(y: torch.Tensor, shape: tuple[int, int]) -> torch.Tensor:
    """Extend ``y`` (``(..., H, W)``) to ``shape = (H2, W2)`` so that it is smooth *and periodic*.

    ``y`` stays in the top-left corner, unchanged.  The new pixels are the harmonic interpolation
    (discrete Laplace equation, 5-point stencil on the ``H2 x W2`` torus) with ``y`` as Dirichlet data, so
    the bottom strip joins ``y``'s last row to its first row, the right strip its last column to its
    first, and the corner closes both.  This is Liu & Jia's construction; instead of their three
    sequential rectangle solves (DST Poisson solves with linearly interpolated side boundaries) the whole
    L-shaped region is solved at once with one sparse factorisation, reused for every image and channel
    of the batch (and cached per geometry).  The solve runs on the CPU in float64; the result comes back
    in ``y``'s dtype and device.

    >>> y = torch.rand(1, 1, 20, 24, dtype=torch.float64)
    >>> e = wrap_boundary_liu(y, (32, 30))
    >>> tuple(e.shape), bool(torch.equal(e[..., :20, :24], y))
    ((1, 1, 32, 30), True)
    """
    if y.ndim < 2:
        raise InputError(f"image must be (..., H, W), got {tuple(y.shape)}")
    h, w = (int(s) for s in y.shape[-2:])
    H, W = int(shape[0]), int(shape[1])
    if H < h or W < w:
        raise InputError(f"wrap_boundary_liu: target {H}x{W} is smaller than the image {h}x{w}")
    if (H, W) == (h, w):
        return y.clone()
    lu, unknown, known, L_uk = _harmonic_fill_system(h, w, H, W)
    lead = y.shape[:-2]
    vals = y.detach().to(device="cpu", dtype=torch.float64).reshape(-1, h * w).numpy()
    fill = lu.solve(np.ascontiguousarray(-(L_uk @ vals.T)))  # (n_unknown, M)
    flat = np.empty((vals.shape[0], H * W))
    flat[:, known] = vals
    flat[:, unknown] = fill.T
    out = torch.from_numpy(flat).to(device=y.device, dtype=y.dtype).reshape(*lead, H, W)
    out[..., :h, :w] = y.detach()
    return out


def extend_for_deconv(
    y: torch.Tensor, kernel, method: str = "liu", taper_iterations: int = 3
) -> tuple[torch.Tensor, tuple[slice, slice]]:
    """Pad a ``valid``-blurred ``y`` (``(N, C, h, w)``) for circular (FFT) deconvolution.

    Returns ``(y_ext, crop)``: ``y_ext`` has size ``(next_fast_len(h + kh - 1), next_fast_len(w + kw - 1))``
    and, if ``x_ext`` is the circular deconvolution of ``y_ext``, ``x_ext[..., crop[0], crop[1]]`` is the
    ``h x w`` estimate of the sharp region aligned with ``y`` (``x[oy:oy+h, ox:ox+w]``, see
    :func:`~podm_cli.physics.blur.valid_offset`).

    Methods: ``"liu"`` (:func:`wrap_boundary_liu`, ``y`` in the top-left corner), ``"replicate"`` (``y``
    centred, edge values replicated) and ``"edgetaper"`` (replicate, then :func:`edgetaper`
    ``taper_iterations`` times, the usual MATLAB recipe).

    >>> from podm_cli.physics import Blur
    >>> k = torch.rand(7, 6, dtype=torch.float64); k /= k.sum()
    >>> y = Blur(k, "valid")(torch.rand(1, 1, 40, 50, dtype=torch.float64))
    >>> y_ext, crop = extend_for_deconv(y, k, "replicate")
    >>> tuple(y_ext.shape), bool(torch.equal(y_ext[..., crop[0], crop[1]], y))
    ((1, 1, 40, 50), True)
    """
    if method not in EXTEND_METHODS:
        raise InputError(f"boundary method must be one of {EXTEND_METHODS}, got {method!r}")
    k = _as_kernel(kernel, y)
    kh, kw = (int(s) for s in k.shape[-2:])
    h, w = (int(s) for s in y.shape[-2:])
    H, W = next_fast_len(h + kh - 1), next_fast_len(w + kw - 1)
    if method == "liu":
        return wrap_boundary_liu(y, (H, W)), (slice(0, h), slice(0, w))
    py, px = (H - h) // 2, (W - w) // 2
    lead = y.shape[:-2]
    y4 = y.reshape(-1, 1, h, w) if y.ndim != 4 else y
    y_ext = F.pad(y4, (px, W - w - px, py, H - h - py), mode="replicate")
    if method == "edgetaper":
        if k.ndim == 4 and y.ndim != 4:
            raise InputError("per-batch kernels need a (N, C, H, W) image")
        y_ext = edgetaper(y_ext, k, iterations=taper_iterations)
    return y_ext.reshape(*lead, H, W), (slice(py, py + h), slice(px, px + w))
