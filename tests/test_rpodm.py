"""RPODM model, its exported weights and the eval method: numbers that can fail."""

from __future__ import annotations

import math
import pickle

import pytest
import torch

from podm_cli.errors import InputError
from podm_cli.models import RPODM
from podm_cli.models.rpodm import NoiseConditioned
from podm_cli.models.rpodm_weights import export_weights, load_weights, read_weights_file
from podm_cli.nets.ircnn import IRCNNDenoiser
from podm_cli.optim.schedules import ircnn_schedule
from podm_cli.physics import Blur

SMALL = {"name": "ircnn", "channels": 8, "pretrained": None}


def _problem(n=2, size=32, seed=0):
    g = torch.Generator().manual_seed(seed)
    x = torch.rand(n, 1, size, size, generator=g, dtype=torch.float64)
    k = torch.rand(n, 1, 7, 7, generator=g, dtype=torch.float64)
    k /= k.sum((-1, -2), keepdim=True)
    y = Blur(k)(x) + 0.01 * torch.randn(x.shape, generator=g, dtype=torch.float64)
    return x, y, k


@pytest.mark.parametrize("levels", [{"denoiser_levels": (49 / 255, 13 / 255)}, {"sigma_schedule": (49.0, 13.0)}])
def test_rho_starts_at_ircnn_rho(levels):
    """Stage l's F weight at initialisation is IRCNN's rho at the next denoiser level; the last is 1e4 x.
    (``sigma_schedule`` on 0..255 is what weights files written before the rename hold.)"""
    model = RPODM(stages=5, denoiser=SMALL, final_mu_scale=1e4, **levels)
    sigma = torch.tensor([0.01, 0.03])
    _, rho = ircnn_schedule(sigma, stages=5, first=49 / 255, last=13 / 255)
    mu = model.rho(sigma).double()
    torch.testing.assert_close(mu[:, :-1], rho[:, 1:], rtol=1e-5, atol=0)
    torch.testing.assert_close(mu[:, -1], rho[:, -1] * 1e4, rtol=1e-5, atol=0)


def test_first_stage_without_g_is_denoise_then_exact_fidelity_step():
    """prior=none: x^1 = argmin ||k*x - y||^2 / 2 + mu/2 ||x - D(y)||^2, checked by its optimality condition."""
    x, y, k = _problem()
    model = RPODM(stages=1, denoiser=SMALL, prior={"name": "none"}).double()
    with torch.no_grad():
        x1 = model(y, k, torch.full((2,), 0.01))
        xa = model.denoise(0, y)
        mu = model.rho(torch.full((2,), 0.01))[:, 0].reshape(-1, 1, 1, 1)
    blur = Blur(k)
    grad = blur.A_adjoint(blur(x1) - y) + mu * (x1 - xa)
    assert float(grad.abs().max()) < 1e-10


def test_g_step_is_prox_gradient_on_the_prior():
    """With p = 1 (soft-thresholding in the DCT) G is prox_{lam}(v) for v = x_F - s (grad f + alpha (x_F - x0))."""
    from podm_cli.priors.lp import dct2, idct2

    x, y, k = _problem(n=1)
    model = RPODM(stages=1, denoiser=SMALL, prior={"name": "lp_dct", "p": 1.0, "lam": 0.02}, step=0.5, alpha=0.1).double()
    model.prior.gst_iterations = 1
    with torch.no_grad():
        out = model(y, k, torch.tensor([0.01]))
        model.use_g = False
        xf = model(y, k, torch.tensor([0.01]))
    blur = Blur(k)
    v = xf - 0.5 * (blur.A_adjoint(blur(xf) - y) + 0.1 * (xf - y))
    c = dct2(v)
    want = idct2(torch.sign(c) * (c.abs() - 0.5 * 0.02).clamp_min(0))
    torch.testing.assert_close(out, want, rtol=1e-6, atol=1e-6)


def test_gradients_reach_every_stage_parameter_and_checkpointing_matches():
    x, y, k = _problem()
    sigma = torch.full((2,), 0.01)
    grads = []
    for ckpt in (False, True):
        torch.manual_seed(0)
        model = RPODM(stages=3, denoiser=SMALL, prior={"name": "lp_dct"}, checkpoint_stages=ckpt,
                      mu_mode="hypernet").double()
        loss = (model(y, k, sigma) - x).abs().mean()
        loss.backward()
        named = dict(model.named_parameters())
        for name in ("log_mu", "g_lam", "g_step", "g_alpha", "denoisers.0.model.0.weight", "denoisers.2.model.12.bias",
                     "hypernet.2.weight"):
            assert named[name].grad is not None and float(named[name].grad.abs().sum()) > 0, name
        grads.append(named["denoisers.0.model.0.weight"].grad.clone())
    torch.testing.assert_close(grads[0], grads[1])


