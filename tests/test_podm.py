"""PODM solver and method (DESIGN §2): Lipschitz step, F/G steps, the error check, acceptance per image,
descent, convergence, and the FISTA relation -- on small problems with a stand-in denoiser (a Gaussian
smoother whose width grows with sigma), so no weights are needed except in the ``data`` test.

Measured on the 32x32 two-image problem below (10 stages 48 -> 4, authors' constants):
* ``descent_check=True``: ``Psi`` never increases (accepted or fallback steps); converged (rel. change
  < 1e-4) after 45 / 38 iterations; only the first network step passes both checks.
* ``descent_check=False, post_schedule="prox_gradient"``: 5 of 10 network steps accepted, of which 4 raise
  ``Psi`` (the error check alone does not force descent); converged after 67 / 78 iterations.
* ``descent_check=False, post_schedule="last"``: no convergence within 2000 iterations (a cycle of
  accepted Psi-raising steps and PG fallbacks); hence ``prox_gradient`` is the default tail.
* FISTA vs PODM: PODM's first step (network + F + G) lands at ``Psi`` 0.01619 where FISTA needs ~23
  iterations; FISTA's final ``Psi`` (0.015536 after 248 iterations) is 2.1% below PODM's (0.015866 after 45):
  the PG tail meets the 1e-4 rule earlier, at a higher objective. PODM never reaches FISTA's final Psi.
"""

from __future__ import annotations

import itertools
import math
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F

from podm_cli.methods.podm import PODM
from podm_cli.optim import Deconvolution, denoiser_levels, fista_solve, podm_solve, podm_stage
from podm_cli.physics import DataTerm
from podm_cli.priors import LpDCT, NoPrior, dct_matrix, gst

D64 = torch.float64

from conftest import SHARED_DATA as DATA  # noqa: E402


