"""Regression tree fields: the CG solve, its implicit gradient, the depth-0 (Wiener) limit, trees, files."""

from __future__ import annotations

import math

import pytest
import torch

from podm_cli.errors import InputError
from podm_cli.methods.fourier import blur_otf
from podm_cli.models.rtf import (
    FEATURE_NAMES,
    RegressionTree,
    RTFModel,
    RTFStage,
    filter_adjoint,
    filter_responses,
    gcrf_map,
    n_params,
    potentials,
    rtf_features,
    rtf_filters,
    stationary_map,
)
from podm_cli.optim.cg import conjugate_gradient, spd_solve

D = torch.float64


def _problem(n=2, h=9, w=8, seed=0):
    g = torch.Generator().manual_seed(seed)
    y = torch.rand(n, 1, h, w, generator=g, dtype=D)
    k = torch.rand(n, 1, 3, 3, generator=g, dtype=D)
    k = k / k.sum((-1, -2), keepdim=True)
    filt = rtf_filters()
    j = filt.shape[0]
    a = torch.exp(torch.randn(n, 1, h, w, generator=g, dtype=D))
    m = torch.rand(n, 1, h, w, generator=g, dtype=D)
    b = torch.exp(torch.randn(n, j, h, w, generator=g, dtype=D))
    gg = torch.randn(n, j, h, w, generator=g, dtype=D) * 0.1
    lam = torch.tensor([30.0, 7.0], dtype=D)[:n]
    return y, k, filt, lam, a, m, b, gg


def _dense_system(y, k, filt, lam, a, m, b, g, i):
    """The CRF's system matrix and right-hand side for item ``i``, built column by column from the operators."""
    h, w = y.shape[-2:]
    otf = blur_otf(k[i : i + 1], (h, w), D, None)
    eye = torch.eye(h * w, dtype=D).reshape(h * w, 1, h, w)
    blur = torch.fft.irfft2(torch.fft.rfft2(eye) * otf, s=(h, w)).reshape(h * w, h * w).T  # columns = K e_i
    fr = filter_responses(eye, filt).reshape(h * w, -1, h * w)  # (cols, J, rows)
    hmat = lam[i] * blur.T @ blur + torch.diag(a[i].reshape(-1))
    rhs = lam[i] * blur.T @ y[i].reshape(-1) + (a[i] * m[i]).reshape(-1)
    for jj in range(filt.shape[0]):
        fj = fr[:, jj, :].T
        hmat = hmat + fj.T @ torch.diag(b[i, jj].reshape(-1)) @ fj
        rhs = rhs + fj.T @ (b[i, jj] * g[i, jj]).reshape(-1)
    return hmat, rhs


def test_filter_adjoint_is_exact():
    x = torch.rand(2, 1, 11, 13, dtype=D)
    z = torch.rand(2, 8, 11, 13, dtype=D)
    filt = rtf_filters()
    lhs = (filter_responses(x, filt) * z).sum()
    rhs = (x * filter_adjoint(z, filt)).sum()
    assert abs(float(lhs - rhs)) < 1e-10 * float(lhs.abs())


def test_cg_matches_dense_solve():
    y, k, filt, lam, a, m, b, g = _problem()
    x = gcrf_map(y, blur_otf(k, y.shape[-2:], D, None), lam, a, m, b, g, filt, rtol=1e-12, max_iter=2000)
    for i in range(2):
        hmat, rhs = _dense_system(y, k, filt, lam, a, m, b, g, i)
        ref = torch.linalg.solve(hmat, rhs)
        assert torch.allclose(x[i].reshape(-1), ref, rtol=0, atol=1e-9 * float(ref.abs().max()))
        # and the dense matrix is symmetric positive definite (the CRF is a proper Gaussian)
        assert torch.allclose(hmat, hmat.T)
        assert float(torch.linalg.eigvalsh(hmat).min()) > 0


def test_cg_stops_each_item_on_its_own_residual():
    d = torch.stack([torch.linspace(1, 2, 50, dtype=D), torch.linspace(1, 1000, 50, dtype=D)])
    b = torch.ones(2, 50, dtype=D)
    x, info = conjugate_gradient(lambda v: d * v, b, rtol=1e-10, max_iter=200)
    assert info["converged"]
    assert torch.allclose(x, 1 / d, atol=1e-9)
    assert bool((info["rel_residual"] <= 1e-10).all())
    _, capped = conjugate_gradient(lambda v: d * v, b, rtol=1e-14, max_iter=3)
    assert capped["iterations"] == 3 and not capped["converged"]


