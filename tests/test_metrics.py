"""PSNR/SSIM against scikit-image and torchmetrics, border discard and best-shift alignment.

Measured agreement (float64 inputs, this file's images):
* PSNR vs ``skimage.metrics.peak_signal_noise_ratio``: identical (difference 0.0).
* SSIM vs ``skimage.metrics.structural_similarity(gaussian_weights=True, sigma=1.5,
  use_sample_covariance=False, data_range=1)``: <= 4e-16 grey and colour.
* torchmetrics' ``structural_similarity_index_measure`` reflect-pads and averages the full map: it equals
  our SSIM of reflect-padded inputs to ~2e-15 (float64) / ~3e-6 (float32), and differs from the valid-window
  SSIM by 3e-4 (1% noise) .. 1.7e-3 (5% noise) on 255x255 images, ~1e-2 on a 96x80 image.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from scipy.ndimage import gaussian_filter

from podm_cli.errors import InputError
from podm_cli.evaluation import metrics
from podm_cli.evaluation.metrics import Scoring, best_shift, psnr, score, score_details, ssim

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
