"""CSF (podm_cli.models.csf, podm_cli.methods.csf): Wiener limits of a stage, RBF shrinkage, the official and podm models."""

from __future__ import annotations

import pytest
import torch

from conftest import SHARED_DATA, checker_scene, psnr01
from podm_cli.errors import InputError
from podm_cli.methods.csf import CSF
from podm_cli.models.csf import (
    CSFModel,
    csf_stage,
    default_csf_path,
    pairwise_filters,
    rbf_shrink,
    run_cascade,
)
from podm_cli.physics import Blur, DataTerm, add_gaussian_noise, psf2otf
from podm_cli.training.csf import identity_weights

OFFICIAL = SHARED_DATA / "weights" / "csf" / "table3" / "csf_pw.mat"


def _problem(n=48, seed=0):
    g = torch.Generator().manual_seed(seed)
    x = torch.rand(1, 1, n, n, generator=g, dtype=torch.float64) * 255
    k = torch.rand(7, 7, generator=g, dtype=torch.float64)
    k /= k.sum()
    y = Blur(k)(x) + torch.randn(x.shape, generator=g, dtype=torch.float64)
    return x, y, k


def _stage_inputs(y, k, filters):
    """(data term, filter OTFs, blur OTF) of a circular problem."""
    return DataTerm.build(y, k), psf2otf(filters[None], y.shape[-2:])[0], psf2otf(k, y.shape[-2:])


def test_stage_with_zero_shrinkage_is_the_wiener_deconvolution():
    _, y, k = _problem()
    lam = 0.7
    data, fotf, otf = _stage_inputs(y, k, pairwise_filters())
    x = csf_stage(torch.rand_like(y), data, lam, fotf, lambda v: torch.zeros_like(v))  # the input is irrelevant
    reg = (fotf.real**2 + fotf.imag**2).sum(0)
    wiener = torch.fft.irfft2(torch.conj(otf) * torch.fft.rfft2(y) / (otf.real**2 + otf.imag**2 + reg / lam),
                              s=y.shape[-2:])
    assert torch.allclose(x, wiener, atol=1e-9)


@pytest.mark.parametrize("a", [1.0, 0.6])
def test_stage_with_linear_shrinkage_reduces_to_the_wiener_deconvolution(a):
    """psi(v) = a v: the stage is a proximal Wiener step whose fixed point is the Wiener deconvolution with
    regulariser (1 - a) sum |F_i|^2 / lam; a = 1 (identity shrinkage) from x = 0 is the Wiener step itself."""
    _, y, k = _problem()
    lam = 2.0
    data, fotf, otf = _stage_inputs(y, k, pairwise_filters())
    reg = (fotf.real**2 + fotf.imag**2).sum(0)
    x_prev = torch.rand_like(y) * 255
    x1 = csf_stage(x_prev, data, lam, fotf, lambda v: a * v)
    step = (lam * torch.conj(otf) * torch.fft.rfft2(y) + a * reg * torch.fft.rfft2(x_prev)) / (lam * (otf.real**2 + otf.imag**2) + reg)
    assert torch.allclose(x1, torch.fft.irfft2(step, s=y.shape[-2:]), atol=1e-8)
    if a < 1:
        x = x_prev
        for _ in range(200):
            x = csf_stage(x, data, lam, fotf, lambda v: a * v)
        denom = otf.real**2 + otf.imag**2 + (1 - a) * reg / lam
        wiener = torch.fft.irfft2(torch.conj(otf) * torch.fft.rfft2(y) / denom, s=y.shape[-2:])
        assert torch.allclose(x, wiener, atol=1e-6)


def test_rbf_identity_weights_make_a_cascade_stage_the_wiener_step():
    _, y, k = _problem()
    proto = CSFModel(torch.ones(1, dtype=torch.float64), pairwise_filters()[None], torch.zeros(1, 2, 53))
    w = identity_weights(proto.means, proto.precision).expand(2, -1)
    v = torch.linspace(-200, 200, 801, dtype=torch.float64).reshape(1, 1, 1, -1).expand(1, 2, 1, -1)
    assert torch.allclose(rbf_shrink(v, w, proto.mu0, proto.step, proto.precision), v, atol=0.05)
    model = CSFModel(torch.tensor([3.0], dtype=torch.float64), pairwise_filters()[None], w[None].clone())
    data, fotf, _ = _stage_inputs(y / 255, k, pairwise_filters())  # the cascade runs on [0, 1]
    exact = csf_stage(data.initial(), data, 3.0, fotf, lambda v: v)
    assert torch.allclose(run_cascade(model, data), exact, atol=0.05 / 255)