def test_shared_noise_conditioned_denoiser_starts_as_the_plain_net():
    net = IRCNNDenoiser(channels=8)
    x = torch.rand(2, 1, 24, 24)
    want = net(x)
    cond = NoiseConditioned(net)
    torch.testing.assert_close(cond(x, torch.tensor([0.1, 0.5])), want)
    model = RPODM(stages=4, denoiser=SMALL, share_denoiser=True)
    assert len(model.denoisers) == 1 and model(x, torch.ones(3, 3) / 9, 0.01).shape == x.shape


def test_noise_input_stages_start_as_the_plain_model_then_follow_sigma(tmp_path):
    """Zero-initialised noise maps: a noise-adaptive model initialised from a plain one restores exactly as it;
    once the map's weights move, the output depends on the given sigma (per batch item, colour included)."""
    from podm_cli.models.rpodm_weights import initialise_from

    cfg = {"stages": 2, "denoiser": SMALL, "prior": {"name": "lp_dct", "lam": 1e-4}}
    torch.manual_seed(0)
    plain = RPODM(**cfg).eval()
    path = export_weights(plain, cfg, tmp_path / "plain.pt", half=False)
    adaptive = RPODM(**cfg, noise_input=True, mu_mode="hypernet").eval()
    report = initialise_from(adaptive, path)
    assert {k.split(".")[0] for k in report["kept"]} == {"hypernet"}
    _, y, k = _problem()
    y, k = y.float(), k.float()
    sigma = torch.tensor([0.01, 0.02])
    with torch.no_grad():
        torch.testing.assert_close(adaptive(y, k, sigma), plain(y, k, sigma), rtol=0, atol=1e-6)
        first = adaptive.denoisers[0].net.model[0].weight
        first[:, -1].normal_(0, 0.1)  # the noise map's input channel
        a = adaptive(y, k, sigma)
        b = adaptive(y, k, torch.tensor([0.01, 0.03]))
    assert torch.equal(a[0], b[0]) and float((a[1] - b[1]).abs().max()) > 1e-4
    with torch.no_grad():
        colour = adaptive(y.expand(-1, 3, -1, -1), k, sigma)
    torch.testing.assert_close(colour[:, 1:2], a, rtol=1e-5, atol=1e-5)
    with pytest.raises(InputError, match="noise"):
        adaptive.denoise(0, y)
    adaptive.noise_range = (0.005, 0.015)  # outside the trained range: the nearest level seen
    with torch.no_grad():
        torch.testing.assert_close(adaptive.denoise(0, y, torch.tensor([0.3, 0.001])),
                                   adaptive.denoise(0, y, torch.tensor([0.015, 0.005])))
    with pytest.raises(InputError, match="stages"):
        initialise_from(RPODM(stages=3, denoiser=SMALL), path)


def test_training_step_on_valid_data_trains_through_the_adjusted_boundary():
    """The Lightning module builds the batch's DataTerm as the method does: with boundary=adjust the loss
    reaches every learned part (stage nets and their noise maps, mu, the hyper-network, G) and the restored
    crop is the observation's size."""
    from podm_cli.training.module import RPODMModule, restoration_loss

    x, _, k = _problem(n=2, size=40)
    y = torch.cat([Blur(k[i, 0], "valid")(x[i : i + 1]) for i in range(2)]).float()
    module = RPODMModule({"stages": 2, "denoiser": SMALL, "prior": {"name": "lp_dct"}, "noise_input": True,
                          "mu_mode": "hypernet"}, mode="valid", boundary={"boundary": "adjust", "start": "edgetaper"})
    module.model.denoisers[0].net.model[0].weight.data[:, -1] = 0.05
    data = module.data_term(y, k.float())
    assert data.adjusting and data.grid == (40, 40)
    sharp = x[:, :, 3:-3, 3:-3].float()
    batch = {"blurred": y, "sharp": sharp, "kernel": k.float(), "sigma": torch.tensor([0.01, 0.02])}
    outs = module.restore(batch["blurred"], batch["kernel"], batch["sigma"])
    assert [tuple(o.shape) for o in outs] == [tuple(y.shape)] * 2
    restoration_loss("l1", outs[-1], sharp).backward()
    named = dict(module.model.named_parameters())
    for name in ("log_mu", "hypernet.2.weight", "g_lam", "denoisers.1.net.model.0.weight"):
        assert float(named[name].grad.abs().sum()) > 0, name
    assert float(named["denoisers.0.net.model.0.weight"].grad[:, -1].abs().sum()) > 0



