"""PSNR/SSIM against scikit-image and torchmetrics, border discard, best-shift and sub-pixel alignment.

Measured agreement (float64 inputs, this file's images):
* PSNR vs ``skimage.metrics.peak_signal_noise_ratio``: identical (difference 0.0).
* SSIM vs ``skimage.metrics.structural_similarity(gaussian_weights=True, sigma=1.5,
  use_sample_covariance=False, data_range=1)``: <= 4e-16 grey and colour.
* torchmetrics' ``structural_similarity_index_measure`` reflect-pads and averages the full map: it equals
  our SSIM of reflect-padded inputs to ~2e-15 (float64) / ~3e-6 (float32), and differs from the valid-window
  SSIM by 3e-4 (1% noise) .. 1.7e-3 (5% noise) on 255x255 images, ~1e-2 on a 96x80 image.
"""

from __future__ import annotations

import doctest

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from scipy.ndimage import gaussian_filter, map_coordinates
from scipy.ndimage import shift as ndi_shift

from podm_cli import metrics
from podm_cli.errors import InputError
from podm_cli.metrics import LEVIN_SCORING, Scoring, best_shift, psnr, score, score_details, ssim

skm = pytest.importorskip("skimage.metrics")

SK_SSIM = {"gaussian_weights": True, "sigma": 1.5, "use_sample_covariance": False, "data_range": 1.0}


def smooth(rng: np.random.Generator, shape: tuple[int, ...], sigma: float = 2.0) -> np.ndarray:
    """Natural-ish test image in [0, 1]: low-passed noise, rescaled."""
    a = gaussian_filter(rng.random(shape), sigma, axes=(-2, -1))
    return (a - a.min()) / (a.max() - a.min())


def noisy(rng: np.random.Generator, ref: np.ndarray, level: float = 0.05) -> np.ndarray:
    return np.clip(ref + level * rng.standard_normal(ref.shape), 0.0, 1.0)


@pytest.fixture
def rng() -> np.random.Generator:
    return np.random.default_rng(1234)