def test_truncated_rbf_equals_the_full_mixture():
    g = torch.Generator().manual_seed(1)
    w = torch.randn(3, 53, generator=g, dtype=torch.float64) * 50
    v = torch.randn(2, 3, 7, 7, generator=g, dtype=torch.float64) * 120
    means = -260 + 10 * torch.arange(53, dtype=torch.float64)
    full = (w[None, :, None, None, :] * torch.exp(-0.005 * (v[..., None] - means) ** 2)).sum(-1)
    assert torch.allclose(rbf_shrink(v, w, -260.0, 10.0, 0.01), full, atol=1e-5)


@pytest.mark.data
def test_official_csf_pw_loads_with_the_right_shapes_and_runs():
    if not OFFICIAL.is_file():
        pytest.skip("weights/csf/table3/csf_pw.mat absent (podm data fetch weights)")
    m = CSFModel.from_mat(OFFICIAL)
    assert m.stages == 3 and m.filters.shape == (3, 2, 3, 3) and m.weights.shape == (3, 2, 53)
    assert m.sigma == 0.5 and m.meta["is_deblurring"] and (m.mu0, m.step, m.precision) == (-260.0, 10.0, 0.01)
    assert m.lam.tolist() == pytest.approx([362.0398, 13.5014, 0.9193], rel=1e-4)
    assert torch.equal(m.filters[0, 0, 1], torch.tensor([1.0, -1.0, 0.0], dtype=torch.float64))
    x = checker_scene()
    k = torch.zeros(9, 9, dtype=torch.float64)
    k[4, :] = 1.0 / 9
    y = add_gaussian_noise(Blur(k)(x), 0.5 / 255, seed=0).float()
    out = CSF(model=str(OFFICIAL), source="official model")(y, k.float(), 0.5 / 255)
    assert psnr01(out, x.float()) > psnr01(y, x.float()) + 8.0


def test_podm_csf_deblurs_at_one_percent_noise():
    if not default_csf_path().is_file():
        pytest.skip("podm CSF model not trained yet (scripts/train_csf.py)")
    m = CSFModel.load(default_csf_path())
    assert m.stages == 3 and m.filters.shape[1] == 2 and m.sigma == pytest.approx(2.55)
    x = checker_scene()
    k = torch.zeros(9, 9, dtype=torch.float64)
    k[4, :] = 1.0 / 9
    y = add_gaussian_noise(Blur(k)(x), 0.01, seed=0).float()
    out = CSF()(y, k.float(), 0.01)
    assert psnr01(out, x.float()) > psnr01(y, x.float()) + 5.0
    yv = add_gaussian_noise(Blur(k, "valid")(x), 0.01, seed=0).float()
    assert CSF()(yv, k.float(), 0.01, mode="valid").shape == yv.shape
    stages = []
    adjusted = CSF().with_boundary(boundary="adjust")(yv, k.float(), 0.01, mode="valid",
                                                      on_stage=lambda t, xt: stages.append(xt.shape))
    assert adjusted.shape == yv.shape and stages == [yv.shape] * 3


def test_shipped_csf_5x5_has_the_kruse_architecture():
    path = default_csf_path("csf_5x5_sigma1.npz")
    if not path.is_file():
        pytest.skip("podm CSF 5x5 model not trained yet (scripts/train_csf.py --kind 5x5)")
    m = CSF(model="asset:csf_5x5_sigma1.npz").model
    assert m.stages == 5 and m.filters.shape == (5, 24, 5, 5) and m.weights.shape == (5, 24, 53)
    assert path.stat().st_size < 200_000


def test_csf_bad_input(tmp_path):
    bad = tmp_path / "bad.mat"
    bad.write_bytes(b"MATLAB? no")
    with pytest.raises(InputError):
        CSFModel.from_mat(bad)
    with pytest.raises(InputError):
        CSF(model=str(tmp_path / "absent.npz"))(torch.rand(1, 1, 16, 16), torch.ones(3, 3) / 9, 0.01)
    junk = tmp_path / "junk.npz"
    junk.write_text("junk")
    with pytest.raises(InputError, match="neither an .npz"):
        CSFModel.load(junk)
    with pytest.raises(InputError):
        CSF(stages=0)
    assert "weights/csf" in CSF(model="weights/csf/table3/csf_pw.mat").missing(tmp_path)


@pytest.mark.data
def test_podm_eval_runs_csf_and_labels_its_source(tmp_path, data_dir):
    from conftest import eval_rows

    if not default_csf_path().is_file():
        pytest.skip("podm CSF model not trained yet (scripts/train_csf.py)")
    rows = eval_rows(tmp_path, data_dir, "methods=[csf,csf_official]", "datasets=[levin]", "limit=2")
    assert rows["csf"]["source"] == "recomputed (CSF trained by podm)"
    assert rows["csf_official"]["source"] == "official model"
    assert rows["csf"]["paper_psnr"] == 32.74 and 27 < rows["csf"]["psnr"] < 40
    assert rows["csf"]["psnr"] > rows["csf_official"]["psnr"]  # the official model was trained for sigma 0.5/255