def test_circular_batches_mixed_into_valid_training_get_a_circular_data_term():
    """A batch flagged circular (``train_data.circular_fraction``) is restored with the circular F step even in a
    valid/adjust module; a batch that mixes both kinds is refused."""
    from podm_cli.training.module import RPODMModule

    module = RPODMModule({"stages": 1, "denoiser": SMALL}, mode="valid", boundary="adjust")
    x, y, k = _problem(n=2, size=32)
    flags = {"circular": torch.tensor([True, True])}
    assert module.batch_mode(flags) == "circular" and module.batch_mode({}) is None
    assert module.batch_mode({"circular": torch.tensor([False, False])}) is None
    assert module.data_term(y.float(), k.float(), module.batch_mode(flags)).mode == "circular"
    assert module.data_term(y.float(), k.float()).adjusting
    with pytest.raises(ValueError, match="mixes"):
        module.batch_mode({"circular": torch.tensor([True, False])})

def test_colour_images_go_channel_by_channel():
    model = RPODM(stages=2, denoiser=SMALL).eval()
    x = torch.rand(1, 3, 32, 32)
    k = torch.ones(5, 5) / 25
    with torch.no_grad():
        colour = model(x, k, 0.01)
        grey = torch.cat([model(x[:, c : c + 1], k, 0.01) for c in range(3)], 1)
    torch.testing.assert_close(colour, grey, rtol=1e-5, atol=1e-5)


def test_bad_arguments_are_input_errors():
    with pytest.raises(InputError, match="stages"):
        RPODM(stages=0, denoiser=SMALL)
    with pytest.raises(InputError, match="mu_mode"):
        RPODM(stages=2, denoiser=SMALL, mu_mode="magic")
    with pytest.raises(InputError, match="denoiser_levels"):
        RPODM(stages=2, denoiser=SMALL, denoiser_levels=(5 / 255, 20 / 255))


def test_export_round_trip_in_fp16_changes_little(tmp_path):
    cfg = {"stages": 2, "denoiser": SMALL, "prior": {"name": "lp_dct", "lam": 1e-4}}
    model = RPODM(**cfg).eval()
    path = export_weights(model, cfg, tmp_path / "m.pt", trained_for={"mode": "circular"})
    back = load_weights(path)
    x, y, k = _problem()
    with torch.no_grad():
        a, b = model(y.float(), k.float(), 0.01), back(y.float(), k.float(), 0.01)
    err = float((a - b).pow(2).mean())
    assert 10 * math.log10(1 / err) > 55  # fp16 storage: far below any PSNR difference that matters
    assert read_weights_file(path)["trained_for"] == {"mode": "circular"}


def test_adjusted_valid_data_step_and_method_stages(tmp_path):
    """On ``valid`` data with ``boundary=adjust`` the first F step is the data term's prox with the
    observation re-estimated from D(y_ext) (optimality checked), and the method crops result and stages."""
    from podm_cli.methods.rpodm import RPODMMethod
    from podm_cli.physics import DataTerm

    x, _, k = _problem(n=1, size=40)
    y = Blur(k[0, 0], "valid")(x) + 0.01 * torch.randn(1, 1, 34, 34, generator=torch.Generator().manual_seed(3),
                                                       dtype=torch.float64)
    model = RPODM(stages=1, denoiser=SMALL, prior={"name": "none"}).double()
    data = DataTerm.build(y, k[0, 0], mode="valid", boundary="adjust")
    with torch.no_grad():
        x1 = model.restore(data, torch.full((1,), 0.01))
        xa = model.denoise(0, data.initial())
        rho = model.rho(torch.full((1,), 0.01))[:, 0]
    grad = data.blur_adjoint(data.blur(x1) - data.observation(xa)) + rho * (x1 - xa)
    assert x1.shape[-2:] == data.grid and float(grad.abs().max()) < 1e-10
    assert not torch.allclose(data.observation(xa), data.initial())
    cfg = {"stages": 2, "denoiser": SMALL, "prior": {"name": "lp_dct", "lam": 1e-4}}
    path = export_weights(RPODM(**cfg).eval(), cfg, tmp_path / "m.pt")
    seen = []
    out = RPODMMethod(weights=path).with_boundary(boundary="adjust")(
        y.float(), k[0, 0].float(), 0.01, mode="valid", on_stage=lambda i, s: seen.append((i, tuple(s.shape))))
    assert out.shape == y.shape and seen == [(0, (1, 1, 34, 34)), (1, (1, 1, 34, 34))]


