"""Denoiser backbones, the IRCNN bank and the weight importers (Keras HDF5, ircnn_gray.pth, DnCNN .pth).

Measured on this repository's reference data (float32, CPU, torch 2.13), used by the data tests below:
* official Keras bank, net for sigma 15 (net8, sigma 16) on Levin gt im_1 with noise 15/255 (seed 0):
  24.62 dB -> 33.86 dB, a gain of 9.24 dB;
* broken imports of the same net: hidden-layer weights with in/out channels swapped -20.5 dB, dilations
  ignored (all 1) +5.33 dB. Transposing (or flipping) every 3x3 kernel is NOT detectable by denoising:
  it gives exactly ``T(net(T(x)))`` (T = image transpose) and the nets were trained with flip/rotation
  augmentation, so the gain stays 9.24 dB; the import is therefore also checked against an independent
  NumPy re-implementation of Keras' channels_last dilated 'same' convolution on the raw HDF5 arrays;
* KAIR dncnn_25.pth (17 convs, BN folded) on the centre 128x128 of Levin im_1 with noise 25/255 (seed 0):
  20.14 -> 30.13 dB (+10.00 dB; +10.97 dB on the whole image).
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from podm_cli.errors import InputError
from podm_cli.nets import (
    DenoiserBank,
    DnCNN,
    IRCNNDenoiser,
    ResUNet,
    build_denoiser,
    build_stage_denoisers,
    export_ircnn_pth,
    load_dncnn,
    load_ircnn_pth,
    load_keras_ircnn,
    read_keras_convs,
)
from podm_cli.nets.weights import ircnn_nets_from_state, ircnn_pth_state

REPO = Path(__file__).resolve().parents[1]
from conftest import SHARED_DATA as DATA  # noqa: E402

KERAS = DATA / "weights" / "ircnn_gray_keras"
DNCNN = DATA / "weights" / "dncnn" / "dncnn_25.pth"
LEVIN1 = DATA / "levin" / "gt" / "im_1.png"

needs_keras = pytest.mark.skipif(
    not all((KERAS / f"net{i}.hdf5").is_file() for i in range(1, 26)) or not LEVIN1.is_file(),
    reason=f"IRCNN Keras weights / Levin gt not under {DATA} (set PODM_DATA)",
)
needs_dncnn = pytest.mark.skipif(
    not DNCNN.is_file() or not LEVIN1.is_file(), reason=f"{DNCNN} or Levin gt absent (set PODM_DATA)"
)


def _psnr(x: torch.Tensor, ref: torch.Tensor) -> float:
    return float(10 * torch.log10(1.0 / ((x.double() - ref.double()) ** 2).mean()))


def _noisy(x: torch.Tensor, sigma255: float, seed: int = 0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return x + sigma255 / 255.0 * torch.randn(x.shape, generator=g)


@pytest.fixture(scope="module")
def bank() -> DenoiserBank:
    if not all((KERAS / f"net{i}.hdf5").is_file() for i in range(1, 26)):
        pytest.skip("IRCNN Keras weights absent")
    return DenoiserBank.from_keras_dir(KERAS)


@pytest.fixture(scope="module")
def levin1() -> torch.Tensor:
    from podm_cli.imageio import read_image

    return read_image(LEVIN1, mode="gray")[0][None].float()


# ------------------------------------------------------------------------------------ architectures
@pytest.mark.parametrize(
    "make",
    [
        lambda: IRCNNDenoiser(channels=8),
        lambda: DnCNN(channels=8, depth=5),
        lambda: DnCNN(channels=8, depth=5, batch_norm=False),
        lambda: ResUNet(channels=4, scales=3),
        lambda: ResUNet(in_channels=3, channels=4, scales=2, blocks=2),
    ],
)
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_shapes_dtypes_and_batching(make, dtype):
    torch.manual_seed(0)
    net = make().to(dtype).eval()
    c = net.head.in_channels if isinstance(net, ResUNet) else 1
    x = torch.rand(3, c, 29, 18, dtype=dtype)
    with torch.no_grad():
        out = net(x)
        single = net(x[1:2])
    assert out.shape == x.shape and out.dtype == dtype
    tol = 1e-5 if dtype == torch.float32 else 1e-12
    assert torch.allclose(out[1:2], single, atol=tol)  # batching does not mix items


def test_ircnn_receptive_field_is_33():
    """Dilations 1,2,3,4,3,2,1 with padding = dilation: one output pixel sees exactly 33x33 inputs."""
    torch.manual_seed(0)
    net = IRCNNDenoiser(channels=4)
    x = torch.rand(1, 1, 61, 61, requires_grad=True)
    net.residual(x)[0, 0, 30, 30].backward()
    rows, cols = torch.nonzero(x.grad[0, 0], as_tuple=True)
    assert (rows.min().item(), rows.max().item(), cols.min().item(), cols.max().item()) == (14, 46, 14, 46)
    assert [c.dilation[0] for c in net.convs] == [1, 2, 3, 4, 3, 2, 1]
    assert [c.padding[0] for c in net.convs] == [1, 2, 3, 4, 3, 2, 1]
    assert IRCNNDenoiser.receptive_field() == 33


def test_dncnn_fold_batchnorm_and_state_dict_layouts():
    torch.manual_seed(0)
    net = DnCNN(channels=8, depth=6)
    for m in net.modules():
        if isinstance(m, torch.nn.BatchNorm2d):
            m.running_mean.uniform_(-0.2, 0.2)
            m.running_var.uniform_(0.5, 2.0)
            m.weight.data.uniform_(0.5, 1.5)
            m.bias.data.uniform_(-0.1, 0.1)
    net.eval()
    x = torch.rand(2, 1, 20, 20)
    folded = net.fold_batchnorm()
    assert not folded.batch_norm
    assert torch.allclose(net(x), folded(x), atol=1e-5)
    # BN layout (model.0 conv, model.2 conv, model.3 BN, ...) and the folded layout (model.0, 2, 4, ...)
    bn_keys = net.state_dict()
    assert "model.3.running_mean" in bn_keys and "model.2.weight" in bn_keys
    again = DnCNN.from_state_dict(bn_keys).eval()
    assert again.batch_norm and again.depth == 6 and torch.allclose(again(x), net(x), atol=1e-6)
    plain = DnCNN.from_state_dict({"module." + k: v for k, v in folded.state_dict().items()}).eval()
    assert sorted(folded.state_dict()) == sorted(
        f"model.{2 * i}.{p}" for i in range(6) for p in ("weight", "bias")
    )
    assert not plain.batch_norm and torch.allclose(plain(x), folded(x), atol=1e-6)


# --------------------------------------------------------------------------------------------- bank
def test_bank_index_rule_matches_ircnn_loadmodel():
    """cszn/IRCNN loadmodel.m: n = min(25, max(ceil(s/2), 1)) (1-based) for s on [0, 255]."""
    bank = DenoiserBank([IRCNNDenoiser(channels=2) for _ in range(25)])
    for s in [0.1, 1, 1.99, 2, 2.5, 7.65, 10, 12.9, 13, 14, 15, 25, 48.9, 49, 50, 60, 255]:
        expected = min(25, max(int(np.ceil(s / 2)), 1)) - 1
        assert bank.index_for(s / 255) == expected, s
    # the 30-step schedule 49 -> 13 picks the same nets as the demo
    sched = np.logspace(np.log10(49), np.log10(13), 30)
    assert [bank.index_for(s / 255) for s in sched] == [
        min(25, max(int(np.ceil(s / 2)), 1)) - 1 for s in sched
    ]


def test_bank_groups_items_by_sigma():
    torch.manual_seed(0)
    nets = [IRCNNDenoiser(channels=4) for _ in range(25)]
    bank = DenoiserBank(nets)
    x = torch.rand(4, 1, 16, 16, dtype=torch.float64)
    sig = torch.tensor([0.01, 0.1, 0.01, 0.19])
    with torch.no_grad():
        out = bank.denoise(x, sig)
        ref = torch.cat(
            [nets[bank.index_for(float(s))](x[i : i + 1].float()).double() for i, s in enumerate(sig)]
        )
    assert out.dtype == torch.float64 and torch.allclose(out, ref, atol=1e-6)
    with pytest.raises(InputError):
        bank.denoise(x, torch.tensor([0.1, 0.2]))


# ----------------------------------------------------------------------------------- .pth layouts
def _small_bank(n: int = 4) -> list[IRCNNDenoiser]:
    torch.manual_seed(1)
    return [IRCNNDenoiser(channels=6) for _ in range(n)]


def _same(a: list[torch.nn.Module], b: list[torch.nn.Module]) -> bool:
    return len(a) == len(b) and all(
        sa.keys() == sb.keys() and all(torch.equal(sa[k], sb[k]) for k in sa)
        for sa, sb in ((x.state_dict(), y.state_dict()) for x, y in zip(a, b))
    )


def test_pth_roundtrip_and_layouts(tmp_path):
    nets = _small_bank()
    path = export_ircnn_pth(nets, tmp_path / "ircnn_gray.pth")
    raw = torch.load(path, weights_only=True)
    assert sorted(raw, key=int) == ["0", "1", "2", "3"]
    assert list(raw["0"]) == [f"model.{j}.{p}" for j in range(0, 13, 2) for p in ("weight", "bias")]
    assert _same(load_ircnn_pth(path), nets)
    state = ircnn_pth_state(nets)
    flat_model = {f"{i}.{k}": v for i, sd in state.items() for k, v in sd.items()}  # '0.model.0.weight'
    flat_plain = {f"{i}.{k[len('model.') :]}": v for i, sd in state.items() for k, v in sd.items()}
    assert _same(ircnn_nets_from_state(flat_model), nets)
    assert _same(ircnn_nets_from_state(flat_plain), nets)
    assert _same(ircnn_nets_from_state(DenoiserBank(nets).state_dict()), nets)  # 'nets.<i>.model...'
    assert _same(ircnn_nets_from_state(state["2"]), nets[2:3])  # a single net
    bank = DenoiserBank.from_pth(path)
    x = torch.rand(1, 1, 12, 12)
    with torch.no_grad():
        assert torch.equal(bank.denoise(x, bank.sigmas[2]), DenoiserBank(nets).denoise(x, bank.sigmas[2]))
    # loading from an in-memory state dict copies: the new nets do not alias the source parameters
    loaded = ircnn_nets_from_state(DenoiserBank(nets).state_dict())
    with torch.no_grad():
        nets[0].convs[0].weight.add_(1.0)
        nets[0].convs[0].bias.add_(1.0)
    assert not torch.equal(loaded[0].convs[0].weight, nets[0].convs[0].weight)
    assert not torch.equal(loaded[0].convs[0].bias, nets[0].convs[0].bias)


class _Payload:  # a pickled object a weights-only load must refuse
    pass


def test_pth_loading_is_weights_only(tmp_path):
    p = tmp_path / "evil.pth"
    torch.save({"0": _Payload()}, p)
    with pytest.raises(InputError, match="weights-only"):
        load_ircnn_pth(p)
    bad = tmp_path / "wrong.pth"
    torch.save({"0": {"model.0.weight": torch.zeros(6, 1, 3, 3)}}, bad)
    with pytest.raises(InputError):
        load_ircnn_pth(bad)


# ------------------------------------------------------------------------------------ Keras import
def _write_keras(path: Path, nets_weights, names, dilations) -> None:
    """A minimal Keras-2.2-style HDF5 (model_config + model_weights) for a conv/ReLU stack."""
    import h5py

    layers = []
    for j, (name, d) in enumerate(zip(names, dilations)):
        layers.append(
            {
                "class_name": "Conv2D",
                "config": {
                    "name": name,
                    "filters": int(nets_weights[j][0].shape[-1]),
                    "kernel_size": [3, 3],
                    "strides": [1, 1],
                    "padding": "same",
                    "data_format": "channels_last",
                    "dilation_rate": [d, d],
                    "activation": "linear",
                    "use_bias": True,
                },
            }
        )
        if j < len(names) - 1:
            layers.append({"class_name": "Activation", "config": {"name": f"act_{j}", "activation": "relu"}})
    with h5py.File(path, "w") as f:
        f.attrs["model_config"] = json.dumps({"class_name": "Sequential", "config": layers}).encode()
        mw = f.create_group("model_weights")
        for name, (k, b) in zip(names, nets_weights):
            g = mw.create_group(name)
            g.attrs["weight_names"] = np.array([f"{name}/kernel:0".encode(), f"{name}/bias:0".encode()])
            g.create_dataset(f"{name}/kernel:0", data=k)
            g.create_dataset(f"{name}/bias:0", data=b)


def _keras_reference(x: np.ndarray, convs) -> np.ndarray:
    """Keras forward on (H, W, C) arrays: channels_last cross-correlation, dilated 'same' zero padding."""
    h = x
    for j, (k, b, d) in enumerate(convs):
        p = np.pad(h, ((d, d), (d, d), (0, 0)))
        out = np.zeros(h.shape[:2] + (k.shape[3],))
        for a in range(3):
            for c in range(3):
                patch = p[a * d : a * d + h.shape[0], c * d : c * d + h.shape[1], :]
                out += patch @ k[a, c]
        out += b
        h = np.maximum(out, 0) if j < len(convs) - 1 else out
    return x - h


def test_keras_import_order_dilations_and_layout(tmp_path):
    rng = np.random.default_rng(0)
    names = ["conv2d_8", "conv2d_9", "conv2d_10", "conv2d_11"]  # sorted as strings: 10, 11, 8, 9
    dil = [1, 3, 2, 1]
    shapes = [(3, 3, 1, 5), (3, 3, 5, 5), (3, 3, 5, 5), (3, 3, 5, 1)]
    weights = [
        (rng.normal(0, 0.3, s).astype("float32"), rng.normal(0, 0.1, s[-1]).astype("float32")) for s in shapes
    ]
    path = tmp_path / "net.hdf5"
    _write_keras(path, weights, names, dil)
    convs = read_keras_convs(path)
    assert [c.name for c in convs] == names and [c.dilation for c in convs] == dil
    net = load_keras_ircnn(path)
    assert net.dilations == tuple(dil)
    x = rng.random((17, 14, 1)).astype("float32")
    ref = _keras_reference(x.astype(np.float64), [(k, b, d) for (k, b), d in zip(weights, dil)])
    with torch.no_grad():
        got = net(torch.from_numpy(x).permute(2, 0, 1)[None])[0].permute(1, 2, 0).numpy()
    assert np.abs(got - ref).max() < 1e-5


# ------------------------------------------------------------------------------------------ factory
def test_factory_builds_every_config():
    from omegaconf import OmegaConf

    for name in ("ircnn", "dncnn", "unet"):
        cfg = OmegaConf.to_container(OmegaConf.load(REPO / "configs" / "denoiser" / f"{name}.yaml"))
        if name == "ircnn":
            cfg["pretrained"] = None  # random init; "official" is tested with the data below
        net = build_denoiser(**cfg)
        assert isinstance(net, {"ircnn": IRCNNDenoiser, "dncnn": DnCNN, "unet": ResUNet}[name])
        assert net(torch.rand(1, 1, 20, 20)).shape == (1, 1, 20, 20)
    with pytest.raises(InputError, match="unknown denoiser"):
        build_denoiser("nope")
    with pytest.raises(InputError, match="unknown ircnn denoiser option"):
        build_denoiser("ircnn", depth=3)


def test_stage_denoisers_are_independent_copies(tmp_path):
    path = export_ircnn_pth(_small_bank(25), tmp_path / "b.pth")
    stages = build_stage_denoisers("ircnn", [49 / 255, 20 / 255, 20 / 255], pretrained=str(path), channels=6)
    bank = DenoiserBank.from_pth(path)
    assert _same(list(stages), [bank.net_for(49 / 255), bank.net_for(20 / 255), bank.net_for(20 / 255)])
    assert stages[1].convs[0].weight.data_ptr() != stages[2].convs[0].weight.data_ptr()


# ------------------------------------------------------------------------------- reference weights
@pytest.mark.data
@needs_keras
def test_keras_file_layer_order_from_model_config():
    convs = read_keras_convs(KERAS / "net1.hdf5")
    assert [c.name for c in convs] == [f"conv2d_{i}" for i in range(8, 15)]  # not sorted as strings
    assert [c.dilation for c in convs] == [1, 2, 3, 4, 3, 2, 1]
    assert [c.relu_after for c in convs] == [True] * 6 + [False]
    assert tuple(convs[0].weight.shape) == (64, 1, 3, 3) and tuple(convs[-1].weight.shape) == (1, 64, 3, 3)


@pytest.mark.data
@needs_keras
def test_keras_import_matches_numpy_keras_reference(bank):
    """Independent check of permutation (3,2,0,1), layer order and dilations on the real file."""
    import h5py

    raw = []
    with h5py.File(KERAS / "net8.hdf5", "r") as f:
        cfg = json.loads(f.attrs["model_config"])
        for layer in cfg["config"]:
            if layer["class_name"] == "Conv2D":
                n, d = layer["config"]["name"], layer["config"]["dilation_rate"][0]
                g = f["model_weights"][n][n]
                raw.append((g["kernel:0"][()].astype(np.float64), g["bias:0"][()].astype(np.float64), d))
    x = np.random.default_rng(0).random((21, 19, 1))
    ref = _keras_reference(x, raw)
    with torch.no_grad():
        got = (
            bank.nets[7](torch.from_numpy(x).float().permute(2, 0, 1)[None])[0]
            .permute(1, 2, 0)
            .double()
            .numpy()
        )
    assert np.abs(got - ref).max() < 1e-4
    # a spatially transposed import computes something else on this (non-symmetric) input
    bad = IRCNNDenoiser()
    bad.load_state_dict(
        {k: (v.transpose(-1, -2) if v.ndim == 4 else v) for k, v in bank.nets[7].state_dict().items()}
    )
    with torch.no_grad():
        got_bad = bad(torch.from_numpy(x).float().permute(2, 0, 1)[None])[0].permute(1, 2, 0).double().numpy()
    assert np.abs(got_bad - ref).max() > 1e-3


@pytest.mark.data
@needs_keras
def test_keras_bank_denoises_and_broken_imports_do_not(bank, levin1):
    y = _noisy(levin1, 15)
    net = bank.net_for(15 / 255)
    with torch.no_grad():
        gain = _psnr(bank.denoise(y, 15 / 255), levin1) - _psnr(y, levin1)
        assert gain >= 8.0, gain  # measured 9.24 dB
        assert abs(gain - 9.24) < 0.05
        # hidden layers with (in, out) swapped: a wrong kernel permutation
        swapped = IRCNNDenoiser()
        swapped.load_state_dict(
            {
                k: (v.transpose(0, 1) if v.ndim == 4 and v.shape[:2] == (64, 64) else v)
                for k, v in net.state_dict().items()
            }
        )
        assert _psnr(swapped(y), levin1) - _psnr(y, levin1) < 0.0  # measured -20.5 dB
        # dilations ignored (what a reader that drops model_config would build)
        flat = IRCNNDenoiser(dilations=(1,) * 7)
        flat.load_state_dict(net.state_dict())
        assert _psnr(flat(y), levin1) - _psnr(y, levin1) < gain - 3.0  # measured 5.33 dB
        # why a transposed import cannot be caught by denoising: it is exactly T o net o T
        tr = IRCNNDenoiser()
        tr.load_state_dict(
            {k: (v.transpose(-1, -2) if v.ndim == 4 else v) for k, v in net.state_dict().items()}
        )
        assert torch.allclose(tr(y), net(y.transpose(-1, -2)).transpose(-1, -2), atol=1e-5)


@pytest.mark.data
@needs_keras
def test_official_bank_pth_roundtrip(bank, tmp_path, levin1):
    path = bank.to_pth(tmp_path / "ircnn_gray.pth")
    again = DenoiserBank.from_pth(path)
    assert len(again) == 25 and _same(list(again.nets), list(bank.nets))
    x = levin1[..., :64, :64]
    with torch.no_grad():
        assert torch.equal(again.denoise(x, 0.05), bank.denoise(x, 0.05))
    net = build_denoiser("ircnn", pretrained=str(path), sigma=15 / 255)
    official = build_denoiser("ircnn", pretrained="official", sigma=15 / 255, data_root=DATA)
    assert _same([net, official], [bank.net_for(15 / 255)] * 2)
    stages = build_stage_denoisers(
        "ircnn", [49 / 255, 7.65 / 255, 7.65 / 255], pretrained="official", data_root=DATA
    )
    assert _same(list(stages), [bank.nets[24], bank.nets[3], bank.nets[3]])  # net25, net4, net4


@pytest.mark.data
@needs_dncnn
def test_dncnn_state_dict_loads_and_denoises(levin1):
    net = load_dncnn(DNCNN)
    assert net.depth == 17 and net.channels == 64 and not net.batch_norm
    x = levin1[..., 64:192, 64:192]
    y = _noisy(x, 25)
    with torch.no_grad():
        gain = _psnr(net(y), x) - _psnr(y, x)
    assert gain > 6.0, gain  # measured 10.00 dB
    same = build_denoiser("dncnn", pretrained=str(DNCNN))
    assert _same([same], [net])
    with pytest.raises(InputError, match="depth"):
        build_denoiser("dncnn", pretrained=str(DNCNN), depth=20)


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_bank_on_cuda_matches_cpu():
    torch.manual_seed(0)
    bank = DenoiserBank([IRCNNDenoiser(channels=8) for _ in range(3)])
    x = torch.rand(2, 1, 32, 32)
    with torch.no_grad():
        cpu = bank.denoise(x, torch.tensor([0.004, 0.02]))
        gpu = bank.to("cuda").denoise(x.cuda(), torch.tensor([0.004, 0.02]))
    assert gpu.device.type == "cuda" and torch.allclose(gpu.cpu(), cpu, atol=1e-4)
