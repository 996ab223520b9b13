"""Image-quality metrics for the deconvolution benchmarks: PSNR and SSIM, per image.

Every function takes an estimate ``x`` and a reference ``ref`` of the same shape, batched ``(N, C, H, W)``
(``(C, H, W)`` and ``(H, W)`` are read as a batch of one), and returns a float64 tensor ``(N,)`` with one
value per image, on the inputs' device. Scores are always computed in float64; nothing is clipped, so
clip or quantise the estimate first if the protocol asks for it.

Conventions (see section 3 of the design notes and :class:`Scoring`):

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

The MSE of all ``(2 max_shift + 1)^2`` shifts is computed at once (FFT cross-correlation plus an integral
image of ``x^2``); the winning candidates are then re-scored directly, so the reported value is exact.

Example:
    >>> import torch
    >>> from podm_cli.evaluation.metrics import Scoring, score
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
        border: pixels discarded on each side of both images before scoring.
        max_shift: largest integer displacement (in each axis) searched for the PSNR-best alignment;
            0 scores the images as they are. The effective border is ``max(border, max_shift)``.

    Example:
        >>> print(Scoring().describe())  # doctest: +NORMALIZE_WHITESPACE
        whole image, no shift search;
        SSIM 11x11 Gaussian (sigma 1.5), K1=0.01, K2=0.03, valid window, data range 1
        >>> Scoring(border=50, max_shift=10).effective_border
        50
    """

    border: int = 0
    max_shift: int = 0

    def __post_init__(self) -> None:
        _check_params(self.border, self.max_shift)

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
        """
        if self.border == 0 and self.max_shift == 0:
            region = "whole image, no shift search"
        else:
            parts = []
            eff = self.effective_border
            if eff:
                extra = "" if eff == self.border else f" (border {self.border} raised to max_shift)"
                parts.append(f"{eff} px border discarded{extra}")
            if self.max_shift:
                parts.append(f"PSNR-best integer shift within +-{self.max_shift} px (SSIM at that shift)")
            else:
                parts.append("no shift search")
            region = ", ".join(parts)
        return (
            f"{region}; SSIM {SSIM_WINDOW}x{SSIM_WINDOW} Gaussian (sigma {SSIM_SIGMA}), "
            f"K1={SSIM_K1}, K2={SSIM_K2}, valid window, data range 1"
        )

    def to_dict(self) -> dict:
        """Plain dict for JSON summaries: border, max_shift, effective_border and the description."""
        return {
            "border": self.border,
            "max_shift": self.max_shift,
            "effective_border": self.effective_border,
            "description": self.describe(),
        }


class Scores(NamedTuple):
    """Per-image results of :func:`score_details`: PSNR (dB), SSIM, and the chosen ``(dy, dx)`` shift."""

    psnr: Tensor
    ssim: Tensor
    shift: Tensor


# --------------------------------------------------------------------------------------------- helpers


def _check_params(border: int, max_shift: int) -> None:
    for name, value in (("border", border), ("max_shift", max_shift)):
        if isinstance(value, bool) or not isinstance(value, int) or value < 0:
            raise InputError(f"{name} must be a non-negative integer, got {value!r}")


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


def _prepare(x, ref, border: int, max_shift: int) -> tuple[Tensor, Tensor]:
    _check_params(border, max_shift)
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
    shift: Tensor  # (N, 2) int64 (dy, dx)
    mse: Tensor  # (N,) exact MSE of the two regions


def _window_sums(t: Tensor, h: int, w: int) -> Tensor:
    """Sums of every h x w window of ``t`` (N, Hs, Ws) -> (N, Hs-h+1, Ws-w+1), via an integral image."""
    s = F.pad(t.cumsum(-2).cumsum(-1), (1, 0, 1, 0))
    return s[:, h:, w:] - s[:, :-h, w:] - s[:, h:, :-w] + s[:, :-h, :-w]


def _align(x: Tensor, ref: Tensor, border: int, max_shift: int) -> _Aligned:
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
        return _Aligned(xa, r, torch.zeros(n, 2, dtype=torch.int64, device=x.device), mse)

    big = x[..., b - s : b + h + s, b - s : b + w + s]  # (N, C, h+2s, w+2s)
    size = (next_fast_len(h + 2 * s, real=True), next_fast_len(w + 2 * s, real=True))
    # corr[k, l] = sum_ij big[i + k, j + l] r[i, j]; no wrap-around for k <= 2s since size >= h + 2s.
    spectrum = torch.fft.rfft2(big, s=size) * torch.fft.rfft2(r, s=size).conj()
    corr = torch.fft.irfft2(spectrum, s=size)[..., : 2 * s + 1, : 2 * s + 1].sum(dim=1)
    x2 = _window_sums(big.square().sum(dim=1), h, w)  # (N, 2s+1, 2s+1)
    r2 = r.square().sum(dim=(1, 2, 3))
    count = x.shape[1] * h * w
    approx = (x2 - 2 * corr + r2[:, None, None]) / count  # MSE of every shift, up to FFT round-off

    # Re-score every shift within a generous round-off tolerance of the minimum exactly; keep the
    # smallest exact MSE, ties going to the smallest |shift| (candidates are visited in that order).
    offs = torch.arange(-s, s + 1, device=x.device)
    dy, dx = torch.meshgrid(offs, offs, indexing="ij")
    order = torch.argsort((dy.square() + dx.square()).flatten(), stable=True)
    tol = 1e-9 * (x2.amax(dim=(1, 2)) + r2) / count + 1e-300
    shifts, mses, regions = [], [], []
    for i in range(n):
        flat = approx[i].flatten()[order]
        cand = order[flat <= flat.min() + tol[i]].tolist() if torch.isfinite(flat).all() else [order[0]]
        best = None
        for k in cand:
            ky, kx = divmod(int(k), 2 * s + 1)
            region = big[i, :, ky : ky + h, kx : kx + w]
            m = (region - r[i]).square().mean()
            if best is None or m < best[0]:
                best = (m, ky - s, kx - s, region)
        mses.append(best[0])
        shifts.append((best[1], best[2]))
        regions.append(best[3])
    return _Aligned(
        torch.stack(regions),
        r,
        torch.tensor(shifts, dtype=torch.int64, device=x.device),
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


# ---------------------------------------------------------------------------------------------- public


def psnr(x, ref, border: int = 0, max_shift: int = 0, data_range: float = 1.0) -> Tensor:
    """Per-image PSNR in dB after border discard and (optionally) the PSNR-best integer shift.

    Args:
        x: estimate, ``(N, C, H, W)``, ``(C, H, W)`` or ``(H, W)``.
        ref: reference of the same shape.
        border: pixels removed from each side of both images.
        max_shift: search ``(dy, dx)`` in ``[-max_shift, max_shift]^2`` for the best alignment.
        data_range: peak value (1 for ``[0, 1]`` images, 255 for 0..255).

    Returns:
        float64 tensor ``(N,)`` (``(1,)`` for unbatched inputs); ``inf`` where the images agree exactly.

    Example:
        >>> import torch
        >>> ref = torch.zeros(2, 1, 8, 8)
        >>> [f"{v:.4f}" for v in psnr(ref + 0.1, ref).tolist()]
        ['20.0000', '20.0000']
    """
    data_range = _check_range(data_range)
    x, ref = _prepare(x, ref, border, max_shift)
    return _psnr_from_mse(_align(x, ref, border, max_shift).mse, data_range)


def ssim(x, ref, border: int = 0, max_shift: int = 0, data_range: float = 1.0) -> Tensor:
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
    x, ref = _prepare(x, ref, border, max_shift)
    al = _align(x, ref, border, max_shift)
    return _ssim_valid(al.x, al.ref, data_range)


def best_shift(x, ref, border: int = 0, max_shift: int = 0) -> Tensor:
    """The per-image ``(dy, dx)`` that maximises PSNR, as an int64 tensor ``(N, 2)``.

    ``x[i + dy, j + dx]`` is compared with ``ref[i, j]``, so ``x = roll(ref, (dy, dx))`` gives ``(dy, dx)``.

    Example:
        >>> import torch
        >>> ref = torch.rand(1, 1, 40, 40, generator=torch.Generator().manual_seed(1))
        >>> best_shift(torch.roll(ref, (3, -2), dims=(-2, -1)), ref, border=5, max_shift=5).tolist()
        [[3, -2]]
    """
    x, ref = _prepare(x, ref, border, max_shift)
    return _align(x, ref, border, max_shift).shift


def score_details(x, ref, scoring: Scoring, data_range: float = 1.0) -> Scores:
    """PSNR, SSIM (at the PSNR-best shift) and the chosen shift under ``scoring``, per image.

    Example:
        >>> import torch
        >>> ref = torch.rand(1, 1, 40, 40, generator=torch.Generator().manual_seed(2))
        >>> r = score_details(torch.roll(ref, (0, 1), dims=(-2, -1)), ref, Scoring(border=2, max_shift=2))
        >>> r.shift.tolist(), bool(torch.isinf(r.psnr).all()), f"{r.ssim.item():.4f}"
        ([[0, 1]], True, '1.0000')
    """
    if not isinstance(scoring, Scoring):
        raise TypeError(f"scoring must be a Scoring, got {type(scoring).__name__}")
    data_range = _check_range(data_range)
    x, ref = _prepare(x, ref, scoring.border, scoring.max_shift)
    al = _align(x, ref, scoring.border, scoring.max_shift)
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
