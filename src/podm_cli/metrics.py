"""Image-quality metrics for the deconvolution benchmarks: PSNR and SSIM, per image, with the
protocols' border discard and shift alignment (integer, or Levin et al.'s sub-pixel ``comp_upto_shift``).

Every function takes an estimate ``x`` and a reference ``ref`` of the same shape, batched ``(N, C, H, W)``
(``(C, H, W)`` and ``(H, W)`` are read as a batch of one), and returns a float64 tensor ``(N,)`` with one
value per image, on the inputs' device. Scores are always computed in float64; nothing is clipped, so
clip or quantise the estimate first if the protocol asks for it.

Conventions (see :class:`Scoring` and docs/protocol.md):

* **PSNR** ``= 10 log10(data_range^2 / MSE)`` with the MSE taken over all channels and pixels of the scored
  region (as ``skimage.metrics.peak_signal_noise_ratio``); ``inf`` for identical images.
* **SSIM** is Wang et al. (2004): 11x11 Gaussian window with sigma 1.5 (a separable, normalised 11-tap
  kernel), K1 = 0.01, K2 = 0.03, population (not sample) covariances, averaged over the *valid* positions
  only (no padding) - the original MATLAB ``ssim_index`` and ``skimage.metrics.structural_similarity(
  gaussian_weights=True, sigma=1.5, use_sample_covariance=False)``. With ``data_range=1`` on ``[0, 1]``
  images this is the same as SSIM on the 0..255 scale. Colour: the mean of the per-channel SSIMs.
  ``torchmetrics``' ``structural_similarity_index_measure`` is *not* identical: it reflect-pads the image
  by 5 px and averages the SSIM map over the whole image, border included. It equals this SSIM applied to
  reflect-padded inputs (1e-15 in float64, ~3e-6 in float32); against the valid-window SSIM it differs by
  ~3e-4..2e-3 on 255x255 images and up to ~1e-2 on small ones (see ``tests/test_metrics.py``).
* **Border discard**: ``border`` pixels are removed from each side of both images before scoring.
* **Best shift** (Levin et al. 2009 / Sun et al. 2013 style): for every integer ``(dy, dx)`` in
  ``[-max_shift, max_shift]^2`` the fixed reference region ``ref[b:H-b, b:W-b]`` is compared with
  ``x[b+dy:H-b+dy, b+dx:W-b+dx]``, where ``b = max(border, max_shift)`` (so every shifted window stays
  inside the image and every shift is judged on the same reference pixels). The shift with the smallest
  MSE (highest PSNR) is chosen per image; SSIM is reported at that same shift. ``(dy, dx)`` is the
  displacement of ``x`` relative to ``ref``: ``x = np.roll(ref, (dy, dx), axis=(-2, -1))`` is recovered as
  ``(dy, dx)``. Exact ties are broken towards the smallest shift.
* **Sub-pixel shift** (``subpixel = p > 1``; Levin et al. 2009's ``comp_upto_shift`` with ``border=15,
  max_shift=5, subpixel=4``, see :data:`LEVIN_SCORING`): the same fixed reference region, and the estimate
  interpolated *bilinearly* at ``(i + dy, j + dx)`` for every ``(dy, dx)`` on the grid ``-max_shift,
  -max_shift + 1/p, ..., max_shift`` in both axes (all sample positions stay inside the estimate's
  ``b - max_shift`` border, so no extrapolation); the shift with the least sum of squared errors wins and
  PSNR/SSIM are those of that interpolated region. At integer shifts the interpolation is exact, so the
  sub-pixel score is never below the integer one with the same ``max_shift``.

Integer search: the MSE of all ``(2 max_shift + 1)^2`` shifts is computed at once (FFT cross-correlation
plus an integral image of ``x^2``); the winning candidates are then re-scored directly, so the reported
value is exact. Sub-pixel search: the estimate is interpolated along rows for every vertical shift at
once, then along columns one horizontal shift at a time (bilinear interpolation is separable), and the
squared errors of all ``(2 p max_shift + 1)^2`` shifts are summed directly in float64.

Example:
    >>> import torch
    >>> from podm_cli.metrics import Scoring, score
    >>> ref = torch.linspace(0, 1, 64 * 64, dtype=torch.float64).reshape(1, 1, 64, 64)
    >>> x = torch.roll(ref, shifts=(2, -1), dims=(-2, -1))
    >>> p, s = score(x, ref, Scoring(border=4, max_shift=3))
    >>> p.shape, bool(torch.isinf(p).all()), f"{s.item():.6f}"
    (torch.Size([1]), True, '1.000000')
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import NamedTuple

import torch
import torch.nn.functional as F
from scipy.fft import next_fast_len
from torch import Tensor

from podm_cli.errors import InputError

__all__ = [
    "LEVIN_SCORING",
    "SSIM_K1",
    "SSIM_K2",
    "SSIM_SIGMA",
    "SSIM_WINDOW",
    "Scores",
    "Scoring",
    "best_shift",
    "psnr",
    "score",
    "score_details",
    "ssim",
]

SSIM_WINDOW = 11
SSIM_SIGMA = 1.5
SSIM_K1 = 0.01
SSIM_K2 = 0.03

# Elements of one image chunk fed to the SSIM filters at once (bounds memory for big batches).
_SSIM_CHUNK_ELEMENTS = 1 << 22


@dataclass(frozen=True)
class Scoring:
    """How a protocol scores an estimate against its reference.

    Attributes:
        border: pixels discarded on each side of the reference (and of the estimate, less the search
            margin ``max_shift``) before scoring.
        max_shift: largest displacement in px (in each axis) searched for the PSNR-best alignment;
            0 scores the images as they are. The effective border is ``max(border, max_shift)``.
        subpixel: shifts are searched on a grid of ``1 / subpixel`` px; 1 = integer shifts, more =
            bilinear interpolation of the estimate at each shift (4 = Levin et al.'s 0.25 px grid).

    Example:
        >>> print(Scoring().describe())  # doctest: +NORMALIZE_WHITESPACE
        whole image, no shift search;
        SSIM 11x11 Gaussian (sigma 1.5), K1=0.01, K2=0.03, valid window, data range 1
        >>> Scoring(border=50, max_shift=10).effective_border
        50
        >>> LEVIN_SCORING.shift_step, LEVIN_SCORING.effective_border
        (0.25, 15)
    """

    border: int = 0
    max_shift: int = 0
    subpixel: int = 1

    def __post_init__(self) -> None:
        _check_params(self.border, self.max_shift, self.subpixel)

    @property
    def shift_step(self) -> float:
        """Spacing of the searched shift grid in px (1.0 for integer shifts)."""
        return 1.0 / self.subpixel

    @property
    def effective_border(self) -> int:
        """Pixels actually removed from each side of the reference: ``max(border, max_shift)``."""
        return max(self.border, self.max_shift)

    def describe(self) -> str:
        """One line for results files naming exactly how PSNR/SSIM were computed.

        Example:
            >>> print(Scoring(border=50, max_shift=10).describe())  # doctest: +NORMALIZE_WHITESPACE
            50 px border discarded, PSNR-best integer shift within +-10 px (SSIM at that shift);
            SSIM 11x11 Gaussian (sigma 1.5), K1=0.01, K2=0.03, valid window, data range 1
            >>> print(LEVIN_SCORING.describe())  # doctest: +NORMALIZE_WHITESPACE
            15 px border discarded, PSNR-best shift on a 0.25 px grid within +-5 px, bilinear interpolation
            (Levin et al.'s comp_upto_shift; SSIM at that shift); SSIM 11x11 Gaussian (sigma 1.5), K1=0.01,
            K2=0.03, valid window, data range 1
        """
        if self.border == 0 and self.max_shift == 0:
            region = "whole image, no shift search"
        else:
            parts = []
            eff = self.effective_border
            if eff:
                extra = "" if eff == self.border else f" (border {self.border} raised to max_shift)"
                parts.append(f"{eff} px border discarded{extra}")
            if self.max_shift and self.subpixel > 1:
                parts.append(
                    f"PSNR-best shift on a {self.shift_step:g} px grid within +-{self.max_shift} px, bilinear "
                    "interpolation (Levin et al.'s comp_upto_shift; SSIM at that shift)"
                )
            elif self.max_shift:
                parts.append(f"PSNR-best integer shift within +-{self.max_shift} px (SSIM at that shift)")
            else:
                parts.append("no shift search")
            region = ", ".join(parts)
        return (
            f"{region}; SSIM {SSIM_WINDOW}x{SSIM_WINDOW} Gaussian (sigma {SSIM_SIGMA}), "
            f"K1={SSIM_K1}, K2={SSIM_K2}, valid window, data range 1"
        )

    def to_dict(self) -> dict:
        """Plain dict for JSON summaries: border, max_shift, shift_step, effective_border, description."""
        return {
            "border": self.border,
            "max_shift": self.max_shift,
            "shift_step": self.shift_step,
            "effective_border": self.effective_border,
            "description": self.describe(),
        }


class Scores(NamedTuple):
    """Per-image results of :func:`score_details`: PSNR (dB), SSIM, and the chosen ``(dy, dx)`` shift
    in px (float64 ``(N, 2)``; whole numbers unless the scoring searches sub-pixel shifts)."""

    psnr: Tensor
    ssim: Tensor
    shift: Tensor


# --------------------------------------------------------------------------------------------- helpers


def _check_params(border: int, max_shift: int, subpixel: int = 1) -> None:
    for name, value, least in (("border", border, 0), ("max_shift", max_shift, 0), ("subpixel", subpixel, 1)):
        if isinstance(value, bool) or not isinstance(value, int) or value < least:
            kind = "a non-negative" if least == 0 else "a positive"
            raise InputError(f"{name} must be {kind} integer, got {value!r}")


def _as_batch(t, what: str) -> Tensor:
    if not isinstance(t, Tensor):
        t = torch.as_tensor(t)
    if t.is_complex():
        raise InputError(f"{what} must be a real image, got a complex tensor")
    if t.ndim == 2:
        t = t[None, None]
    elif t.ndim == 3:
        t = t[None]
    elif t.ndim != 4:
        raise InputError(f"{what} must be (H, W), (C, H, W) or (N, C, H, W), got shape {tuple(t.shape)}")
    if t.numel() == 0:
        raise InputError(f"{what} is empty (shape {tuple(t.shape)})")
    if t.device.type == "mps":  # no float64 there
        t = t.cpu()
    return t.to(torch.float64)


def _prepare(x, ref, border: int, max_shift: int, subpixel: int = 1) -> tuple[Tensor, Tensor]:
    _check_params(border, max_shift, subpixel)
    x = _as_batch(x, "estimate")
    ref = _as_batch(ref, "reference")
    if x.shape != ref.shape:
        raise InputError(f"estimate shape {tuple(x.shape)} does not match reference shape {tuple(ref.shape)}")
    if ref.device != x.device:
        ref = ref.to(x.device)
    b = max(border, max_shift)
    h, w = x.shape[-2:]
    if h - 2 * b < 1 or w - 2 * b < 1:
        raise InputError(
            f"a {b} px border (border={border}, max_shift={max_shift}) leaves nothing of a {h}x{w} image"
        )
    return x, ref


class _Aligned(NamedTuple):
    x: Tensor  # (N, C, h, w) estimate region at the chosen shift
    ref: Tensor  # (N, C, h, w) reference region
    shift: Tensor  # (N, 2) float64 (dy, dx) in px
    mse: Tensor  # (N,) exact MSE of the two regions


def _window_sums(t: Tensor, h: int, w: int) -> Tensor:
    """Sums of every h x w window of ``t`` (N, Hs, Ws) -> (N, Hs-h+1, Ws-w+1), via an integral image."""
    s = F.pad(t.cumsum(-2).cumsum(-1), (1, 0, 1, 0))
    return s[:, h:, w:] - s[:, :-h, w:] - s[:, h:, :-w] + s[:, :-h, :-w]


def _integer_sse(big: Tensor, r: Tensor, s: int) -> tuple[Tensor, Tensor]:
    """Sum of squared errors of every integer shift, (N, 2s+1, 2s+1), up to FFT round-off; and its scale.

    ``corr[k, l] = sum_ij big[i + k, j + l] r[i, j]`` by FFT (no wrap-around: the FFT size is at least
    ``h + 2s``), ``sum big^2`` over each window by an integral image.
    """
    h, w = r.shape[-2:]
    size = (next_fast_len(h + 2 * s, real=True), next_fast_len(w + 2 * s, real=True))
    spectrum = torch.fft.rfft2(big, s=size) * torch.fft.rfft2(r, s=size).conj()
    corr = torch.fft.irfft2(spectrum, s=size)[..., : 2 * s + 1, : 2 * s + 1].sum(dim=1)
    x2 = _window_sums(big.square().sum(dim=1), h, w)  # (N, 2s+1, 2s+1)
    r2 = r.square().sum(dim=(1, 2, 3))
    return x2 - 2 * corr + r2[:, None, None], x2.amax(dim=(1, 2)) + r2


def _bilinear_taps(max_shift: int, subpixel: int) -> list[tuple[int, float]]:
    """Per shift ``q / subpixel`` (q = -max_shift*subpixel .. +): first source offset and second tap's weight.

    Sample ``i`` of a window shifted by ``t`` reads source position ``i + max_shift + t`` of a line with
    ``max_shift`` extra samples on each side: ``(1 - f) src[i + o] + f src[i + o + 1]``. The last shift
    (``t = +max_shift``) is written as ``o = 2 max_shift - 1, f = 1`` so both taps stay inside the line.

    Example:
        >>> _bilinear_taps(1, 2)
        [(0, 0.0), (0, 0.5), (1, 0.0), (1, 0.5), (1, 1.0)]
    """
    s, p = max_shift, subpixel
    taps = []
    for q in range(-s * p, s * p + 1):
        offset, frac = s + q // p, (q % p) / p
        if offset == 2 * s:
            offset, frac = 2 * s - 1, 1.0
        taps.append((offset, frac))
    return taps


def _bilinear_sse(big: Tensor, r: Tensor, s: int, taps: list[tuple[int, float]]) -> tuple[Tensor, Tensor]:
    """Sum of squared errors at every bilinear shift in ``taps`` x ``taps``, (N, m, m); and its scale.

    With ``D[a, c] = big[a:a+h, c:c+w] - r`` (integer windows) and bilinear weights that sum to 1 in each
    axis, the error at a shift is ``sum_uv wy_u wx_v D[oy+u, ox+v]``, so its squared norm is a quadratic
    form in the inner products of neighbouring windows: ``<D[a,c], D[a,c]>``, ``<D[a,c], D[a,c+1]>``,
    ``<D[a,c], D[a+1,c]>``, ``<D[a,c], D[a+1,c+1]>`` and ``<D[a,c+1], D[a+1,c]>``. These take
    ``5 (2s+1)^2`` inner products instead of one interpolated image per shift; every entry is a sum of
    terms of the size of the errors themselves (no cancellation against ``sum x^2``).
    """
    n = big.shape[0]
    h, w = r.shape[-2:]
    k = 2 * s + 1
    dims = (2, 3, 4)
    g00 = big.new_empty(n, k, k)
    g01 = big.new_empty(n, k, k - 1)
    g10, g11, g1m = (big.new_empty(n, k - 1, k) for _ in range(3))
    prev = None
    for a in range(k):
        row = torch.stack([big[..., a : a + h, c : c + w] - r for c in range(k)], dim=1)  # (N, k, C, h, w)
        g00[:, a] = row.square().sum(dim=dims)
        g01[:, a] = (row[:, :-1] * row[:, 1:]).sum(dim=dims)
        if prev is not None:
            g10[:, a - 1] = (prev * row).sum(dim=dims)
            g11[:, a - 1, :-1] = (prev[:, :-1] * row[:, 1:]).sum(dim=dims)
            g1m[:, a - 1, :-1] = (prev[:, 1:] * row[:, :-1]).sum(dim=dims)
        prev = row
    o = torch.tensor([t[0] for t in taps], device=big.device)
    f = torch.tensor([t[1] for t in taps], device=big.device, dtype=torch.float64)
    oy, ox = o[:, None], o[None, :]
    wy = (1 - f[:, None], f[:, None])
    wx = (1 - f[None, :], f[None, :])
    sse = sum(wy[u] ** 2 * wx[v] ** 2 * g00[:, oy + u, ox + v] for u in (0, 1) for v in (0, 1))
    sse = sse + 2 * wx[0] * wx[1] * sum(wy[u] ** 2 * g01[:, oy + u, ox] for u in (0, 1))
    sse = sse + 2 * wy[0] * wy[1] * sum(wx[v] ** 2 * g10[:, oy, ox + v] for v in (0, 1))
    sse = sse + 2 * wy[0] * wy[1] * wx[0] * wx[1] * (g11[:, oy, ox] + g1m[:, oy, ox])
    return sse, g00.amax(dim=(1, 2))


def _interp(t: Tensor, offset: int, frac: float, length: int, dim: int) -> Tensor:
    """Linear interpolation of ``t`` along ``dim`` at ``offset + frac + i``, i < length (exact if frac = 0)."""
    a = t.narrow(dim, offset, length)
    if frac == 0.0:
        return a
    return (1.0 - frac) * a + frac * t.narrow(dim, offset + 1, length)


def _align(x: Tensor, ref: Tensor, border: int, max_shift: int, subpixel: int = 1) -> _Aligned:
    """Crop both images and find the per-image PSNR-best shift (inputs already validated, float64)."""
    n = x.shape[0]
    s = max_shift
    b = max(border, s)
    height, width = x.shape[-2:]
    h, w = height - 2 * b, width - 2 * b
    r = ref[..., b : b + h, b : b + w]
    if s == 0:
        xa = x[..., b : b + h, b : b + w]
        mse = (xa - r).square().mean(dim=(1, 2, 3))
        return _Aligned(xa, r, torch.zeros(n, 2, dtype=torch.float64, device=x.device), mse)

    big = x[..., b - s : b + h + s, b - s : b + w + s]  # (N, C, h+2s, w+2s)
    if subpixel == 1:
        taps = [(k, 0.0) for k in range(2 * s + 1)]
        approx, scale = _integer_sse(big, r, s)
    else:
        taps = _bilinear_taps(s, subpixel)
        approx, scale = _bilinear_sse(big, r, s, taps)
    m = len(taps)
    grid = torch.arange(m, dtype=torch.float64) / subpixel - s

    # Re-score every shift within a generous round-off tolerance of the minimum exactly; keep the
    # smallest exact MSE, ties going to the smallest |shift| (candidates are visited in that order).
    dy, dx = torch.meshgrid(grid, grid, indexing="ij")
    order = torch.argsort((dy.square() + dx.square()).flatten(), stable=True).to(x.device)
    tol = 1e-9 * scale + 1e-300
    shifts, mses, regions = [], [], []
    for i in range(n):
        flat = approx[i].flatten()[order]
        cand = order[flat <= flat.min() + tol[i]].tolist() if torch.isfinite(flat).all() else [order[0]]
        best = None
        for k in cand:
            ky, kx = divmod(int(k), m)
            region = _interp(_interp(big[i], *taps[ky], h, dim=-2), *taps[kx], w, dim=-1)
            mse = (region - r[i]).square().mean()
            if best is None or mse < best[0]:
                best = (mse, (float(grid[ky]), float(grid[kx])), region)
        mses.append(best[0])
        shifts.append(best[1])
        regions.append(best[2])
    return _Aligned(
        torch.stack(regions),
        r,
        torch.tensor(shifts, dtype=torch.float64, device=x.device),
        torch.stack(mses),
    )


def _gaussian_window(device: torch.device) -> Tensor:
    half = SSIM_WINDOW // 2
    t = torch.arange(-half, half + 1, dtype=torch.float64, device=device)
    g = torch.exp(-0.5 * (t / SSIM_SIGMA) ** 2)
    return g / g.sum()


def _ssim_valid(x: Tensor, y: Tensor, data_range: float) -> Tensor:
    """Mean SSIM over valid window positions, averaged over channels: (N, C, h, w) -> (N,) float64."""
    n, c, h, w = x.shape
    if h < SSIM_WINDOW or w < SSIM_WINDOW:
        raise InputError(
            f"SSIM needs a scored region of at least {SSIM_WINDOW}x{SSIM_WINDOW} pixels, got {h}x{w}"
        )
    g = _gaussian_window(x.device)
    wy = g.view(1, 1, SSIM_WINDOW, 1).expand(5 * c, 1, SSIM_WINDOW, 1)
    wx = g.view(1, 1, 1, SSIM_WINDOW).expand(5 * c, 1, 1, SSIM_WINDOW)
    c1 = (SSIM_K1 * data_range) ** 2
    c2 = (SSIM_K2 * data_range) ** 2
    step = max(1, _SSIM_CHUNK_ELEMENTS // (c * h * w))
    out = []
    for start in range(0, n, step):
        a, r = x[start : start + step], y[start : start + step]
        stats = torch.cat((a, r, a * a, r * r, a * r), dim=1)
        stats = F.conv2d(F.conv2d(stats, wy, groups=5 * c), wx, groups=5 * c)
        mu_a, mu_r, e_aa, e_rr, e_ar = stats.chunk(5, dim=1)
        var_a = e_aa - mu_a * mu_a
        var_r = e_rr - mu_r * mu_r
        cov = e_ar - mu_a * mu_r
        num = (2 * mu_a * mu_r + c1) * (2 * cov + c2)
        den = (mu_a * mu_a + mu_r * mu_r + c1) * (var_a + var_r + c2)
        out.append((num / den).mean(dim=(2, 3)).mean(dim=1))
    return torch.cat(out)


def _psnr_from_mse(mse: Tensor, data_range: float) -> Tensor:
    return 10.0 * torch.log10(data_range**2 / mse)


def _check_range(data_range: float) -> float:
    data_range = float(data_range)
    if not data_range > 0:
        raise InputError(f"data_range must be positive, got {data_range}")
    return data_range


#: Levin et al. (2009)'s ``comp_upto_shift``, the scoring of the captured-blur benchmark (``levin_real``):
#: 15 px border of the reference discarded, shifts within +-5 px on a 0.25 px grid, bilinear interpolation.
LEVIN_SCORING = Scoring(border=15, max_shift=5, subpixel=4)


# ---------------------------------------------------------------------------------------------- public


def psnr(
    x, ref, border: int = 0, max_shift: int = 0, data_range: float = 1.0, *, subpixel: int = 1
) -> Tensor:
    """Per-image PSNR in dB after border discard and (optionally) the PSNR-best shift.

    Args:
        x: estimate, ``(N, C, H, W)``, ``(C, H, W)`` or ``(H, W)``.
        ref: reference of the same shape.
        border: pixels removed from each side of both images.
        max_shift: search ``(dy, dx)`` in ``[-max_shift, max_shift]^2`` for the best alignment.
        data_range: peak value (1 for ``[0, 1]`` images, 255 for 0..255).
        subpixel: search shifts on a ``1 / subpixel`` px grid with bilinear interpolation (1 = integer).

    Returns:
        float64 tensor ``(N,)`` (``(1,)`` for unbatched inputs); ``inf`` where the images agree exactly.

    Example:
        >>> import torch
        >>> ref = torch.zeros(2, 1, 8, 8)
        >>> [f"{v:.4f}" for v in psnr(ref + 0.1, ref).tolist()]
        ['20.0000', '20.0000']
    """
    data_range = _check_range(data_range)
    x, ref = _prepare(x, ref, border, max_shift, subpixel)
    return _psnr_from_mse(_align(x, ref, border, max_shift, subpixel).mse, data_range)


def ssim(
    x, ref, border: int = 0, max_shift: int = 0, data_range: float = 1.0, *, subpixel: int = 1
) -> Tensor:
    """Per-image SSIM (11x11 Gaussian, sigma 1.5, valid window) at the PSNR-best shift.

    Arguments as :func:`psnr`. The scored region (after border discard) must be at least 11x11.

    Example:
        >>> import torch
        >>> g = torch.Generator().manual_seed(0)
        >>> ref = torch.rand(1, 3, 32, 32, generator=g, dtype=torch.float64)
        >>> f"{ssim(ref, ref).item():.6f}", bool(ssim(0.5 * ref, ref) < 1)
        ('1.000000', True)
    """
    data_range = _check_range(data_range)
    x, ref = _prepare(x, ref, border, max_shift, subpixel)
    al = _align(x, ref, border, max_shift, subpixel)
    return _ssim_valid(al.x, al.ref, data_range)


def best_shift(x, ref, border: int = 0, max_shift: int = 0, *, subpixel: int = 1) -> Tensor:
    """The per-image ``(dy, dx)`` in px that maximises PSNR, as a float64 tensor ``(N, 2)``.

    ``x[i + dy, j + dx]`` is compared with ``ref[i, j]``, so ``x = roll(ref, (dy, dx))`` gives ``(dy, dx)``.

    Example:
        >>> import torch
        >>> ref = torch.rand(1, 1, 40, 40, generator=torch.Generator().manual_seed(1))
        >>> best_shift(torch.roll(ref, (3, -2), dims=(-2, -1)), ref, border=5, max_shift=5).tolist()
        [[3.0, -2.0]]
    """
    x, ref = _prepare(x, ref, border, max_shift, subpixel)
    return _align(x, ref, border, max_shift, subpixel).shift


def score_details(x, ref, scoring: Scoring, data_range: float = 1.0) -> Scores:
    """PSNR, SSIM (at the PSNR-best shift) and the chosen shift under ``scoring``, per image.

    Example:
        >>> import torch
        >>> ref = torch.rand(1, 1, 40, 40, generator=torch.Generator().manual_seed(2))
        >>> r = score_details(torch.roll(ref, (0, 1), dims=(-2, -1)), ref, Scoring(border=2, max_shift=2))
        >>> r.shift.tolist(), bool(torch.isinf(r.psnr).all()), f"{r.ssim.item():.4f}"
        ([[0.0, 1.0]], True, '1.0000')
    """
    if not isinstance(scoring, Scoring):
        raise TypeError(f"scoring must be a Scoring, got {type(scoring).__name__}")
    data_range = _check_range(data_range)
    x, ref = _prepare(x, ref, scoring.border, scoring.max_shift, scoring.subpixel)
    al = _align(x, ref, scoring.border, scoring.max_shift, scoring.subpixel)
    return Scores(_psnr_from_mse(al.mse, data_range), _ssim_valid(al.x, al.ref, data_range), al.shift)


def score(x, ref, scoring: Scoring, data_range: float = 1.0) -> tuple[Tensor, Tensor]:
    """``(psnr, ssim)`` per image under ``scoring``; SSIM is taken at the PSNR-best shift.

    Example:
        >>> import torch
        >>> ref = torch.zeros(1, 1, 16, 16)
        >>> p, s = score(ref + 0.1, ref, Scoring())
        >>> f"{p.item():.4f}", f"{s.item():.4f}"
        ('20.0000', '0.0099')
    """
    r = score_details(x, ref, scoring, data_range)
    return r.psnr, r.ssim