def test_shipped_models_run_with_the_boundary_rule_they_were_trained_with():
    """`podm eval`/`podm deblur` give every shipped RPODM model trained on `valid` data the rule it was trained
    with: a model trained with edgetaper and run with adjust (or the reverse) loses 5-10 dB on Levin's data."""
    from omegaconf import OmegaConf

    from podm_cli.apps import config_dir
    from podm_cli.apps.common import boundary_settings, method_boundary
    from podm_cli.methods.rpodm import RPODMMethod, default_weights_path

    made = read_weights_file(default_weights_path())
    trained = made["trained_for"]
    assert trained["mode"] == "valid" and trained["quantize"] and made["config"]["noise_input"]
    assert load_weights(default_weights_path()).noise_range == tuple(trained["sigma"])
    settings = boundary_settings(OmegaConf.load(config_dir() / "operator" / "valid.yaml"))
    checked = []
    for path in sorted((config_dir() / "method").glob("rpodm*.yaml")):
        cfg = OmegaConf.load(path)
        method = RPODMMethod(weights=cfg.get("weights"), name=cfg.get("name"))
        trained = read_weights_file(method.weights_path)["trained_for"]
        if trained.get("mode") == "valid":
            assert method_boundary(settings, method.name) == trained["boundary"], method.name
            checked.append(method.name)
    assert {"rpodm", "rpodm_edgetaper"} <= set(checked)


def test_weights_files_cannot_run_code(tmp_path):
    class Evil:
        def __reduce__(self):
            return (exec, ("raise SystemExit('pwned')",))

    path = tmp_path / "evil.pt"
    with open(path, "wb") as f:
        pickle.dump({"format": "podm-rpodm/1", "x": Evil()}, f)
    with pytest.raises(InputError, match="not a loadable RPODM weights file"):
        load_weights(path)
    torch.save({"format": "something else"}, tmp_path / "other.pt")
    with pytest.raises(InputError, match="not an RPODM weights file"):
        load_weights(tmp_path / "other.pt")


def test_bf16_autocast_keeps_fft_steps_in_float32():
    """Under bf16 autocast (trainer precision bf16-mixed) the networks run in bf16, F and G in float32."""
    x, y, k = _problem()
    model = RPODM(stages=2, denoiser=SMALL, prior={"name": "lp_dct"})
    y, k = y.float(), k.float()
    ref = model(y, k, 0.01)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        out = model(y, k, 0.01)
    assert out.dtype == torch.float32
    assert float((out - ref).abs().max()) < 0.05
    out.mean().backward()


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_cuda_forward_backward_matches_cpu():
    x, y, k = _problem()
    model = RPODM(stages=2, denoiser=SMALL, prior={"name": "lp_dct"}).float()
    cpu = model(y.float(), k.float(), 0.01)
    gpu = model.cuda()(y.float().cuda(), k.float().cuda(), 0.01)
    torch.testing.assert_close(gpu.cpu(), cpu, rtol=1e-4, atol=1e-4)
    gpu.mean().backward()


def test_losses():
    from podm_cli.training.module import restoration_loss

    x, ref = torch.tensor([0.0, 0.3]), torch.tensor([0.1, 0.0])
    assert float(restoration_loss("l1", x, ref)) == pytest.approx(0.2)
    assert float(restoration_loss("mse", x, ref)) == pytest.approx(0.05)
    assert float(restoration_loss("charbonnier", x, ref, eps=1e-3)) == pytest.approx(0.2, abs=1e-5)
    with pytest.raises(InputError):
        restoration_loss("huber", x, ref)