def t(a: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(np.ascontiguousarray(a))


# ------------------------------------------------------------------------------------------------- PSNR


@pytest.mark.parametrize("shape", [(40, 56), (3, 40, 56)])
def test_psnr_matches_skimage(rng, shape):
    ref = rng.random(shape)
    x = rng.random(shape)
    expected = skm.peak_signal_noise_ratio(ref, x, data_range=1.0)
    got = psnr(t(x), t(ref))
    assert got.shape == (1,) and got.dtype == torch.float64
    assert abs(got.item() - expected) < 1e-6
    x2 = noisy(rng, ref, 0.02)
    assert abs(psnr(t(x2), t(ref)).item() - skm.peak_signal_noise_ratio(ref, x2, data_range=1.0)) < 1e-6


def test_psnr_known_values():
    ref = torch.zeros(2, 1, 8, 8)
    np.testing.assert_allclose(psnr(ref + 0.1, ref).numpy(), [20.0, 20.0], atol=1e-6)
    # MSE 1e-4 on 0..255 data -> 10 log10(255^2 / 1e-4)
    np.testing.assert_allclose(
        psnr(ref + 0.01, ref, data_range=255.0).numpy(), 10 * np.log10(255.0**2 / 1e-4), atol=1e-6
    )
    assert torch.isinf(psnr(ref, ref)).all()


def test_data_range_255_equals_unit_range(rng):
    ref = smooth(rng, (2, 3, 32, 32))
    x = noisy(rng, ref)
    p1, s1 = score(t(x), t(ref), Scoring(2, 1))
    p255, s255 = score(t(x * 255), t(ref * 255), Scoring(2, 1), data_range=255.0)
    torch.testing.assert_close(p1, p255, rtol=0, atol=1e-9)
    torch.testing.assert_close(s1, s255, rtol=0, atol=1e-12)


# ------------------------------------------------------------------------------------------------- SSIM


@pytest.mark.parametrize("colour", [False, True])
@pytest.mark.parametrize("kind", ["smooth", "noise"])
def test_ssim_matches_skimage(rng, colour, kind):
    shape = (3, 48, 40) if colour else (48, 40)
    ref = smooth(rng, shape) if kind == "smooth" else rng.random(shape)
    x = noisy(rng, ref) if kind == "smooth" else rng.random(shape)
    kw = {"channel_axis": 0} if colour else {}
    expected = skm.structural_similarity(ref, x, **SK_SSIM, **kw)
    got = ssim(t(x), t(ref))
    assert got.shape == (1,) and got.dtype == torch.float64
    assert abs(got.item() - expected) < 1e-9  # measured <= 4e-16; the brief asks 1e-4
    assert abs(ssim(t(ref), t(ref)).item() - 1.0) < 1e-12


def test_ssim_vs_torchmetrics(rng):
    tm = pytest.importorskip("torchmetrics.functional.image")
    ref = t(smooth(rng, (2, 1, 255, 255), sigma=3.0))
    x = t(noisy(rng, ref.numpy(), 0.05))
    kw = {"gaussian_kernel": True, "sigma": 1.5, "kernel_size": 11, "data_range": 1.0, "reduction": "none"}
    theirs = tm.structural_similarity_index_measure(x, ref, **kw)
    theirs32 = tm.structural_similarity_index_measure(x.float(), ref.float(), **kw).double()

    def pad(a: torch.Tensor) -> torch.Tensor:
        return F.pad(a, (5, 5, 5, 5), mode="reflect")

    reflect_padded = metrics._ssim_valid(pad(x), pad(ref), 1.0)
    ours = ssim(x, ref)
    # Same formula and window: torchmetrics is our SSIM of reflect-padded inputs (measured 2e-16 / 3e-6).
    torch.testing.assert_close(theirs, reflect_padded, rtol=0, atol=1e-12)
    torch.testing.assert_close(theirs32, reflect_padded, rtol=0, atol=2e-5)
    # ...which is not the valid-window SSIM: measured |diff| 1.7e-3 here, so the padding is what differs.
    diff = (theirs - ours).abs()
    assert (diff > 1e-4).all() and (diff < 5e-3).all()


# ----------------------------------------------------------------------------------- border and shifts


def test_border_equals_manual_crop(rng):
    ref = smooth(rng, (2, 3, 50, 44))
    x = noisy(rng, ref)
    b = 7
    xc, rc = t(x[..., b:-b, b:-b]), t(ref[..., b:-b, b:-b])
    torch.testing.assert_close(psnr(t(x), t(ref), border=b), psnr(xc, rc), rtol=0, atol=0)
    torch.testing.assert_close(ssim(t(x), t(ref), border=b), ssim(xc, rc), rtol=0, atol=0)
    assert (psnr(t(x), t(ref), border=b) != psnr(t(x), t(ref))).all()


def test_max_shift_zero_is_plain(rng):
    ref = smooth(rng, (3, 1, 40, 40))
    x = noisy(rng, ref)
    p, s = score(t(x), t(ref), Scoring(border=3, max_shift=0))
    torch.testing.assert_close(p, psnr(t(x[..., 3:-3, 3:-3]), t(ref[..., 3:-3, 3:-3])), rtol=0, atol=0)
    torch.testing.assert_close(s, ssim(t(x[..., 3:-3, 3:-3]), t(ref[..., 3:-3, 3:-3])), rtol=0, atol=0)
    assert (best_shift(t(x), t(ref), border=3) == 0).all()


@pytest.mark.parametrize("border", [0, 6])  # border < max_shift is raised to max_shift
def test_best_shift_recovers_roll(rng, border):
    ref = smooth(rng, (2, 3, 64, 60))
    shifts = [(3, -2), (-1, 4)]
    x = np.stack([np.roll(ref[i], s, axis=(-2, -1)) for i, s in enumerate(shifts)])
    scoring = Scoring(border=border, max_shift=4)
    r = score_details(t(x), t(ref), scoring)
    assert r.shift.tolist() == [list(s) for s in shifts]
    assert torch.isinf(r.psnr).all()
    torch.testing.assert_close(r.ssim, torch.ones(2, dtype=torch.float64), rtol=0, atol=1e-12)
    assert (best_shift(t(x), t(ref), border, 4) == r.shift).all()
    # without the search the rolled images score badly
    assert (psnr(t(x), t(ref), border=4) < 30).all()


def brute_force(x: np.ndarray, ref: np.ndarray, border: int, s: int):
    """Independent reference: loop over all shifts, fixed reference region, first minimum by |shift|."""
    b = max(border, s)
    h, w = ref.shape[-2] - 2 * b, ref.shape[-1] - 2 * b
    r = ref[..., b : b + h, b : b + w]
    best = None
    cands = sorted(
        ((dy, dx) for dy in range(-s, s + 1) for dx in range(-s, s + 1)), key=lambda d: d[0] ** 2 + d[1] ** 2
    )
    for dy, dx in cands:
        xa = x[..., b + dy : b + dy + h, b + dx : b + dx + w]
        mse = np.mean((xa - r) ** 2)
        if best is None or mse < best[0]:
            best = (mse, (dy, dx), xa, r)
    return best


def test_best_shift_matches_brute_force(rng):
    ref = smooth(rng, (3, 1, 48, 52), sigma=1.5)
    # a blurry, noisy, slightly shifted "estimate" so the best shift is not exact
    x = np.stack([np.roll(gaussian_filter(ref[i], 0.8), (i - 1, 2 - i), axis=(-2, -1)) for i in range(3)])
    x = noisy(rng, x, 0.03)
    border, s = 2, 4
    r = score_details(t(x), t(ref), Scoring(border, s))
    for i in range(3):
        mse, shift, xa, ra = brute_force(x[i], ref[i], border, s)
        assert tuple(r.shift[i].tolist()) == shift == (i - 1, 2 - i)
        assert abs(r.psnr[i].item() - 10 * np.log10(1.0 / mse)) < 1e-9
        expected_ssim = skm.structural_similarity(ra[0], xa[0], **SK_SSIM)
        assert abs(r.ssim[i].item() - expected_ssim) < 1e-9
        assert r.psnr[i] > psnr(t(x[i]), t(ref[i]), border=s)[0]


def test_ties_prefer_zero_shift():
    const = torch.full((1, 1, 30, 30), 0.5, dtype=torch.float64)
    assert best_shift(const, const, max_shift=5).tolist() == [[0, 0]]
    # period-4 stripes: shifts (0, +-4) match exactly too; (0, 0) must win despite FFT round-off
    stripes = (torch.arange(40, dtype=torch.float64) % 4 / 3).expand(1, 1, 40, 40)
    assert best_shift(stripes, stripes, border=2, max_shift=5).tolist() == [[0, 0]]


def test_batched_equals_loop(rng):
    ref = smooth(rng, (4, 3, 36, 40))
    x = np.stack([np.roll(noisy(rng, ref[i]), (i % 3 - 1, 1 - i % 2), axis=(-2, -1)) for i in range(4)])
    scoring = Scoring(border=1, max_shift=3)
    batched = score_details(t(x), t(ref), scoring)
    for i in range(4):
        single = score_details(t(x[i]), t(ref[i]), scoring)  # (C, H, W) input -> batch of one
        assert single.psnr.shape == (1,)
        torch.testing.assert_close(batched.psnr[i : i + 1], single.psnr, rtol=0, atol=1e-12)
        torch.testing.assert_close(batched.ssim[i : i + 1], single.ssim, rtol=0, atol=1e-12)
        assert (batched.shift[i] == single.shift[0]).all()


def test_input_forms_and_dtypes(rng):
    ref = smooth(rng, (32, 32))
    x = noisy(rng, ref)
    p2 = psnr(t(x), t(ref))
    torch.testing.assert_close(psnr(t(x)[None], t(ref)[None]), p2)
    torch.testing.assert_close(psnr(t(x)[None, None], t(ref)[None, None]), p2)
    p32 = psnr(t(x).float(), t(ref).float())
    assert p32.dtype == torch.float64 and abs(p32.item() - p2.item()) < 1e-4
    u8x, u8r = (
        torch.from_numpy((x * 255).round().astype(np.uint8)),
        torch.from_numpy((ref * 255).round().astype(np.uint8)),
    )
    expected = skm.peak_signal_noise_ratio(u8r.numpy(), u8x.numpy(), data_range=255)
    assert abs(psnr(u8x, u8r, data_range=255).item() - expected) < 1e-6


def test_nan_propagates_without_error(rng):
    ref = t(smooth(rng, (1, 1, 32, 32)))
    x = ref.clone()
    x[0, 0, 10, 10] = float("nan")
    assert torch.isnan(psnr(x, ref, max_shift=2)).all()
    assert torch.isnan(ssim(x, ref, max_shift=2)).all()


@pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device")
def test_cuda_matches_cpu(rng):
    ref = t(smooth(rng, (2, 3, 64, 64)))
    x = t(noisy(rng, ref.numpy()))
    cpu = score_details(x, ref, Scoring(4, 3))
    gpu = score_details(x.cuda().float(), ref.cuda().float(), Scoring(4, 3))
    assert gpu.psnr.device.type == "cuda"
    torch.testing.assert_close(gpu.psnr.cpu(), cpu.psnr, rtol=0, atol=1e-4)
    torch.testing.assert_close(gpu.ssim.cpu(), cpu.ssim, rtol=0, atol=1e-5)
    assert (gpu.shift.cpu() == cpu.shift).all()


# ------------------------------------------------------------------- sub-pixel (Levin's comp_upto_shift)


def comp_upto_shift_reference(est: np.ndarray, gt: np.ndarray):
    """Levin et al.'s ``comp_upto_shift`` as published, one shift at a time: ground truth without 15 px,
    estimate without 10 px, bilinear interpolation (``map_coordinates(order=1)``, MATLAB ``interp2``'s
    'linear') at every shift of -5:0.25:5 in both axes, least sum of squared errors; ties to the smallest shift.
    """
    g = gt[15:-15, 15:-15]
    e = est[10:-10, 10:-10]
    ii, jj = np.mgrid[0 : g.shape[0], 0 : g.shape[1]].astype(np.float64)
    shifts = np.arange(-20, 21) / 4
    cands = sorted(((dy, dx) for dy in shifts for dx in shifts), key=lambda d: d[0] ** 2 + d[1] ** 2)
    best = None
    for dy, dx in cands:
        t_ = map_coordinates(e, [ii + 5 + dy, jj + 5 + dx], order=1, mode="nearest")
        sse = np.sum((t_ - g) ** 2)
        if best is None or sse < best[0]:
            best = (sse, (dy, dx), t_)
    sse, shift, aligned = best
    return 10 * np.log10(1.0 / np.mean((aligned - g) ** 2)), shift, aligned, g


def test_levin_scoring_matches_comp_upto_shift_reference(rng):
    ref = smooth(rng, (2, 1, 52, 47), sigma=1.5)
    # blurred, shifted by a non-grid amount (so the answer is a genuine interpolation), then noisy
    est = np.stack([gaussian_filter(ndi_shift(ref[i, 0], (i + 0.6, -1.3), order=3, mode="nearest"), 0.7)
                    for i in range(2)])
    est = noisy(rng, est, 0.02)[:, None]
    r = score_details(t(est), t(ref), LEVIN_SCORING)
    for i in range(2):
        p, shift, aligned, g = comp_upto_shift_reference(est[i, 0], ref[i, 0])
        assert tuple(r.shift[i].tolist()) == shift
        assert shift != tuple(np.round(shift))  # the reference's optimum is off the integer grid
        assert abs(r.psnr[i].item() - p) < 1e-9
        assert abs(r.ssim[i].item() - skm.structural_similarity(g, aligned, **SK_SSIM)) < 1e-9


def test_every_subpixel_sse_matches_direct_interpolation(rng):
    """The fast search's error surface (all 41 x 41 shifts) equals interpolating and summing each shift."""
    ref = smooth(rng, (1, 2, 40, 37))
    est = noisy(rng, ref, 0.05)
    s, b = 5, 15
    h, w = 40 - 2 * b, 37 - 2 * b
    big, r = t(est)[..., b - s : b + h + s, b - s : b + w + s], t(ref)[..., b : b + h, b : b + w]
    sse, _ = metrics._bilinear_sse(big, r, s, metrics._bilinear_taps(s, 4))
    ii, jj = np.mgrid[0:h, 0:w].astype(np.float64)
    grid = np.arange(-20, 21) / 4
    direct = np.array([[sum(np.sum((map_coordinates(est[0, c, b - s : b + h + s, b - s : b + w + s],
                                                      [ii + s + dy, jj + s + dx], order=1) - ref[0, c, b:-b, b:-b]) ** 2)
                            for c in range(2)) for dx in grid] for dy in grid])
    np.testing.assert_allclose(sse[0].numpy(), direct, rtol=1e-12, atol=0)


def band_limited(dy: float, dx: float, shape=(96, 90)) -> np.ndarray:
    """A smooth analytic scene sampled at ``(i - dy, j - dx)``: an exactly shifted copy for any dy, dx."""
    i, j = np.mgrid[0 : shape[0], 0 : shape[1]].astype(np.float64)
    y, x = i - dy, j - dx
    return (0.5 + 0.2 * np.cos(2 * np.pi * (0.031 * y + 0.017 * x) + 0.3)
            + 0.12 * np.cos(2 * np.pi * (0.012 * y - 0.036 * x) + 1.1) + 0.08 * np.sin(2 * np.pi * 0.027 * x))


@pytest.mark.parametrize("shift", [(1.25, -2.5), (-3.75, 0.5)])
def test_fractional_shift_is_found_and_scored_as_unshifted(shift):
    ref = band_limited(0.0, 0.0)
    # an imperfect estimate (contrast and brightness off), unshifted and exactly shifted by a fractional amount
    unshifted = 0.9 * band_limited(0.0, 0.0) + 0.04
    shifted = 0.9 * band_limited(*shift) + 0.04
    base = score_details(t(unshifted), t(ref), LEVIN_SCORING)
    got = score_details(t(shifted), t(ref), LEVIN_SCORING)
    assert base.shift.tolist() == [[0.0, 0.0]]
    assert got.shift.tolist() == [list(shift)]
    # Within interpolation error: eps = RMS of (bilinear interpolant of `shifted` at the true shift -
    # `unshifted`) on the scored region; by the triangle inequality the RMS errors differ by at most eps.
    ii, jj = np.mgrid[15:-15 + ref.shape[0], 15:-15 + ref.shape[1]].astype(np.float64)
    back = map_coordinates(shifted, [ii + shift[0], jj + shift[1]], order=1)
    eps = np.sqrt(np.mean((back - unshifted[15:-15, 15:-15]) ** 2))
    rms_base, rms_got = 10 ** (-base.psnr.item() / 20), 10 ** (-got.psnr.item() / 20)
    assert abs(rms_got - rms_base) <= eps + 1e-12
    assert eps < 0.1 * rms_base  # interpolation error is small here: measured 0.32 dB, 6e-4 SSIM
    assert abs(got.psnr.item() - base.psnr.item()) < 0.5 and abs(got.ssim.item() - base.ssim.item()) < 2e-3
    # integer alignment cannot undo the fractional part and loses clearly (measured 32.64 vs 33.76 dB)
    integer = score_details(t(shifted), t(ref), Scoring(15, 5))
    assert integer.psnr.item() < got.psnr.item() - 1.0


def zigzag(t_: np.ndarray) -> np.ndarray:
    """Triangle wave of period 12, slope +-1, kinks at half-integers (values 0 .. 6)."""
    return np.abs(np.mod(t_ - 0.5, 12.0) - 6.0)


def test_integer_and_subpixel_scoring_differ_by_the_known_amount():
    # ref(i, j) = a (Z(i) + Z(j)); the estimate is that scene moved by half a pixel in both axes, plus an
    # offset c. Z is piecewise linear with kinks at half-integers, so the bilinear interpolant of the
    # estimate is exact and the half-pixel shift recovers ref + c: MSE = c^2. At every integer shift each
    # axis is off by +-0.5 a with mean zero over whole periods (48 px = 4 periods): MSE = 0.5 a^2 + c^2.
    a, c = 0.02, 0.01
    k = np.arange(78, dtype=np.float64)
    ref = 0.2 + a * (zigzag(k)[:, None] + zigzag(k)[None, :])
    est = 0.2 + a * (zigzag(k - 0.5)[:, None] + zigzag(k - 0.5)[None, :]) + c
    sub = score_details(t(est), t(ref), LEVIN_SCORING)
    integer = score_details(t(est), t(ref), Scoring(15, 5))
    assert sub.shift.tolist() == [[0.5, 0.5]]
    assert abs(sub.psnr.item() - (-20 * np.log10(c))) < 1e-9  # 40 dB
    assert abs(integer.psnr.item() - (-10 * np.log10(0.5 * a**2 + c**2))) < 1e-9  # 32.22 dB
    assert abs((sub.psnr - integer.psnr).item() - 10 * np.log10(1 + 0.5 * a**2 / c**2)) < 1e-9  # 7.78 dB


def test_subpixel_never_below_integer_and_exact_on_integer_rolls(rng):
    ref = smooth(rng, (3, 1, 60, 64))
    x = noisy(rng, np.stack([np.roll(ref[i], (i - 1, 2 * i - 2), axis=(-2, -1)) for i in range(3)]), 0.03)
    sub = score_details(t(x), t(ref), Scoring(15, 5, subpixel=4))
    integer = score_details(t(x), t(ref), Scoring(15, 5))
    assert (sub.psnr >= integer.psnr).all()
    rolled = np.stack([np.roll(ref[i], (i - 1, 2 * i - 2), axis=(-2, -1)) for i in range(3)])
    exact = score_details(t(rolled), t(ref), LEVIN_SCORING)
    assert exact.shift.tolist() == [[-1.0, -2.0], [0.0, 0.0], [1.0, 2.0]] and torch.isinf(exact.psnr).all()
    # the functional API takes the same grid
    torch.testing.assert_close(psnr(t(x), t(ref), 15, 5, subpixel=4), sub.psnr, rtol=0, atol=0)
    torch.testing.assert_close(ssim(t(x), t(ref), 15, 5, subpixel=4), sub.ssim, rtol=0, atol=0)
    assert (best_shift(t(x), t(ref), 15, 5, subpixel=4) == sub.shift).all()


# ------------------------------------------------------------------------------------- errors, Scoring


@pytest.mark.parametrize(
    "call",
    [
        lambda a: psnr(a, a[..., :-1]),  # shape mismatch
        lambda a: ssim(a[:1], a),  # batch mismatch
        lambda a: psnr(a, a, border=-1),
        lambda a: psnr(a, a, max_shift=1.5),
        lambda a: psnr(a, a, border=10),  # 20x20 image, nothing left
        lambda a: ssim(a, a, border=5),  # 10x10 region < SSIM window
        lambda a: psnr(a, a, data_range=0),
        lambda a: psnr(a[0, 0, 0], a[0, 0, 0]),  # 1-D
        lambda a: Scoring(border=-1),
        lambda a: Scoring(max_shift=True),
        lambda a: Scoring(subpixel=0),
        lambda a: Scoring(subpixel=True),
        lambda a: psnr(a, a, max_shift=1, subpixel=2.0),
    ],
)
def test_bad_input_raises_input_error(call):
    a = torch.rand(2, 1, 20, 20)
    with pytest.raises(InputError):
        call(a)


def test_scoring_describe_and_dict():
    sun = Scoring(border=50, max_shift=10)
    assert sun.describe().startswith("50 px border discarded, PSNR-best integer shift within +-10 px")
    assert "11x11 Gaussian (sigma 1.5)" in sun.describe()
    assert Scoring().describe().startswith("whole image, no shift search")
    odd = Scoring(border=2, max_shift=5)
    assert odd.effective_border == 5 and "raised to max_shift" in odd.describe()
    assert Scoring(border=3).describe().startswith("3 px border discarded, no shift search")
    d = sun.to_dict()
    assert d["border"] == 50 and d["max_shift"] == 10 and d["effective_border"] == 50
    with pytest.raises(AttributeError):
        sun.border = 0  # frozen
    assert Scoring(50, 10) == sun and hash(Scoring(50, 10)) == hash(sun)
    assert d["shift_step"] == 1.0 and LEVIN_SCORING.to_dict()["shift_step"] == 0.25
    assert LEVIN_SCORING == Scoring(border=15, max_shift=5, subpixel=4)
    assert "0.25 px grid within +-5 px, bilinear" in LEVIN_SCORING.describe()


def test_docstring_examples_run():
    result = doctest.testmod(metrics, optionflags=doctest.NORMALIZE_WHITESPACE)
    assert result.failed == 0 and result.attempted > 0
