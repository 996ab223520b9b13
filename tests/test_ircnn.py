"""The IRCNN baseline (HQS + the official denoiser bank): schedule, data step, interface, a measured PSNR.

Measured (CPU, torch 2.13, float32 input): Set12 ``01.png`` centre crop 96x96, first Schelten et al.
kernel <= 31 px (normalised), circular blur, noise 1% (seed 0), 10 stages, last denoiser level 13/255,
sigma_scale 1 (the demo's rule):
blurred 15.40 dB -> IRCNN 28.29 dB (+12.89 dB).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from podm_cli.errors import InputError
from podm_cli.methods.ircnn import IRCNN, IRCNN_SIGMA_SCALE, IRCNN_SIGMA_SCALE_APPROXIMATE_KERNEL
from podm_cli.nets import DenoiserBank
from podm_cli.optim.hqs import hqs_solve
from podm_cli.optim.schedules import IRCNN_LAST_LEVEL, MIN_NOISE_SIGMA, ircnn_schedule
from podm_cli.physics import Blur, DataTerm, add_gaussian_noise

REPO = Path(__file__).resolve().parents[1]
from conftest import SHARED_DATA as DATA  # noqa: E402

KERAS = DATA / "weights" / "ircnn_gray_keras"
SET12 = DATA / "train" / "Set12" / "01.png"
SCHELTEN = DATA / "train" / "kernels_schelten2015.mat"


def _identity_bank() -> DenoiserBank:
    bank = DenoiserBank([torch.nn.Conv2d(1, 1, 1, bias=False) for _ in range(25)])
    for c in bank.nets:
        torch.nn.init.ones_(c.weight)
    return bank


def _psnr(x, ref) -> float:
    return float(10 * torch.log10(1.0 / ((x.double() - ref.double()) ** 2).mean()))


def test_schedule_is_the_demo_rule():
    """Demo_deblur.m: logspace(log10(49), log10(floor), 30); rho_i = (sigma^2/3) * 255^2 / s_i^2."""
    sigma = torch.tensor([0.01, 7.65 / 255])
    s, rho = ircnn_schedule(sigma, stages=30, first=49 / 255, last=13 / 255)
    s255 = np.logspace(np.log10(49), np.log10(13), 30)
    assert np.allclose(s.numpy() * 255, s255, rtol=1e-12)
    expected = (sigma.double()[:, None] ** 2 / 3) * 255.0**2 / torch.from_numpy(s255)[None] ** 2
    assert torch.allclose(rho, expected, rtol=1e-6)
    # DPIR's guard: a noise-free input uses sigma = 0.255/255 instead of rho = 0
    _, rho0 = ircnn_schedule(torch.tensor([0.0]), stages=2, first=49 / 255, last=13 / 255)
    assert torch.allclose(
        rho0[0, 0], torch.tensor(MIN_NOISE_SIGMA**2 / 3 * 255**2 / 49**2, dtype=torch.float64)
    )
    for bad in ({"stages": 0}, {"last": 60 / 255}, {"last": 0.0}, {"rho_divisor": 0.0}):
        with pytest.raises(InputError):
            ircnn_schedule(sigma, **{"stages": 3, "first": 49 / 255, "last": 13 / 255, **bad})


def test_data_step_inverts_an_invertible_blur_with_identity_denoiser():
    """With D = identity, HQS's fixed point is the inverse filter: exact for noise-free, invertible blur."""
    torch.manual_seed(0)
    x = torch.rand(2, 1, 24, 30, dtype=torch.float64)
    k1 = torch.zeros(3, 3, dtype=torch.float64)
    k1[1, 1] = 0.6
    k1 += 0.4 / 9
    k2 = torch.zeros(3, 3, dtype=torch.float64)
    k2[0, 0], k2[1, 1] = 0.3, 0.7  # |OTF| >= 0.4 everywhere: invertible
    k = torch.stack([k1, k2])[:, None]  # one kernel per item
    y = Blur(k)(x)
    m = IRCNN(stages=5, bank=_identity_bank())
    out = m(y, k, torch.tensor([0.0, 0.01]))
    assert out.shape == y.shape and out.dtype == torch.float64
    assert torch.allclose(out, x, atol=1e-3)
    # a single shared kernel and a float sigma work too
    out1 = m(Blur(k1)(x), k1, 0.0)
    assert torch.allclose(out1, x, atol=1e-4)


