"""The IRCNN baseline (HQS + the official denoiser bank): schedule, data step, interface, a measured PSNR.

Measured (CPU, torch 2.13, float32 input): Set12 ``01.png`` centre crop 96x96, first Schelten et al.
kernel <= 31 px (normalised), circular blur, noise 1% (seed 0), 10 iterations, sigma_floor 13:
blurred 15.40 dB -> IRCNN 28.29 dB (+12.89 dB).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from podm_cli.errors import InputError
from podm_cli.methods.ircnn import DEFAULT_SIGMA_FLOOR, IRCNN, MIN_NOISE_SIGMA, hqs_schedule
from podm_cli.nets import DenoiserBank
from podm_cli.physics import Blur, add_gaussian_noise

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
    s, rho = hqs_schedule(sigma, iterations=30, sigma_max=49, sigma_floor=13)
    s255 = np.logspace(np.log10(49), np.log10(13), 30)
    assert np.allclose(s.numpy() * 255, s255, rtol=1e-12)
    expected = (sigma.double()[:, None] ** 2 / 3) * 255.0**2 / torch.from_numpy(s255)[None] ** 2
    assert torch.allclose(rho, expected, rtol=1e-6)
    # DPIR's guard: a noise-free input uses sigma = 0.255/255 instead of rho = 0
    _, rho0 = hqs_schedule(torch.tensor([0.0]), iterations=2, sigma_max=49, sigma_floor=13)
    assert torch.allclose(
        rho0[0, 0], torch.tensor(MIN_NOISE_SIGMA**2 / 3 * 255**2 / 49**2, dtype=torch.float64)
    )
    for bad in ({"iterations": 0}, {"sigma_floor": 60.0}, {"sigma_floor": 0.0}, {"lamda_divisor": 0.0}):
        with pytest.raises(InputError):
            hqs_schedule(sigma, **{"iterations": 3, "sigma_max": 49, "sigma_floor": 13, **bad})


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
    m = IRCNN(iterations=5, bank=_identity_bank())
    out = m(y, k, torch.tensor([0.0, 0.01]))
    assert out.shape == y.shape and out.dtype == torch.float64
    assert torch.allclose(out, x, atol=1e-3)
    # a single shared kernel and a float sigma work too
    out1 = m(Blur(k1)(x), k1, 0.0)
    assert torch.allclose(out1, x, atol=1e-4)


def test_valid_mode_and_colour_shapes():
    m = IRCNN(iterations=2, bank=_identity_bank())
    y = torch.rand(1, 3, 30, 26)
    k = torch.ones(5, 5) / 25
    assert m(y, k, 0.01).shape == y.shape  # colour: channel by channel
    assert m(y, k, 0.01, mode="valid").shape == y.shape  # Liu-Jia extension, solve, crop back
    assert m.to("cpu") is m


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
    assert m.iterations == 30 and m.sigma_max == 49.0 and m.sigma_floor == DEFAULT_SIGMA_FLOOR
    assert m.weights is None


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
    m = IRCNN(iterations=10, sigma_floor=13.0, weights=str(KERAS))
    out = m(y, k, 0.01)
    before, after = _psnr(y, x), _psnr(out, x)
    assert abs(before - 15.40) < 0.1, before
    assert abs(after - 28.29) < 0.1, after
    assert after - before > 12.0