def test_gradient_through_solve_matches_finite_differences():
    y, k, filt, lam, a, m, b, g = _problem(n=1, h=7, w=6, seed=3)
    otf = blur_otf(k, y.shape[-2:], D, None)
    target = torch.rand_like(y)
    la, lb, ll = a.log().requires_grad_(), b.log().requires_grad_(), lam.log().requires_grad_()
    mm, gg = m.clone().requires_grad_(), g.clone().requires_grad_()

    def loss(la, lb, ll, mm, gg):
        x = gcrf_map(y, otf, ll.exp(), la.exp(), mm, lb.exp(), gg, filt, rtol=1e-13, max_iter=3000)
        return ((x - target) ** 2).sum()

    value = loss(la, lb, ll, mm, gg)
    grads = torch.autograd.grad(value, [la, lb, ll, mm, gg])
    gen = torch.Generator().manual_seed(1)
    for p, gp in zip([la, lb, ll, mm, gg], grads):
        direction = torch.randn(p.shape, generator=gen, dtype=D)
        eps = 1e-5
        with torch.no_grad():
            args_p = [q + eps * direction if q is p else q for q in (la, lb, ll, mm, gg)]
            args_m = [q - eps * direction if q is p else q for q in (la, lb, ll, mm, gg)]
            fd = (loss(*args_p) - loss(*args_m)) / (2 * eps)
        an = (gp * direction).sum()
        assert abs(float(fd - an)) <= 1e-6 * max(1.0, abs(float(fd))), (float(fd), float(an))


def test_spd_solve_gradient_without_parameters_is_the_adjoint_solve():
    d = torch.tensor([[2.0, 4.0, 8.0]], dtype=D)
    b = torch.tensor([[1.0, 1.0, 1.0]], dtype=D, requires_grad=True)
    x = spd_solve(lambda v: d * v, b, rtol=1e-14)
    x.sum().backward()
    assert torch.allclose(b.grad, 1 / d)


@pytest.mark.parametrize("m0", [0.0, 0.4])
def test_depth0_tree_is_the_wiener_deconvolution(m0):
    """One leaf, g = 0: the CG MAP of the stationary CRF equals the closed-form Wiener/Tikhonov filter."""
    y, k, filt, *_ = _problem(n=2, h=32, w=28, seed=5)
    j = filt.shape[0]
    row = torch.zeros(1, n_params(j), dtype=D)
    row[0, 0], row[0, 1] = math.log(0.3), m0
    bj = torch.linspace(2.0, 40.0, j, dtype=D)
    row[0, 3 : 3 + j] = bj.log()
    stage = RTFStage(RegressionTree.stump(), row, torch.tensor(math.log(500.0), dtype=D))
    model = RTFModel([stage], filt, sigma_train=0.01)
    x = model.run(y, k, 0.01, rtol=1e-12, max_iter=3000)
    ref = stationary_map(y, blur_otf(k, y.shape[-2:], D, None), 500.0, 0.3, m0, bj, filt)
    assert float((x - ref).abs().max()) < 1e-8
    # the noise level scales the data weight by (sigma_train / sigma)^2
    x2 = model.run(y, k, 0.02, rtol=1e-12, max_iter=3000)
    ref2 = stationary_map(y, blur_otf(k, y.shape[-2:], D, None), 125.0, 0.3, m0, bj, filt)
    assert float((x2 - ref2).abs().max()) < 1e-8


def test_tree_routes_pixels_by_thresholds():
    feats = torch.zeros(1, len(FEATURE_NAMES), 1, 4, dtype=D)
    feats[0, 0, 0] = torch.tensor([0.1, 0.6, 0.3, 0.9])  # split 1 on x_prev > 0.5
    feats[0, 2, 0] = torch.tensor([0.0, 0.0, 1.0, 1.0])  # left child splits on grad_mag > 0.5
    tree = RegressionTree(torch.tensor([0, 2, 0]), torch.tensor([0.5, 0.5, math.inf], dtype=D))
    assert tree.depth == 2 and tree.leaves == 4
    # pixel 0: left, left -> leaf 0; pixel 2: left, right -> leaf 1; pixels 1, 3: right, (inf) left -> leaf 2
    assert tree.leaf_index(feats).tolist() == [[[0, 2, 1, 2]]]
    assert RegressionTree.stump().leaf_index(feats).tolist() == [[[0, 0, 0, 0]]]


