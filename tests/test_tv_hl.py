"""TV (FTVd ADMM) and HL (Krishnan-Fergus half-quadratic splitting) baselines.

Checks that can fail: the ADMM primal residual goes to 0; the HL objective never increases over the beta
continuation (and the HQS energy within each beta); the closed-form w-solvers (alpha 1/2, 2/3) and the
lookup table (other alpha) minimise ``|w|^alpha + beta/2 (w - v)^2`` (against a dense grid search); a
fixed seeded problem is restored to a measured PSNR; batches equal per-item loops; valid mode; configs.
"""

from __future__ import annotations

import math
from pathlib import Path

import pytest
import torch

from podm_cli.errors import InputError
from podm_cli.methods import hl
from podm_cli.methods.hl import HyperLaplacian, WLookupTable, hl_threshold, solve_w
from podm_cli.methods.tv import TV
from podm_cli.metrics import psnr
from podm_cli.physics import Blur, DataTerm, add_gaussian_noise
from podm_cli.physics.differences import diff_otf_sq, forward_diff, forward_diff_adjoint

REPO = Path(__file__).resolve().parents[1]
F64 = torch.float64


# ------------------------------------------------------------------------------------------ fixtures


def shapes_image(n: int = 64) -> torch.Tensor:
    """Deterministic piecewise-constant test image (1, 1, n, n): disc, rectangle, triangle on grey."""
    yy, xx = torch.meshgrid(torch.arange(n, dtype=F64), torch.arange(n, dtype=F64), indexing="ij")
    s = n / 64
    img = torch.full((n, n), 0.2, dtype=F64)
    img = torch.where((xx - 20 * s) ** 2 + (yy - 22 * s) ** 2 < (12 * s) ** 2, 0.8, img)
    img = torch.where((xx > 36 * s) & (xx < 56 * s) & (yy > 10 * s) & (yy < 30 * s), 0.5, img)
    img = torch.where((yy > 40 * s) & (yy < 58 * s) & (xx - yy > -30 * s) & (xx > 8 * s), 0.65, img)
    return img[None, None]