def test_valid_mode_and_colour_shapes():
    m = IRCNN(stages=2, bank=_identity_bank())
    y = torch.rand(1, 3, 30, 26)
    k = torch.ones(5, 5) / 25
    assert m(y, k, 0.01).shape == y.shape  # colour: channel by channel
    assert m(y, k, 0.01, mode="valid").shape == y.shape  # Liu-Jia extension, solve, crop back
    assert m.with_boundary(boundary="adjust")(y, k, 0.01, mode="valid").shape == y.shape
    assert m.to("cpu") is m


def test_stages_are_reported_cropped():
    seen = []
    m = IRCNN(stages=3, bank=_identity_bank()).with_boundary(boundary="edgetaper")
    out = m(torch.rand(1, 1, 30, 26), torch.ones(5, 5) / 25, 0.01, mode="valid",
            on_stage=lambda i, x: seen.append((i, tuple(x.shape), x.clone())))
    assert [(i, s) for i, s, _ in seen] == [(0, (1, 1, 30, 26)), (1, (1, 1, 30, 26)), (2, (1, 1, 30, 26))]
    assert torch.equal(seen[-1][2].clamp(0, 1), out)


def test_adjusted_boundary_descends_the_true_data_term():
    """With D = identity, an HQS step with the adjusted observation phi(x_k) minimises a majoriser of the
    TRUE valid data term that touches it at x_k (1/2||Ku - phi(x_k)||^2 = f(u) + 1/2||(1-M)K(u - x_k)||^2),
    so f never increases; with noise and a blur that is not exactly invertible it keeps decreasing."""
    g = torch.Generator().manual_seed(0)
    x = torch.rand(1, 1, 40, 40, generator=g, dtype=torch.float64)
    k = torch.ones(5, 5, dtype=torch.float64) / 25
    y = Blur(k, "valid")(x) + 0.01 * torch.randn(1, 1, 36, 36, generator=g, dtype=torch.float64)
    data = DataTerm.build(y, k, mode="valid", boundary="adjust", start="liu")
    f = [float(data.f(data.initial()))]
    hqs_solve(data, lambda v, s: v, [0.1] * 40, 0.05, tol=0, callback=lambda i, z, r: f.append(float(data.f(z))))
    steps = torch.tensor(f[1:]) - torch.tensor(f[:-1])
    assert bool((steps <= 1e-12).all()) and f[-1] < 0.5 * f[1], f[:3] + f[-2:]


def test_requirements_and_missing(tmp_path):
    m = IRCNN()
    assert len(m.requirements.files) == 25 and m.requirements.files[0] == "weights/ircnn_gray_keras/net1.hdf5"
    msg = m.missing(tmp_path)
    assert "podm data fetch weights" in msg and "net1.hdf5" in msg
    assert "podm data fetch weights" in IRCNN(weights=str(tmp_path / "x.pth")).missing(tmp_path)
    assert IRCNN(bank=_identity_bank()).missing(tmp_path) is None


def test_config_instantiates():
    from podm_cli.apps.methods import build_method

    m = build_method("ircnn")
    assert isinstance(m, IRCNN) and m.name == "ircnn"
    assert m.stages == 30 and m.denoiser_first == 49 / 255 and m.denoiser_last == IRCNN_LAST_LEVEL == 13 / 255
    assert m.rho_divisor == 3.0
    assert m.weights is None
    assert m.sigma_scale == IRCNN_SIGMA_SCALE == 1.0  # the demo's rule by default (docs/noise_level.md)
    assert build_method("ircnn", {"sigma_scale": 2.5}).sigma_scale == 2.5
    # on a protocol whose kernel is approximate (levin_real) the input noise level is raised x2 (docs/noise_level.md)
    assert m.approximate_kernel_sigma_scale == IRCNN_SIGMA_SCALE_APPROXIMATE_KERNEL == 2.0
    assert m.input_sigma(0.01) == 0.01 and m.input_sigma(0.01, "approximate") == pytest.approx(0.02)
    for bad in (0.0, float("inf")):
        with pytest.raises(InputError, match="approximate_kernel_sigma_scale"):
            IRCNN(bank=_identity_bank(), approximate_kernel_sigma_scale=bad)