def test_potentials_follow_the_leaf_parameters():
    j = 8
    pix = torch.zeros(1, n_params(j), 1, 1, dtype=D)
    pix[0, 0], pix[0, 1], pix[0, 2] = math.log(2.0), 0.1, 0.5
    pix[0, 3:11] = math.log(3.0)
    pix[0, 11:19], pix[0, 19:27] = 0.2, -1.0
    x_prev = torch.full((1, 1, 1, 1), 0.6, dtype=D)
    resp = torch.full((1, j, 1, 1), 0.25, dtype=D)
    a, m, b, g = potentials(pix, x_prev, resp)
    assert float(a) == pytest.approx(2.0) and float(m) == pytest.approx(0.4)
    assert torch.allclose(b, torch.full_like(b, 3.0)) and torch.allclose(g, torch.full_like(g, -0.05))
    # one shrinker r^3 / (r^2 + tau^2) with weight 2 on top: g = 0.2 - r + 2 r^3 / (r^2 + tau^2)
    pix2 = torch.cat([pix, torch.full((1, j, 1, 1), 2.0, dtype=D)], 1)
    assert pix2.shape[1] == n_params(j, (0.1,))
    _, _, _, g2 = potentials(pix2, x_prev, resp, (0.1,))
    assert torch.allclose(g2, torch.full_like(g2, 0.2 - 0.25 + 2 * 0.25**3 / (0.25**2 + 0.01)))


def test_features_shape_and_names():
    x = torch.rand(2, 1, 16, 12)
    f = rtf_features(x, x, blur_otf(torch.ones(3, 3) / 9, (16, 12), torch.float32, None))
    assert f.shape == (2, len(FEATURE_NAMES), 16, 12)
    assert torch.equal(f[:, 0:1], x)
    assert torch.isfinite(f).all()


def test_model_file_round_trip_and_bad_files(tmp_path):
    filt = rtf_filters()
    j = filt.shape[0]
    tree = RegressionTree(torch.tensor([0, 2, 0]), torch.tensor([0.5, 0.1, math.inf], dtype=D))
    table = torch.randn(4, n_params(j), dtype=D) * 0.1
    model = RTFModel.stationary(lam=1e4, b=20.0)
    model.stages.append(RTFStage(tree, table, torch.tensor(9.0, dtype=D)))
    model.meta["command"] = "test"
    path = model.save(tmp_path / "m.npz")
    back = RTFModel.load(path)
    assert back.depths == [0, 2] and back.meta["command"] == "test" and back.sigma_train == 0.01
    y = torch.rand(1, 1, 20, 20, dtype=D)
    kern = torch.ones(3, 3, dtype=D) / 9
    assert torch.allclose(back.run(y, kern, 0.01, rtol=1e-10), model.run(y, kern, 0.01, rtol=1e-10))
    with pytest.raises(InputError, match="not a podm RTF model"):
        other = tmp_path / "other.npz"
        import numpy as np

        from podm_cli.npzfile import save_npz

        save_npz(other, {"x": 1}, a=np.zeros(2))
        RTFModel.load(other)
    with pytest.raises(InputError, match="no such file"):
        RTFModel.load(tmp_path / "missing.npz")
    with pytest.raises(InputError, match="does not match"):
        RTFStage(tree, table[:3], torch.tensor(0.0))


# ------------------------------------------------------------------------------------------ training
def test_best_split_finds_the_feature_that_separates_the_gradients():
    from podm_cli.models.rtf_train import best_splits, candidate_thresholds

    g = torch.Generator().manual_seed(0)
    feats = torch.rand(1, 3, 40, 40, generator=g, dtype=D)
    sign = torch.where(feats[0, 1] > 0.6, 1.0, -1.5).reshape(-1, 1)  # gradients flip where feature 1 > 0.6
    grad = sign * torch.ones(1, 4, dtype=D) + 0.1 * torch.randn(1600, 4, generator=g, dtype=D)
    leaf = torch.zeros(1, 40, 40, dtype=torch.long)
    thr = candidate_thresholds(feats, bins=20)
    (split,) = best_splits(grad, leaf, feats, thr, leaves=1, min_leaf=10)
    assert split[0] == 1 and abs(split[1] - 0.6) < 0.06
    # a minimum leaf size that no split can meet: no split
    assert best_splits(grad, leaf, feats, thr, leaves=1, min_leaf=900) == [None]


