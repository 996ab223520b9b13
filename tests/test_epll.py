"""EPLL (podm_cli.methods.epll): per-patch MAP = Wiener filter, circular patch averaging, a deblurring run."""

from __future__ import annotations

import pytest
import torch

from conftest import checker_scene, psnr01
from podm_cli.errors import InputError
from podm_cli.methods.epll import EPLL, circular_fold, circular_unfold, default_gmm_path, patch_map
from podm_cli.physics import Blur, add_gaussian_noise
from podm_cli.priors.gmm import GaussianMixture


def _random_gmm(k=4, patch=3, seed=0):
    g = torch.Generator().manual_seed(seed)
    d = patch * patch - 1
    a = torch.randn(k, d, d, generator=g, dtype=torch.float64)
    scales = torch.logspace(-3, 0, k, dtype=torch.float64)[:, None, None]
    covs = a @ a.transpose(1, 2) / d * scales + 1e-5 * torch.eye(d, dtype=torch.float64)
    w = torch.rand(k, generator=g, dtype=torch.float64) + 0.2
    return GaussianMixture(w / w.sum(), covs, patch)


@pytest.mark.parametrize("noise_var", [1e-4, 1e-2])
def test_patch_map_is_the_wiener_filter_of_the_best_component(noise_var):
    gmm = _random_gmm()
    g = torch.Generator().manual_seed(3)
    v = torch.randn(500, 8, generator=g, dtype=torch.float64) * torch.logspace(-2, 0, 500, dtype=torch.float64)[:, None]
    z, labels = patch_map(v, gmm, noise_var, chunk=77)
    eye = torch.eye(8, dtype=torch.float64)
    mvn = torch.distributions.MultivariateNormal
    logp = torch.stack([mvn(torch.zeros(8, dtype=torch.float64), covariance_matrix=gmm.covs[k] + noise_var * eye)
                        .log_prob(v) + gmm.weights[k].log() for k in range(4)], 1)
    best = logp.argmax(1)
    assert torch.equal(labels, best) and len(set(best.tolist())) > 1
    wiener = gmm.covs @ torch.linalg.inv(gmm.covs + noise_var * eye)  # Sigma (Sigma + s I)^-1
    expected = torch.einsum("nij,nj->ni", wiener[best], v)
    assert torch.allclose(z, expected, atol=1e-10, rtol=1e-8)


def test_circular_fold_is_the_adjoint_of_unfold():
    g = torch.Generator().manual_seed(0)
    x = torch.randn(13, 17, generator=g, dtype=torch.float64)
    p = circular_unfold(x, 8)
    assert p.shape == (13 * 17, 64)
    assert torch.equal(p[2 * 17 + 5].reshape(8, 8)[0, :3], x[2, 5:8])
    assert torch.equal(p[12 * 17 + 16].reshape(8, 8)[1, 1], x[0, 0])  # wraps around
    q = torch.randn(p.shape, generator=g, dtype=torch.float64)
    assert float((p * q).sum()) == pytest.approx(float((x * circular_fold(q, (13, 17), 8)).sum()), rel=1e-12)
    assert torch.equal(circular_fold(torch.ones_like(p), (13, 17), 8), torch.full((13, 17), 64.0, dtype=torch.float64))


def test_epll_deblurs_with_the_shipped_gmm():
    if not default_gmm_path().is_file():
        pytest.skip("GMM artefact not trained yet (scripts/train_gmm.py)")
    x = checker_scene()
    k = torch.zeros(9, 9, dtype=torch.float64)
    k[4, :] = 1.0 / 9
    y = add_gaussian_noise(Blur(k)(x), 0.01, seed=0).float()
    method = EPLL()
    out = method(y, k.float(), 0.01)
    assert out.shape == y.shape and out.dtype == torch.float32
    assert psnr01(out, x.float()) > psnr01(y, x.float()) + 5.0
    yv = add_gaussian_noise(Blur(k, "valid")(x), 0.01, seed=0).float()
    assert EPLL(betas=[1, 8])(yv, k.float(), 0.01, mode="valid").shape == yv.shape
    stages = []
    adjusted = EPLL(betas=[1, 8]).with_boundary(boundary="adjust")(
        yv, k.float(), 0.01, mode="valid", on_stage=lambda t, xt: stages.append(xt.shape))
    assert adjusted.shape == yv.shape and stages == [yv.shape] * 2


def test_epll_bad_input(tmp_path):
    with pytest.raises(InputError):
        EPLL(betas=[])
    with pytest.raises(InputError):
        EPLL(beta_unit="furlongs")
    with pytest.raises(InputError):
        EPLL(gmm=str(tmp_path / "absent.npz"))(torch.rand(1, 1, 16, 16), torch.ones(3, 3) / 9, 0.01)
    assert "train_gmm" in EPLL(gmm=str(tmp_path / "absent.npz")).missing(tmp_path)


@pytest.mark.slow
@pytest.mark.data
def test_podm_eval_runs_epll_and_labels_its_source(tmp_path, data_dir):
    from conftest import eval_rows

    if not default_gmm_path().is_file():
        pytest.skip("GMM artefact not trained yet (scripts/train_gmm.py)")
    row = eval_rows(tmp_path, data_dir, "methods=[epll]", "datasets=[levin]", "limit=1")["epll"]
    assert row["source"] == "recomputed (GMM trained by podm)" and row["paper_psnr"] == 31.65
    assert row["psnr"] > 30.0  # levin im1 x kernel 1, circular, 1 % noise (measured 33.2 in the full run)