def smooth_image(n: int, seed: int) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    a = torch.rand(1, 1, n // 4, n // 4, generator=g, dtype=D64)
    return F.interpolate(a, size=(n, n), mode="bicubic", align_corners=False).clamp(0, 1)


def gauss_denoiser(x: torch.Tensor, sigma: float) -> torch.Tensor:
    """Stand-in denoiser: circular Gaussian smoothing, width sigma*255/10 px (at least 0.3)."""
    w = max(sigma * 255 / 10, 0.3)
    r = torch.arange(-3, 4, dtype=x.dtype)
    g = torch.exp(-(r**2) / (2 * w * w))
    g = g / g.sum()
    c = x.shape[1]
    xp = F.pad(x, (3, 3, 3, 3), mode="circular")
    xp = F.conv2d(xp, g.view(1, 1, 1, 7).expand(c, 1, 1, 7).contiguous(), groups=c)
    return F.conv2d(xp, g.view(1, 1, 7, 1).expand(c, 1, 7, 1).contiguous(), groups=c)


def motion_kernel() -> torch.Tensor:
    k = torch.zeros(7, 7, dtype=D64)
    k[3, :] = 1
    k[2, 4] = 1
    return k / k.sum()


@pytest.fixture(scope="module")
def small_problem():
    x = torch.cat([smooth_image(32, 0), smooth_image(32, 1)])
    k = motion_kernel()
    g = torch.Generator().manual_seed(5)
    y = Deconvolution.circular(x, k).A(x) + 0.01 * torch.randn(x.shape, generator=g, dtype=D64)
    return Deconvolution.circular(y, k, LpDCT()), x


SIGMAS = denoiser_levels(10, 48 / 255, 4 / 255)


# ------------------------------------------------------------------------------------------ basics
def test_lipschitz_of_grad_f_is_one_for_normalised_kernels():
    g = torch.Generator().manual_seed(0)
    for _ in range(3):
        k = torch.rand(9, 9, generator=g, dtype=D64) ** 4
        k = k / k.sum()
        y = torch.rand(1, 1, 24, 24, generator=g, dtype=D64)
        prob = Deconvolution.circular(y, k)
        assert float(prob.lipschitz()) == pytest.approx(1.0, abs=1e-12)  # attained at DC
        # power iteration on K^T K: largest eigenvalue <= 1
        v = torch.randn(1, 1, 24, 24, generator=g, dtype=D64)
        for _ in range(30):
            v = prob.data.blur_adjoint(prob.A(v))
            v = v / v.norm()
        assert float((v * prob.data.blur_adjoint(prob.A(v))).sum()) <= 1.0 + 1e-12
        # descent lemma with step 1/L = 1: f(x + d) <= f(x) + <grad f(x), d> + 1/2 ||d||^2
        x, d = torch.rand_like(y), torch.randn_like(y)
        lhs = prob.f(x + d)
        rhs = prob.f(x) + (prob.grad_f(x) * d).sum() + 0.5 * d.pow(2).sum()
        assert bool(lhs <= rhs + 1e-12)


def test_grad_f_matches_autograd_and_fidelity_step_is_argmin(small_problem):
    prob, _ = small_problem
    x = torch.rand_like(prob.y).requires_grad_()
    prob.f(x).sum().backward()
    assert torch.allclose(prob.grad_f(x.detach()), x.grad, atol=1e-12)
    x_a = torch.rand_like(prob.y)
    for mu in (1e-3, torch.tensor([1e-2, 0.5], dtype=D64)):
        x_f = prob.data.prox(x_a, mu)
        m = torch.as_tensor(mu, dtype=D64).reshape(-1, 1, 1, 1)
        stationarity = prob.grad_f(x_f) + m * (x_f - x_a)
        assert stationarity.abs().max() < 1e-10


def test_error_check_matches_direct_dense_computation():
    """e, x_G and the decision from dense matrices (K, DCT as Kronecker products) on an 8x8 problem."""
    g = torch.Generator().manual_seed(3)
    n = 8
    k = torch.rand(3, 3, generator=g, dtype=D64)
    k = k / k.sum()
    y = torch.rand(1, 1, n, n, generator=g, dtype=D64)
    prior = LpDCT(p=0.8, lam=3e-3, gst_iterations=2)
    prob = Deconvolution.circular(y, k, prior)
    eye = torch.eye(n * n, dtype=D64).reshape(n * n, 1, n, n)
    K = prob.A(eye).reshape(n * n, n * n).T  # column j = A(e_j)
    D = dct_matrix(n)
    W = torch.kron(D, D)  # vec(D X D^T) = (D kron D) vec(X), row-major vec
    yv = y.reshape(-1)
    grad = lambda v: K.T @ (K @ v - yv)
    L, alpha, mu, C = 1.0, 1e-3, 1e-3, 0.08
    x_prev = torch.rand(n * n, generator=g, dtype=D64)
    x_a = torch.rand(n * n, generator=g, dtype=D64)
    x_f = torch.linalg.solve(K.T @ K + mu * torch.eye(n * n, dtype=D64), K.T @ yv + mu * x_a)
    z = x_f - (grad(x_f) + alpha * (x_f - x_prev)) / L
    x_g = W.T @ gst(W @ z, prior.lam / L, prior.p, prior.gst_iterations)
    e = grad(x_g) - grad(x_f) + (alpha - L) * (x_g - x_f)
    out = podm_stage(prob, x_prev.reshape(1, 1, n, n), x_a.reshape(1, 1, n, n), mu, L=L, alpha=alpha, C=C)
    assert torch.allclose(out.x_f.reshape(-1), x_f, atol=1e-10)
    assert torch.allclose(out.x_g.reshape(-1), x_g, atol=1e-10)
    assert torch.allclose(out.e.reshape(-1), e, atol=1e-10)
    assert float(out.error) == pytest.approx(float(e.norm()), rel=1e-9)
    assert float(out.bound) == pytest.approx(C * float((x_g - x_prev).norm()), rel=1e-9)
    assert bool(out.accepted) == bool(e.norm() <= C * (x_g - x_prev).norm())


def test_error_is_the_gradient_of_the_regularised_objective_when_g_is_zero(small_problem):
    """With g = 0, e = grad f(x_G) + alpha (x_G - x^{l-1}) exactly (it lies in the subdifferential)."""
    prob0, _ = small_problem
    prob = Deconvolution.circular(prob0.y, motion_kernel(), NoPrior())
    x_prev = torch.rand_like(prob.y)
    x_a = gauss_denoiser(x_prev, 0.1)
    alpha = 1e-3
    out = podm_stage(prob, x_prev, x_a, 1e-3, L=1.0, alpha=alpha)
    assert torch.allclose(out.e, prob.grad_f(out.x_g) + alpha * (out.x_g - x_prev), atol=1e-12)


# ------------------------------------------------------------------------------------------ solver
def test_descent_check_makes_psi_monotone_and_podm_converges(small_problem):
    prob, x = small_problem
    res = podm_solve(prob, gauss_denoiser, SIGMAS, max_iterations=300, truth=x, descent_check=True)
    psi = res.trace.stack("psi")
    acc = res.trace.stack("accepted")
    rel = res.trace.stack("rel_change")
    active = torch.stack([r.active for r in res.trace.records])
    steps = psi[1:] - psi[:-1]
    valid = active[1:]
    # accepted steps never increase Psi (by construction), and neither do the (exact-prox) fallbacks
    assert torch.all(steps[(acc[1:] == 1) & valid] <= 0)
    assert torch.all(steps[valid] <= 1e-12 * psi[:-1][valid])
    assert bool(res.converged.all())
    assert torch.all(res.iterations < 300)
    last = res.iterations - 1
    final_rel = rel[res.iterations, torch.arange(2)]
    assert torch.all(final_rel < 1e-4)
    assert torch.all(last >= 0)
    # step lengths are summable in practice: the tail of ||x^l - x^{l-1}|| decays
    assert torch.all(torch.isfinite(psi[res.iterations, torch.arange(2)]))
    assert torch.all(acc[1] == 1)  # the first network step is accepted on both images


def test_without_descent_check_accepted_steps_may_raise_psi(small_problem):
    """Documented behaviour: the error check alone does not force descent (measured: 4 of 5 accepted
    network steps raise Psi here); the proximal-gradient tail still converges."""
    prob, x = small_problem
    res = podm_solve(prob, gauss_denoiser, SIGMAS, max_iterations=300, truth=x, post_schedule="prox_gradient")
    psi, acc = res.trace.stack("psi"), res.trace.stack("accepted")
    raised = ((psi[1:] - psi[:-1]) > 0) & (acc[1:] == 1)
    assert int(raised.sum()) > 0
    assert bool(res.converged.all())
    # after the schedule no network step is tried (accepted = NaN), and the denoiser is not called
    assert torch.isnan(acc[len(SIGMAS) + 1 :]).all()


def test_post_schedule_modes_and_denoiser_calls(small_problem):
    prob, _ = small_problem
    calls = []

    def counting(x, s):
        calls.append(s)
        return gauss_denoiser(x, s)

    podm_solve(prob, counting, SIGMAS[:3], max_iterations=8, tol=0.0, post_schedule="prox_gradient")
    assert calls == SIGMAS[:3]
    calls.clear()
    res = podm_solve(prob, counting, SIGMAS[:3], max_iterations=8, tol=0.0, post_schedule="last")
    assert calls == SIGMAS[:3] + [SIGMAS[2]] * 5
    assert len(res.trace) == 9 and torch.all(res.iterations == 8)
    assert [r.sigma for r in res.trace.records[1:]] == calls


def test_accept_or_fallback_is_decided_per_image(small_problem):
    """Batch item i gets exactly the iterates it gets alone (decisions differ between the items)."""
    prob, _ = small_problem
    kw = {"max_iterations": 12, "tol": 0.0}
    # image 0: the stand-in denoiser; image 1: an "adversarial" denoiser output -> fallbacks
    wave = 0.3 * torch.sin(torch.arange(32, dtype=D64) * 1.7)
    per_image = [gauss_denoiser, lambda v, s: v + wave]

    def mixed(v, s):
        return torch.cat([per_image[i](v[i : i + 1], s) for i in range(2)])

    batch = podm_solve(prob, mixed, SIGMAS, **kw)
    acc = batch.trace.stack("accepted")[1:]
    assert not torch.equal(acc[:, 0], acc[:, 1])
    for i in range(2):
        single = Deconvolution.circular(prob.y[i : i + 1], motion_kernel(), LpDCT())
        alone = podm_solve(single, per_image[i], SIGMAS, **kw)
        assert torch.allclose(alone.x[0], batch.x[i], atol=1e-12)
        assert torch.equal(alone.trace.stack("accepted")[1:, 0].nan_to_num(-1), acc[:, i].nan_to_num(-1))


def test_fista_vs_podm_relation(small_problem):
    """PODM's network step reaches in one iteration a Psi that FISTA needs > 10 iterations for; FISTA's
    final Psi is within a few percent below PODM's (see the module docstring for the measured numbers)."""
    prob, _ = small_problem
    podm = podm_solve(prob, gauss_denoiser, SIGMAS, max_iterations=300, descent_check=True)
    fista = fista_solve(prob, max_iterations=300)
    p_psi, f_psi = podm.trace.stack("psi"), fista.trace.stack("psi")
    assert torch.all(p_psi[1] < f_psi[10])
    # first FISTA iteration reaching PODM's first-step objective
    reach = [int(torch.nonzero(f_psi[:, i] <= p_psi[1, i])[0]) for i in range(2)]
    assert min(reach) > 10
    p_final = p_psi[podm.iterations, torch.arange(2)]
    f_final = f_psi[fista.iterations, torch.arange(2)]
    assert torch.all(f_final <= p_final) and torch.all(p_final <= 1.05 * f_final)


def test_mfista_is_monotone(small_problem):
    prob, _ = small_problem
    res = fista_solve(prob, max_iterations=60, monotone=True)
    psi = res.trace.stack("psi")
    assert torch.all(psi[1:] <= psi[:-1])
    assert res.trace.method == "mfista"


# ------------------------------------------------------------------------------------------ method
def test_podm_method_interface_with_stand_in_denoiser():
    x = torch.cat([smooth_image(32, 2), smooth_image(32, 3)]).float()
    k = motion_kernel()
    y = Deconvolution.circular(x.double(), k).A(x.double()).float()
    method = PODM(denoiser=gauss_denoiser, stages=5, max_iterations=20)
    out = method(y, k.float(), 0.01)
    assert out.shape == y.shape and out.dtype == torch.float32
    assert float(out.min()) >= 0 and float(out.max()) <= 1
    info = method.last_info
    assert info is not None and info.trace.stack("psi").dtype == D64
    assert info.x.dtype == D64  # solver arithmetic in float64 by default
    # valid mode: extended, solved circularly, cropped back
    from podm_cli.physics import Blur

    yv = Blur(k.float(), "valid")(x)
    outv = method(yv, k.float(), 0.01, mode="valid")
    assert outv.shape == yv.shape
    # ircnn mu rule: mu grows as the denoiser level falls
    m = PODM(denoiser=gauss_denoiser, stages=4, rho_rule="ircnn").rho_schedule(torch.tensor([0.01]))
    assert all(b > a for a, b in itertools.pairwise(m))
    assert PODM.name == "podm" and "IRCNN" in PODM.source


def test_podm_reports_missing_weights(tmp_path):
    msg = PODM().missing(tmp_path)
    assert msg is not None and "podm data fetch weights" in msg
    assert PODM(denoiser=gauss_denoiser).missing(tmp_path) is None


def test_podm_loads_weights_from_the_root_that_missing_checked(monkeypatch, tmp_path):
    """The bank is loaded from the root ``missing`` approved (``podm eval`` checks ``data.root``), not from
    ``$PODM_DATA``; a ``data_root`` given to the constructor still wins. Same mechanism as IRCNN's."""
    from podm_cli.methods.ircnn import IRCNN, OfficialBank

    checked = tmp_path / "checked"
    for rel in PODM.requirements.files:  # the 25 official bank files (empty stand-ins)
        (checked / rel).parent.mkdir(parents=True, exist_ok=True)
        (checked / rel).touch()
    monkeypatch.setenv("PODM_DATA", str(tmp_path / "elsewhere"))  # the locator's default has no weights
    assert PODM.requirements.files == IRCNN.requirements.files and issubclass(PODM, OfficialBank)
    for cls in (PODM, IRCNN):
        m = cls()
        assert m._weights_path() == tmp_path / "elsewhere" / "weights" / "ircnn_gray_keras"  # before a check
        assert m.missing(checked) is None
        assert m._weights_path() == checked / "weights" / "ircnn_gray_keras"
        given = cls(data_root=tmp_path / "given")
        assert given.missing(checked) is None
        assert given._weights_path() == tmp_path / "given" / "weights" / "ircnn_gray_keras"
        rel = cls(weights="weights/ircnn_gray_keras")  # a relative weights path resolves under that root too
        assert rel.missing(checked) is None and rel._weights_path() == checked / "weights" / "ircnn_gray_keras"


def test_podm_config_matches_constructor():
    """``PODM()`` is what ``configs/method/podm.yaml`` builds (the eval defaults of docs/podm_defaults.md)."""
    import inspect

    import yaml

    cfg = yaml.safe_load((Path(__file__).resolve().parents[1] / "configs" / "method" / "podm.yaml").read_text())
    assert cfg.pop("_target_") == "podm_cli.methods.podm.PODM"
    params = inspect.signature(PODM.__init__).parameters
    assert set(cfg) <= set(params)
    for key in set(cfg) - {"prior", "weights"}:
        assert cfg[key] == params[key].default, key
    # chosen on disjoint data: IRCNN's rho rule at divisor 1; everything else the authors' constants
    assert (cfg["rho_rule"], cfg["rho_divisor"]) == ("ircnn", 1.0)
    assert (cfg["L"], cfg["alpha"], cfg["C"], cfg["rho"], cfg["stages"], cfg["denoiser_first"],
            cfg["denoiser_last"]) == (1.0, 1e-3, 0.08, 1e-3, 30, 48 / 255, 4 / 255)
    assert cfg["descent_check"] is False and cfg["max_iterations"] is None
    method = PODM(**cfg, denoiser=gauss_denoiser)
    default = PODM(denoiser=gauss_denoiser)
    for m in (method, default):
        assert m.prior.p == 0.8 and m.prior.lam == 1e-4 and m.prior.gst_iterations == 2
    sig = torch.tensor([0.01])
    assert torch.equal(method.rho_schedule(sig), default.rho_schedule(sig))
    # rho_l = sigma_n^2 / s_l^2 (divisor 1): 0.01^2 / (48/255)^2 at the first stage, ... at 4/255 last
    assert float(method.rho_schedule(sig)[0, 0]) == pytest.approx(1e-4 / (48 / 255) ** 2, rel=1e-6)
    assert float(method.rho_schedule(sig)[0, -1]) == pytest.approx(1e-4 / (4 / 255) ** 2, rel=1e-6)
    with pytest.raises(Exception, match="rho_divisor"):
        PODM(rho_divisor=0.0, denoiser=gauss_denoiser)


def test_authors_preset_composes_to_the_authors_constants():
    """``method=podm_authors`` (configs/method/podm_authors.yaml extends podm.yaml in the same group)."""
    from hydra import compose, initialize_config_dir
    from hydra.utils import instantiate

    from podm_cli.apps.schema import register_schemas

    register_schemas()
    configs = Path(__file__).resolve().parents[1] / "configs"
    with initialize_config_dir(config_dir=str(configs), version_base=None):
        cfg = compose("converge", overrides=["method@podm=podm_authors"])
    m = instantiate(cfg.podm, denoiser=gauss_denoiser)
    assert isinstance(m, PODM) and m.rho_rule == "constant" and m.rho_schedule(torch.tensor([0.01])) == 1e-3
    assert (m.L, m.alpha, m.C, m.tol, m.stages, m.denoiser_first, m.denoiser_last) == (
        1.0, 1e-3, 0.08, 1e-4, 30, 48 / 255, 4 / 255)
    assert (m.prior.p, m.prior.lam, m.prior.gst_iterations) == (0.8, 1e-4, 2)
    assert not m.descent_check and m.max_iterations is None and m.post_schedule == "prox_gradient"


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_podm_on_cuda_matches_cpu(small_problem):
    prob, _ = small_problem
    cpu = podm_solve(prob, gauss_denoiser, SIGMAS, max_iterations=10, tol=0.0)
    cprob = Deconvolution.circular(prob.y.cuda(), motion_kernel().cuda(), LpDCT())
    gpu = podm_solve(cprob, gauss_denoiser, SIGMAS, max_iterations=10, tol=0.0)
    assert torch.allclose(gpu.x.cpu(), cpu.x, atol=1e-9)


@pytest.mark.data
def test_podm_with_official_bank_on_levin_crop():
    weights = DATA / "weights" / "ircnn_gray_keras"
    if not (weights / "net1.hdf5").exists() or not (DATA / "levin" / "gt" / "im_1.png").exists():
        pytest.skip(f"reference data not found under {DATA}")
    from podm_cli.data.datasets import make_dataset

    s = make_dataset("levin", DATA, dtype=torch.float64, limit=1)[0]
    crop = (slice(96, 160), slice(96, 160))
    x = s.sharp[None][..., crop[0], crop[1]].contiguous()
    prob = Deconvolution.circular(x, s.kernel)
    y = prob.A(x) + 0.01 * torch.randn(x.shape, generator=torch.Generator().manual_seed(0), dtype=D64)
    from podm_cli.nets.bank import DenoiserBank

    bank = DenoiserBank.from_keras_dir(weights, count=6)  # nets for sigma 2..12: loads in ~1 s
    method = PODM(stages=6, denoiser_first=12 / 255, denoiser_last=4 / 255, max_iterations=12, bank=bank)
    res = method.solve(DataTerm.build(y, s.kernel), 0.01, truth=x)
    psnr = res.trace.stack("psnr")
    assert torch.isfinite(psnr).all() and float(res.acceptance_rate[0]) > 0
    assert not math.isnan(float(res.trace.stack("psi")[-1, 0]))