def _smooth_scenes(n, size, seed):
    g = torch.Generator().manual_seed(seed)
    x = torch.rand(n, 1, size // 4, size // 4, generator=g)
    x = torch.nn.functional.interpolate(x, size=(size, size), mode="bicubic", align_corners=False).clamp(0, 1)
    x = (x > 0.5).float() * 0.6 + 0.2 + 0.1 * x  # piecewise-constant regions with some texture
    return x


def test_training_grows_trees_and_beats_the_wiener_stage(tmp_path):
    """A tiny cascade on synthetic scenes: the tree stage must improve on the learned Wiener stage."""
    from podm_cli.models.rtf_train import RTFTrainData, train_rtf
    from podm_cli.physics import Blur, add_gaussian_noise

    def data(seed):
        sharp = _smooth_scenes(4, 40, seed)
        k = torch.zeros(4, 1, 7, 7)
        k[:, :, 3, :] = 1 / 7
        return RTFTrainData(sharp, add_gaussian_noise(Blur(k)(sharp), 0.01, seed=seed).float(), k, 0.01)

    model, hist = train_rtf(data(0), data(1), depths=(0, 2), fit_iters=8, bins=16, min_leaf=200,
                            shrink_taus=(0.02,), log=lambda s: None, checkpoint=tmp_path / "rtf.npz")
    assert [h["stage"] for h in hist] == [1, 2] and model.depths == [0, 2]
    assert hist[1]["leaves_used"] >= 2
    assert hist[1]["train_psnr"] > hist[0]["train_psnr"] + 0.5
    assert hist[1]["val_psnr"] > hist[0]["val_psnr"]
    back = RTFModel.load(tmp_path / "rtf.npz")
    assert back.depths == [0, 2] and back.stages[1].shrink_taus == (0.02,)


# ------------------------------------------------------------------------------------------ the method
def test_rtf_method_bad_input(tmp_path):
    from podm_cli.methods.rtf import RTF

    with pytest.raises(InputError):
        RTF(stages=0)
    with pytest.raises(InputError):
        RTF(rtol=0)
    absent = RTF(model=str(tmp_path / "absent.npz"))
    assert "train_rtf.py" in absent.missing(tmp_path)
    junk = tmp_path / "junk.npz"
    junk.write_text("junk")
    with pytest.raises(InputError):
        RTF(model=str(junk))(torch.rand(1, 1, 16, 16), torch.ones(3, 3) / 9, 0.01)


def test_shipped_rtf_deblurs_and_reports_every_stage():
    from podm_cli.methods.rtf import RTF
    from podm_cli.models.rtf import default_rtf_path
    from podm_cli.physics import Blur, add_gaussian_noise

    if not default_rtf_path().is_file():
        pytest.skip("podm RTF model not trained yet (scripts/train_rtf.py)")
    x = _smooth_scenes(1, 64, 3).double()
    k = torch.zeros(9, 9, dtype=D)
    k[4, :] = 1.0 / 9
    y = add_gaussian_noise(Blur(k)(x), 0.01, seed=0).float()
    method = RTF()
    stages = []
    out = method(y, k.float(), 0.01, on_stage=lambda i, xi: stages.append(xi))
    assert len(stages) == len(method.model.stages) >= 3 and torch.equal(stages[-1], out)

    def psnr(a):
        return float(-10 * torch.log10(((a.double().clamp(0, 1) - x) ** 2).mean()))

    assert psnr(out) > psnr(y) + 5.0
    assert psnr(out) > psnr(stages[0])  # the tree stages improve on the Wiener stage
    rgb = method(y.repeat(1, 3, 1, 1), k.float(), 0.01)  # colour: channel by channel
    assert torch.allclose(rgb[:, 1:2], out, atol=1e-5)
    yv = add_gaussian_noise(Blur(k, "valid")(x), 0.01, seed=0).float()
    assert method(yv, k.float(), 0.01, mode="valid").shape == yv.shape


@pytest.mark.data
def test_podm_eval_runs_rtf_and_labels_its_source(tmp_path, data_dir):
    from conftest import eval_rows
    from podm_cli.models.rtf import default_rtf_path

    if not default_rtf_path().is_file():
        pytest.skip("podm RTF model not trained yet (scripts/train_rtf.py)")
    rows = eval_rows(tmp_path, data_dir, "methods=[rtf]", "datasets=[levin]", "limit=1")
    assert rows["rtf"]["source"] == "recomputed (RTF reimplemented and trained by podm)"
    assert rows["rtf"]["paper_psnr"] == 33.26 and 27 < rows["rtf"]["psnr"] < 40
