"""The GMM patch prior of EPLL (podm_cli.priors.gmm): EM monotonicity, persistence, the shipped artefact."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from conftest import SHARED_DATA, load_script
from podm_cli.errors import InputError
from podm_cli.methods.epll import default_gmm_path
from podm_cli.priors.gmm import (
    GaussianMixture,
    dc_free_basis,
    em_step,
    fit_gmm,
    kmeanspp_init,
    patches_to_dcfree,
    sample_patches,
)


def _synthetic(n=4000, d=8, k=3, seed=0):
    g = torch.Generator().manual_seed(seed)
    a = torch.randn(k, d, d, generator=g, dtype=torch.float64)
    covs = a @ a.transpose(1, 2) * torch.tensor([1.0, 0.05, 0.002], dtype=torch.float64)[:, None, None]
    covs = covs + 1e-4 * torch.eye(d, dtype=torch.float64)
    labels = torch.multinomial(torch.tensor([0.5, 0.3, 0.2]), n, replacement=True, generator=g)
    chol = torch.linalg.cholesky(covs)
    z = (chol[labels] @ torch.randn(n, d, 1, generator=g, dtype=torch.float64))[..., 0]
    return z


def test_em_increases_the_likelihood_every_iteration():
    z = _synthetic()
    gmm, hist = fit_gmm(z, components=5, iterations=15, psi=1e-4, seed=1, patch=3)
    obj = np.array([h.objective for h in hist])
    ll = np.array([h.loglik for h in hist])
    assert np.all(np.diff(obj) >= -1e-9), np.diff(obj)  # MAP-EM: the penalised objective never decreases
    assert np.all(np.diff(ll) >= -1e-6), np.diff(ll)  # and with a tiny psi the plain likelihood neither
    assert obj[-1] - obj[0] > 0.5  # it really moved
    single = GaussianMixture.single_gaussian(z, patch=3)
    assert float(gmm.log_prob(z).mean()) > float(single.log_prob(z).mean()) + 1.0


def test_em_step_matches_a_direct_implementation():
    z = _synthetic(n=600)
    gmm = kmeanspp_init(z, 4, psi=1e-3, seed=0, patch=3)
    new, ll = em_step(z, gmm, psi=1e-3, chunk=97)  # chunking must not matter
    mvn = torch.distributions.MultivariateNormal
    logp = torch.stack([mvn(torch.zeros(8, dtype=torch.float64), covariance_matrix=gmm.covs[k]).log_prob(z)
                        + gmm.weights[k].log() for k in range(4)], 1)
    assert ll == pytest.approx(float(torch.logsumexp(logp, 1).mean()), abs=1e-9)
    r = torch.softmax(logp, 1)
    nk = r.sum(0)
    covs = (torch.einsum("nk,ni,nj->kij", r, z, z) + 1e-3 * torch.eye(8, dtype=torch.float64)) / nk[:, None, None]
    assert torch.allclose(new.covs, covs, atol=1e-10) and torch.allclose(new.weights, nk / z.shape[0])


def test_save_load_roundtrip_and_bad_files(tmp_path):
    z = _synthetic(n=500)
    gmm = kmeanspp_init(z, 3, psi=1e-3, patch=3)
    path = gmm.save(tmp_path / "g.npz")
    back = GaussianMixture.load(path)
    assert torch.allclose(back.covs, gmm.covs, rtol=1e-6, atol=1e-9) and back.patch == 3
    assert torch.allclose(back.log_prob(z), gmm.log_prob(z), atol=1e-3)
    (tmp_path / "bad.npz").write_bytes(b"not a zip")
    with pytest.raises(InputError):
        GaussianMixture.load(tmp_path / "bad.npz")
    with pytest.raises(InputError):
        GaussianMixture.load(tmp_path / "absent.npz")


def test_dc_free_coordinates_drop_the_mean():
    b = dc_free_basis(8)
    x = torch.rand(10, 64, dtype=torch.float64)
    z = patches_to_dcfree(x, b)
    assert torch.allclose(z @ b.T, x - x.mean(1, keepdim=True), atol=1e-12)


def test_shipped_gmm_is_small_and_well_formed():
    path = default_gmm_path()
    if not path.is_file():
        pytest.skip("GMM artefact not trained yet (scripts/train_gmm.py)")
    assert path.stat().st_size <= 5 * 1024 * 1024
    gmm = GaussianMixture.load(path)
    assert gmm.components == 200 and gmm.patch == 8 and gmm.covs.shape == (200, 63, 63)
    assert float(gmm.weights.sum()) == pytest.approx(1.0) and bool((torch.linalg.eigvalsh(gmm.covs) > 0).all())


@pytest.mark.data
def test_shipped_gmm_beats_a_single_gaussian_on_held_out_patches():
    if not (SHARED_DATA / "train" / "BSDS500").is_dir() or not default_gmm_path().is_file():
        pytest.skip("BSDS500 train/test images or the GMM artefact absent")
    train_files, held_files = load_script("train_gmm").split_images(SHARED_DATA)  # the split the shipped GMM was trained with
    held = held_files[:20]  # images the GMM never saw
    train = train_files[::9]
    b = dc_free_basis(8, torch.float32)
    zh = patches_to_dcfree(sample_patches(held, 20_000, seed=5), b)
    zt = patches_to_dcfree(sample_patches(train, 40_000, seed=6), b)
    single = GaussianMixture.single_gaussian(zt).log_prob(zh.double()).mean()
    gmm = GaussianMixture.load(default_gmm_path()).to(dtype=torch.float32).log_prob(zh).double().mean()
    assert float(gmm) > float(single) + 30.0, (float(gmm), float(single))  # nats per 63-d patch