def motion_kernel() -> torch.Tensor:
    """A fixed 9x9 diagonal-ish motion blur."""
    k = torch.zeros(9, 9, dtype=F64)
    for i in range(9):
        k[4 + (i - 4) // 3, i] = 1.0
    k[3:6, 4] += 0.5
    return k / k.sum()


def gaussian_kernel(size: int, std: float) -> torch.Tensor:
    r = torch.arange(size, dtype=F64) - size // 2
    g = torch.exp(-(r[:, None] ** 2 + r[None, :] ** 2) / (2 * std**2))
    return g / g.sum()


@pytest.fixture(scope="module")
def problem():
    x = shapes_image()
    k = motion_kernel()
    y = add_gaussian_noise(Blur(k)(x), 0.01, seed=1234)
    return x, y, k


# ------------------------------------------------------------------------------------------ x-step


def test_x_step_solves_the_normal_equations():
    """TV/HL's x-step, DataTerm.solve_quadratic with weight 1/r and reg_sq = |D|^2, solves
    (D^T D + r K^T K) x = D^T w + r K^T y."""
    g = torch.Generator().manual_seed(1)
    y = torch.rand(1, 1, 16, 18, dtype=F64, generator=g)
    k = gaussian_kernel(5, 1.0)
    wh, wv = torch.rand(2, 1, 1, 16, 18, dtype=F64, generator=g)
    blur, r = Blur(k), 7.0
    extra = torch.fft.rfft2(forward_diff_adjoint(wh, wv)) / r
    x = DataTerm.build(y, k).solve_quadratic(extra, 1 / r, diff_otf_sq((16, 18)))
    dh, dv = forward_diff(x)
    lhs = forward_diff_adjoint(dh, dv) + r * blur.A_adjoint(blur(x))
    rhs = forward_diff_adjoint(wh, wv) + r * blur.A_adjoint(y)
    assert torch.allclose(lhs, rhs, atol=1e-10)


# ------------------------------------------------------------------------------------------ w-solvers


def grid_minimiser(v: torch.Tensor, alpha: float, beta: float, n: int = 4001):
    """Dense grid search of |w|^alpha + beta/2 (w - v)^2 over w in [min(0, v), max(0, v)]."""
    s = torch.linspace(0.0, 1.0, n, dtype=F64)
    w = v[:, None] * s[None, :]  # the minimiser lies between 0 and v
    cost = w.abs() ** alpha + 0.5 * beta * (w - v[:, None]) ** 2
    best = cost.argmin(dim=1)
    return w[torch.arange(v.numel()), best], cost.min(dim=1).values, v.abs() / (n - 1)


def w_cost(w, v, alpha, beta):
    return w.abs() ** alpha + 0.5 * beta * (w - v) ** 2


@pytest.mark.parametrize("alpha", [0.5, 2 / 3, 0.8, 0.3])
@pytest.mark.parametrize("beta", [1.0, 8.0, 181.0, 3000.0])
def test_w_solver_matches_grid_search(alpha, beta):
    tau, _ = hl_threshold(alpha, beta)
    g = torch.Generator().manual_seed(int(beta) + int(100 * alpha))
    v = torch.cat([torch.linspace(-4 * tau, 4 * tau, 401, dtype=F64), torch.randn(200, dtype=F64, generator=g)])
    w = solve_w(v, alpha, beta)
    w_grid, c_grid, spacing = grid_minimiser(v, alpha, beta)
    c = w_cost(w, v, alpha, beta)
    # never worse than the grid's best (up to float rounding), and never much better than the grid's
    # resolution allows (the grid contains a point within `spacing` of any w)
    assert (c <= c_grid + 1e-12 * (1 + c_grid)).all()
    away = (v.abs() - tau).abs() > 1e-6 * (1 + tau)  # exactly at tau both 0 and w_tau are minimisers
    assert ((w - w_grid).abs()[away] <= 1.01 * spacing[away] + 1e-12).all()
    assert torch.equal(w[v.abs() < tau * (1 - 1e-9)], torch.zeros_like(w[v.abs() < tau * (1 - 1e-9)]))
    assert (w * v >= 0).all() and (w.abs() <= v.abs()).all()


@pytest.mark.parametrize("alpha", [0.5, 2 / 3, 0.8])
def test_threshold_is_the_jump(alpha):
    for beta in (1.0, 22.6, 512.0):
        tau, w_tau = hl_threshold(alpha, beta)
        v = torch.tensor([tau], dtype=F64)
        # at the threshold 0 and w_tau cost the same and w_tau is stationary
        assert math.isclose(w_cost(torch.tensor(w_tau, dtype=F64), v, alpha, beta).item(), 0.5 * beta * tau**2, rel_tol=1e-12)
        assert abs(alpha * w_tau ** (alpha - 1) + beta * (w_tau - tau)) < 1e-9 * (1 + beta)
        above = solve_w(torch.tensor([tau * (1 + 1e-7)], dtype=F64), alpha, beta)
        assert math.isclose(above.item(), w_tau, rel_tol=1e-3)


def test_lookup_table_accuracy_and_float32():
    lut = WLookupTable(0.8, 8.0)
    tau, w_tau = lut.tau, lut.w_tau
    t = tau + torch.linspace(0, 3.0, 5001, dtype=F64)[1:]  # includes |v| > tau + span (exact branch)
    exact = hl._bisect_branch(t, 0.8, 8.0, w_tau)
    assert (lut(t) - exact).abs().max() < 1e-7
    assert torch.allclose(lut(-t), -lut(t))
    # the analytic solvers in float32 agree with float64 away from the threshold
    v = torch.linspace(-2, 2, 2001, dtype=F64)
    for alpha in (0.5, 2 / 3, 0.8):
        w64, w32 = solve_w(v, alpha, 8.0), solve_w(v.float(), alpha, 8.0)
        away = (v.abs() - hl_threshold(alpha, 8.0)[0]).abs() > 1e-3
        assert w32.dtype == torch.float32
        assert (w32.double() - w64).abs()[away].max() < 1e-5


def test_soft_threshold_for_alpha_one():
    v = torch.tensor([-2.0, -0.05, 0.0, 0.3], dtype=F64)
    assert torch.allclose(solve_w(v, 1.0, 10.0), torch.tensor([-1.9, 0.0, 0.0, 0.2], dtype=F64))
    with pytest.raises(InputError):
        solve_w(v, 1.5, 10.0)


# ------------------------------------------------------------------------------------------ TV


def test_tv_primal_residual_goes_to_zero(problem):
    _, y, k = problem
    method = TV(lam=1000.0, tol=0.0, max_iter=120)
    method(y[..., :32, :32], k, 0.01)
    info = method.last_info
    res = info.residual[:, 0]
    assert info.iterations.item() == 120
    assert res[-1] < 1e-2 * res[0]
    assert res[-50:].max() < res[:50].min()
    assert info.rel_change[-1, 0] < 1e-4


def test_tv_stops_on_relative_change(problem):
    _, y, k = problem
    method = TV(lam=1000.0)  # tol 1e-3
    method(y, k, 0.01)
    it = int(method.last_info.iterations.item())
    assert 2 <= it < 500
    changes = method.last_info.rel_change[:, 0]
    assert changes[it - 1] < 1e-3 and (changes[: it - 1] >= 1e-3).all()


# Measured with this file's problem (shapes 64x64, motion_kernel, sigma 0.01 seed 1234, float64).
PSNR = {"input": 22.601, "tv": 36.295, "hl": 36.902}


def test_tv_known_psnr(problem):
    x, y, k = problem
    assert psnr(y, x).item() == pytest.approx(PSNR["input"], abs=0.01)
    est = TV(lam=1000.0)(y, k, 0.01)
    assert psnr(est, x).item() == pytest.approx(PSNR["tv"], abs=0.1)


# ------------------------------------------------------------------------------------------ HL


@pytest.mark.parametrize("alpha", [0.5, 2 / 3, 0.8])
def test_hl_objective_never_increases(problem, alpha):
    _, y, k = problem
    method = HyperLaplacian(lam=2000.0, alpha=alpha, inner_iterations=3)
    method(y, k, 0.01)
    info = method.last_info
    assert len(info.betas) == 6 and info.objective.shape == (7, 1)
    obj = info.objective[:, 0]
    assert (obj[1:] <= obj[:-1] * (1 + 1e-9)).all(), obj
    # within one beta, each exact block minimisation can only lower E_beta(x, w)
    energy = info.energy[:, 0].reshape(len(info.betas), -1)
    assert (energy[:, 1:] <= energy[:, :-1] * (1 + 1e-9)).all(), energy


def test_hl_known_psnr(problem):
    x, y, k = problem
    est = HyperLaplacian(lam=2000.0)(y, k, 0.01)
    assert psnr(est, x).item() == pytest.approx(PSNR["hl"], abs=0.1)


def test_hl_beta_schedule():
    assert len(hl.beta_schedule()) == 6
    assert hl.beta_schedule(1.0, 2.0, 8.0) == [1.0, 2.0, 4.0]
    with pytest.raises(InputError):
        hl.beta_schedule(1.0, 0.5, 8.0)


# ------------------------------------------------------------------------------------------ both


def make(name, **kw):
    return TV(lam=800.0, **kw) if name == "tv" else HyperLaplacian(lam=1500.0, alpha=0.8, **kw)


@pytest.mark.parametrize("name", ["tv", "hl"])
def test_batch_equals_per_item_loop(name):
    g = torch.Generator().manual_seed(3)
    x = torch.cat([shapes_image(40), torch.rand(2, 1, 40, 40, dtype=F64, generator=g)])
    x = torch.cat([x, x.flip(-1)], dim=1)  # (3, 2, 40, 40): colour-like
    kernels = torch.stack([motion_kernel(), gaussian_kernel(9, 1.2), motion_kernel().T])[:, None]
    sigma = torch.tensor([0.01, 0.02, 0.005], dtype=F64)
    y = add_gaussian_noise(Blur(kernels)(x), sigma, seed=[1, 2, 3])
    method = make(name, sigma_ref=0.01)  # per-item weights too
    batch = method(y, kernels, sigma)
    loop = torch.cat([method(y[i : i + 1], kernels[i : i + 1], sigma[i]) for i in range(3)])
    assert batch.shape == y.shape and batch.dtype == F64
    assert torch.allclose(batch, loop, atol=1e-10)
    # a shared (kh, kw) kernel equals the same kernel given per item
    same = method(y, motion_kernel(), 0.01)
    assert torch.allclose(same, make(name)(y, motion_kernel()[None, None].expand(3, 1, 9, 9), 0.01), atol=1e-10)


@pytest.mark.parametrize("name", ["tv", "hl"])
def test_float32_close_to_float64(name, problem):
    x, y, k = problem
    e64 = make(name)(y, k, 0.01)
    e32 = make(name)(y.float(), k.float(), 0.01)
    assert e32.dtype == torch.float32
    assert abs(psnr(e32.double(), x).item() - psnr(e64, x).item()) < 0.02


@pytest.mark.parametrize("name", ["tv", "hl"])
def test_valid_mode_returns_y_shape(name):
    x = shapes_image(48)
    k = motion_kernel()
    y = add_gaussian_noise(Blur(k, mode="valid")(x), 0.01, seed=5)
    for boundary in ("liu", "edgetaper", "adjust"):
        est = make(name).with_boundary(mode="valid", boundary=boundary)(y, k, 0.01)
        assert est.shape == y.shape and torch.isfinite(est).all()


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
@pytest.mark.parametrize("name", ["tv", "hl"])
def test_cuda_matches_cpu(name, problem):
    _, y, k = problem
    cpu = make(name)(y, k, 0.01)
    gpu = make(name)(y.cuda(), k.cuda(), 0.01)
    assert gpu.is_cuda and torch.allclose(gpu.cpu(), cpu, atol=1e-8)


def test_noise_adaptive_weights_and_bad_parameters():
    assert TV(lam=1000.0).weight(torch.tensor([0.02])) == 1000.0
    assert TV(lam=1000.0, sigma_ref=0.01, sigma_power=2).weight(torch.tensor([0.02])).tolist() == [250.0]
    assert TV(lam=1000.0, sigma_ref=0.01).weight(torch.tensor([0.04])).tolist() == [125.0]  # power 1.5
    assert HyperLaplacian(lam=2000.0, sigma_ref=0.01).weight(torch.tensor([0.0025])).tolist() == [16000.0]
    with pytest.raises(InputError):  # sigma 0 is floored (tests/test_noise_sweep.py); a negative one is an error
        TV(sigma_ref=0.01)(torch.rand(1, 1, 16, 16), torch.ones(3, 3) / 9, -0.01)
    for bad in ({"lam": -1.0}, {"max_iter": 0}, {"gamma": 2.0}):
        with pytest.raises(InputError):
            TV(**bad)(torch.rand(1, 1, 16, 16), torch.ones(3, 3) / 9, 0.01)
    for bad in ({"lam": 0.0}, {"alpha": 1.2}, {"inner_iterations": 0}, {"beta_rate": 1.0}):
        with pytest.raises(InputError):
            HyperLaplacian(**bad)


@pytest.mark.parametrize("name,cls", [("tv", TV), ("hl", HyperLaplacian)])
def test_config_instantiates_with_every_parameter(name, cls):
    import inspect

    from omegaconf import OmegaConf

    from podm_cli.apps.methods import build_method

    cfg = OmegaConf.load(REPO / "configs" / "method" / f"{name}.yaml")
    params = set(inspect.signature(cls.__init__).parameters) - {"self"}
    assert params <= set(cfg.keys()) - {"_target_"}, params - set(cfg.keys())
    method = build_method(name)
    assert isinstance(method, cls) and method.name == name and method.source == "recomputed"
