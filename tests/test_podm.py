"""The PODM method (:class:`podm_cli.methods.podm.PODM`): its interface with a stand-in denoiser (a Gaussian
smoother whose width grows with sigma), weights and data root, its config and the authors' preset, CUDA, and
the official bank on a Levin crop (``data`` test). The solver itself is tested in ``tests/test_optim.py``.
"""

from __future__ import annotations

import itertools
import math
from pathlib import Path

import pytest
import torch

from conftest import SHARED_DATA as DATA
from conftest import SIGMAS, gauss_denoiser, motion_kernel, smooth_image
from podm_cli.methods.podm import PODM
from podm_cli.optim import Deconvolution, podm_solve
from podm_cli.physics import DataTerm
from podm_cli.priors import LpDCT

D64 = torch.float64


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


def test_podm_loads_weights_from_the_root_build_method_gives(monkeypatch, tmp_path):
    """``build_method`` hands the data root to the constructor, so the bank is loaded from the root that
    ``missing`` checks (``podm eval`` builds and checks with ``data.root``), not from ``$PODM_DATA``;
    ``missing`` itself changes nothing. Same mechanism as IRCNN's."""
    from podm_cli.apps.methods import build_method
    from podm_cli.methods.ircnn import IRCNN
    from podm_cli.methods.official_bank import OfficialBank

    checked = tmp_path / "checked"
    for rel in PODM.requirements.files:  # the 25 official bank files (empty stand-ins)
        (checked / rel).parent.mkdir(parents=True, exist_ok=True)
        (checked / rel).touch()
    monkeypatch.setenv("PODM_DATA", str(tmp_path / "elsewhere"))  # the locator's default has no weights
    assert PODM.requirements.files == IRCNN.requirements.files and issubclass(PODM, OfficialBank)
    for name, cls in (("podm", PODM), ("ircnn", IRCNN)):
        bare = cls()
        state = dict(vars(bare))
        assert bare.missing(checked) is None and vars(bare) == state  # no side effects
        assert bare._weights_path() == tmp_path / "elsewhere" / "weights" / "ircnn_gray_keras"
        built = build_method(name, None, checked)
        assert built.missing(checked) is None
        assert built._weights_path() == checked / "weights" / "ircnn_gray_keras"
        given = cls(data_root=tmp_path / "given")  # the constructor's root is what is checked and loaded
        assert str(tmp_path / "given") in given.missing(checked)
        assert given._weights_path() == tmp_path / "given" / "weights" / "ircnn_gray_keras"
        rel = cls(weights="weights/ircnn_gray_keras", data_root=checked)  # relative: under that root
        assert rel.missing(tmp_path) is None and rel._weights_path() == checked / "weights" / "ircnn_gray_keras"


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