def test_sigma_scale_scales_the_noise_level_in_rho():
    """``sigma_scale`` multiplies the given sigma in rho: rho grows by its square, levels do not move, and
    the restoration equals the unscaled method given the scaled sigma (and differs from it given sigma)."""
    sigma = torch.tensor([0.01, 1.5 / 255], dtype=torch.float64)
    base, scaled = IRCNN(stages=4, bank=_identity_bank(), sigma_scale=1.0), IRCNN(
        stages=4, bank=_identity_bank(), sigma_scale=3.0)
    (l1, r1), (l3, r3) = base.schedule(sigma), scaled.schedule(sigma)
    assert torch.equal(l1, l3)
    assert torch.allclose(r3, 9.0 * r1, rtol=1e-12)
    assert torch.allclose(r3[1, 0], torch.tensor((3 * 1.5 / 255) ** 2 / 3 / (49 / 255) ** 2, dtype=torch.float64))
    torch.manual_seed(0)
    x = torch.rand(1, 1, 20, 20, dtype=torch.float64)
    k = torch.ones(3, 3, dtype=torch.float64) / 9
    y = Blur(k)(x)
    out3 = scaled(y, k, 0.01)
    assert torch.allclose(out3, base(y, k, 0.03), atol=1e-12)
    assert (out3 - base(y, k, 0.01)).abs().max() > 1e-3
    for bad in (0.0, -1.0, float("nan")):
        with pytest.raises(InputError):
            IRCNN(bank=_identity_bank(), sigma_scale=bad)


def test_missing_has_no_side_effects_and_build_method_fixes_the_root(monkeypatch, tmp_path):
    """``missing`` only looks; ``build_method`` hands the data root to the constructor, so the bank is read
    from the root that was checked, not from $PODM_DATA."""
    from podm_cli.apps.methods import build_method

    monkeypatch.setenv("PODM_DATA", str(tmp_path / "elsewhere"))
    bare = IRCNN()
    before = dict(vars(bare))
    assert "podm data fetch weights" in bare.missing(tmp_path)
    assert vars(bare) == before
    assert bare._weights_path() == tmp_path / "elsewhere" / "weights" / "ircnn_gray_keras"
    m = build_method("ircnn", None, tmp_path)
    assert m._weights_path() == tmp_path / "weights" / "ircnn_gray_keras"
    assert str(tmp_path) in m.missing(tmp_path / "other")  # the constructor's root is what loads


@pytest.mark.data
@pytest.mark.skipif(
    not (KERAS / "net25.hdf5").is_file() or not SET12.is_file() or not SCHELTEN.is_file(),
    reason=f"IRCNN weights / Set12 / Schelten kernels not under {DATA} (set PODM_DATA)",
)
def test_ircnn_deblurs_a_small_crop_by_a_measured_margin():
    import scipy.io

    from podm_cli.imageio import read_image

    x = read_image(SET12, mode="gray")[0][None]
    h, w = x.shape[-2:]
    x = x[..., (h - 96) // 2 : (h - 96) // 2 + 96, (w - 96) // 2 : (w - 96) // 2 + 96].double()
    kernels = scipy.io.loadmat(SCHELTEN)["kernels"].ravel()
    k = next(np.asarray(k, dtype=np.float64) for k in kernels if max(k.shape) <= 31)
    k = torch.from_numpy(k / k.sum())
    y = add_gaussian_noise(Blur(k)(x), 0.01, seed=0).float()
    m = IRCNN(stages=10, denoiser_last=13 / 255, sigma_scale=1.0, weights=str(KERAS))
    out = m(y, k, 0.01)
    before, after = _psnr(y, x), _psnr(out, x)
    assert abs(before - 15.40) < 0.1, before
    assert abs(after - 28.29) < 0.1, after
    assert after - before > 12.0



def test_adjust_after_every_stage_is_the_start_rule():
    """boundary=adjust that never starts adjusting (adjust_after >= stages) is exactly its start rule; adjusting
    from stage 1 on changes the result."""
    y, k = torch.rand(1, 1, 30, 26, dtype=torch.float64), torch.ones(5, 5, dtype=torch.float64) / 25
    nets = [torch.nn.Conv2d(1, 1, 3, padding=1, padding_mode="replicate", bias=False) for _ in range(25)]
    for c in nets:
        torch.nn.init.constant_(c.weight, 1 / 9)
    smooth = DenoiserBank(nets).to(torch.float64)
    run = lambda **b: IRCNN(stages=4, bank=smooth).with_boundary(**b)(y, k, 0.01, mode="valid")
    liu = run(boundary="liu")
    assert torch.equal(run(boundary="adjust", start="liu", adjust_after=4), liu)
    assert not torch.allclose(run(boundary="adjust", start="liu", adjust_after=1), liu, atol=1e-6)
