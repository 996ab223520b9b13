"""Weight importers: the official IRCNN grey denoisers from Keras HDF5, IRCNN banks and DnCNN models from
PyTorch state dicts, and an exporter to the public ``ircnn_gray.pth`` layout.

Keras HDF5 (Keras 2.x ``model.save``, e.g. the 25 files ``net{1..25}.hdf5`` shipped with PODM):

* the file attribute ``model_config`` (JSON) lists the layers *in network order* -- ``Conv2D`` entries
  with ``dilation_rate``, ``padding``, ``activation``, interleaved with ``Activation('relu')`` layers. The
  layer names (``conv2d_8`` ... ``conv2d_14`` in ``net1``) must not be sorted as strings: ``conv2d_10``
  would come before ``conv2d_8``;
* weights sit at ``model_weights/<layer>/<layer>/kernel:0`` with shape ``(kh, kw, in, out)`` and
  ``.../bias:0``; the group's ``weight_names`` attribute names them. Keras convolutions are
  cross-correlations like PyTorch's, so the PyTorch weight is ``kernel.permute(3, 2, 0, 1)``
  (out, in, kh, kw); ``padding='same'`` with dilation ``d`` on a 3x3 kernel is zero padding ``d``.

PyTorch ``ircnn_gray.pth`` (KAIR / DPIR model zoo): a dict with the 25 keys ``'0'`` ... ``'24'``; key ``i``
holds the state dict of the denoiser for sigma ``2 (i + 1)`` on [0, 255], whose keys are
``model.0.weight``, ``model.0.bias``, ``model.2.weight``, ... ``model.12.bias`` (convolutions at the even
positions of an ``nn.Sequential`` with ReLUs at the odd ones) -- the same keys as
:class:`~podm_cli.nets.ircnn.IRCNNDenoiser`. KAIR's scripts select sub-dict ``str(ceil(sigma/2) - 1)``.
:func:`ircnn_nets_from_state` also accepts the flattened form (``'<i>.model.<j>.weight'`` or
``'<i>.<j>.weight'``) and a :class:`~podm_cli.nets.bank.DenoiserBank` state dict (``nets.<i>.model...``).

Every ``.pth`` is read with ``torch.load(..., weights_only=True)``: a file from the internet cannot run
code while loading.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import Tensor

from podm_cli.errors import DataNotFoundError, InputError
from podm_cli.nets.dncnn import DnCNN
from podm_cli.nets.ircnn import IRCNN_DILATIONS, IRCNNDenoiser

__all__ = [
    "IRCNN_COUNT",
    "KERAS_RELPATH",
    "KerasConv",
    "export_ircnn_pth",
    "ircnn_nets_from_state",
    "ircnn_pth_state",
    "keras_file",
    "load_dncnn",
    "load_ircnn_pth",
    "load_keras_ircnn",
    "load_keras_ircnn_dir",
    "load_torch_file",
    "read_keras_convs",
]

#: Where the official Keras IRCNN grey bank lives under the data root.
KERAS_RELPATH = "weights/ircnn_gray_keras"
#: Number of networks in the official bank (net i is trained for sigma = 2 i on [0, 255]).
IRCNN_COUNT = 25


def keras_file(index: int) -> str:
    """File name of the official bank's net for 0-based ``index`` (``net{index + 1}.hdf5``)."""
    return f"net{int(index) + 1}.hdf5"


@dataclass(frozen=True)
class KerasConv:
    """One convolution read from a Keras file, already in PyTorch layout."""

    name: str
    dilation: int
    relu_after: bool
    weight: Tensor  # (out, in, kh, kw), float32
    bias: Tensor  # (out,)


def _attr_str(value) -> str:
    return value.decode("utf-8") if isinstance(value, (bytes, bytearray)) else str(value)


def _config_layers(config: dict) -> list[dict]:
    inner = config.get("config")
    if isinstance(inner, list):  # Keras 2.2 Sequential
        return inner
    if isinstance(inner, dict) and isinstance(inner.get("layers"), list):  # Sequential (2.3+) / Model
        return inner["layers"]
    raise InputError("Keras model_config has no layer list")


def _pair(v, name: str, where: str) -> int:
    vals = list(v) if isinstance(v, (list, tuple)) else [v, v]
    if len(vals) != 2 or vals[0] != vals[1]:
        raise InputError(f"{where}: layer {name} has non-square {vals}; only square kernels/dilations load")
    return int(vals[0])


def _dataset_names(group) -> list[str]:
    import h5py

    found: list[str] = []
    group.visit(lambda n: found.append(n) if isinstance(group[n], h5py.Dataset) else None)
    return found


def open_hdf5(path: str | os.PathLike, what: str, hint: str = ""):
    """``h5py.File(path, "r")``, or one line: :class:`DataNotFoundError` ("``what`` not found: path``hint``")
    for an absent file, :class:`InputError` for one that is not HDF5. Nothing is unpickled."""
    import h5py

    p = Path(path)
    if not p.is_file():
        raise DataNotFoundError(f"{what} not found: {p}{hint}")
    try:
        return h5py.File(p, "r")
    except OSError as err:
        raise InputError(f"{p}: not a readable HDF5 file ({err})") from None


def read_keras_convs(path: str | os.PathLike) -> list[KerasConv]:
    """The convolutions of a Keras HDF5 model in network order (from ``model_config``, never sorted names).

    Supports plain stacks of ``Conv2D`` (3x3, stride 1, ``same`` padding, channels_last) with ReLU either
    as ``Activation`` / ``ReLU`` layers or as the conv's own activation; anything else raises
    :class:`~podm_cli.errors.InputError` (one line).
    """
    p = Path(path)
    with open_hdf5(p, "Keras weight file") as f:
        if "model_config" not in f.attrs:
            raise InputError(f"{p}: no 'model_config' attribute (a Keras model.save() file is needed)")
        config = json.loads(_attr_str(f.attrs["model_config"]))
        layers = _config_layers(config)
        weights_root = f.get("model_weights", f)
        specs: list[dict] = []
        for layer in layers:
            kind, cfg = layer.get("class_name"), layer.get("config", {})
            name = cfg.get("name", "?")
            if kind == "InputLayer":
                continue
            if kind == "Conv2D":
                if _pair(cfg.get("kernel_size", 3), name, str(p)) != 3:
                    raise InputError(f"{p}: layer {name} is not 3x3")
                if _pair(cfg.get("strides", 1), name, str(p)) != 1 or cfg.get("padding") != "same":
                    raise InputError(f"{p}: layer {name} needs stride 1 and padding 'same'")
                if cfg.get("data_format", "channels_last") != "channels_last":
                    raise InputError(f"{p}: layer {name} is not channels_last")
                act = cfg.get("activation", "linear")
                if act not in ("linear", "relu"):
                    raise InputError(f"{p}: layer {name} has unsupported activation {act!r}")
                specs.append(
                    {
                        "name": name,
                        "dilation": _pair(cfg.get("dilation_rate", 1), name, str(p)),
                        "relu": act == "relu",
                    }
                )
            elif (kind == "Activation" and cfg.get("activation") == "relu") or kind == "ReLU":
                if not specs or specs[-1]["relu"]:
                    raise InputError(f"{p}: ReLU layer {name} does not follow a convolution")
                specs[-1]["relu"] = True
            else:
                raise InputError(f"{p}: unsupported Keras layer {kind} ({name}); expected Conv2D/ReLU only")
        if not specs:
            raise InputError(f"{p}: no Conv2D layers in model_config")
        convs = []
        for s in specs:
            if s["name"] not in weights_root:
                raise InputError(f"{p}: weights of layer {s['name']} are missing")
            g = weights_root[s["name"]]
            names = [_attr_str(n) for n in g.attrs.get("weight_names", [])]
            if not names:  # fall back to whatever datasets the group holds
                names = _dataset_names(g)
            kernel = next((n for n in names if "kernel" in n.rsplit("/", 1)[-1]), None)
            bias = next((n for n in names if "bias" in n.rsplit("/", 1)[-1]), None)
            if kernel is None or bias is None:
                raise InputError(f"{p}: layer {s['name']} lacks kernel/bias weights")
            k = np.asarray(g[kernel][()], dtype=np.float32)
            b = np.asarray(g[bias][()], dtype=np.float32)
            if k.ndim != 4 or k.shape[:2] != (3, 3) or b.shape != (k.shape[3],):
                raise InputError(f"{p}: layer {s['name']} kernel {tuple(k.shape)} is not (3, 3, in, out)")
            # (kh, kw, in, out) -> (out, in, kh, kw), i.e. permute(3, 2, 0, 1); laid out channels_last
            # (memory order out, kh, kw, in) by NumPy so no torch copy is needed later.
            w = torch.from_numpy(np.ascontiguousarray(k.transpose(3, 0, 1, 2))).permute(0, 3, 1, 2)
            convs.append(KerasConv(s["name"], s["dilation"], s["relu"], w, torch.from_numpy(b.copy())))
    return convs


def _channels_last_copy(w: Tensor) -> Tensor:
    """A fresh copy of ``w`` in channels_last memory. On CPU NumPy makes the copy (one thread): torch's
    intra-op threads are slow to start for hundreds of small tensors on a busy machine."""
    t = w.detach()
    if t.device.type != "cpu" or t.dtype not in (torch.float32, torch.float64):
        return t.clone(memory_format=torch.channels_last)
    a = np.array(t.numpy().transpose(0, 2, 3, 1), order="C", copy=True)
    return torch.from_numpy(a).permute(0, 3, 1, 2)


def _fresh_copy(v: Tensor) -> Tensor:
    """A contiguous copy of ``v`` on its device (NumPy makes it for float CPU tensors, as above)."""
    t = v.detach()
    if t.device.type == "cpu" and t.dtype in (torch.float32, torch.float64):
        return torch.from_numpy(np.array(t.numpy(), order="C", copy=True))
    return t.clone(memory_format=torch.contiguous_format)


def _ircnn_from_convs(weights: Sequence[tuple[Tensor, Tensor]], dilations: Sequence[int], where: str):
    """An IRCNN holding copies of ``weights`` (built on the meta device, then the copies are assigned)."""
    first, last = weights[0][0], weights[-1][0]
    with torch.device("meta"):
        net = IRCNNDenoiser(
            in_channels=first.shape[1],
            out_channels=last.shape[0],
            channels=first.shape[0],
            dilations=dilations,
        )
    state = {}
    for j, (conv, (w, b)) in enumerate(zip(net.convs, weights)):
        if tuple(conv.weight.shape) != tuple(w.shape) or tuple(conv.bias.shape) != tuple(b.shape):
            raise InputError(
                f"{where}: weight {tuple(w.shape)} does not fit an IRCNN layer {tuple(conv.weight.shape)}"
            )
        state[f"model.{2 * j}.weight"], state[f"model.{2 * j}.bias"] = (
            _channels_last_copy(w.float()),
            _fresh_copy(b.float()),
        )
    net.load_state_dict(state, strict=True, assign=True)
    return net.eval()


def load_keras_ircnn(path: str | os.PathLike) -> IRCNNDenoiser:
    """One IRCNN denoiser from a Keras HDF5 file (dilations and layer order taken from the file)."""
    convs = read_keras_convs(path)
    if any(not c.relu_after for c in convs[:-1]) or convs[-1].relu_after:
        raise InputError(f"{path}: not an IRCNN-style stack (ReLU after every conv but the last)")
    return _ircnn_from_convs([(c.weight, c.bias) for c in convs], [c.dilation for c in convs], str(path))


def load_keras_ircnn_dir(path: str | os.PathLike, count: int = IRCNN_COUNT) -> list[IRCNNDenoiser]:
    """The official bank: ``net1.hdf5`` ... ``net{count}.hdf5`` from ``path``, in noise-level order."""
    d = Path(path)
    missing = [keras_file(i) for i in range(count) if not (d / keras_file(i)).is_file()]
    if missing:
        raise DataNotFoundError(
            f"IRCNN Keras weights not found: {d / missing[0]} is missing"
            + (f" (and {len(missing) - 1} more)" if len(missing) > 1 else "")
            + "; run `podm data fetch weights`"
        )
    return [load_keras_ircnn(d / keras_file(i)) for i in range(count)]


# -- PyTorch state dicts -------------------------------------------------------------------------------
def load_torch_file(path: str | os.PathLike):
    """``torch.load(path, map_location='cpu', weights_only=True)`` with one-line errors."""
    p = Path(path)
    if not p.is_file():
        raise DataNotFoundError(f"weight file not found: {p}")
    try:
        return torch.load(p, map_location="cpu", weights_only=True)
    except Exception as err:  # noqa: BLE001 - unpickling errors come in many types
        first = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise InputError(f"{p}: cannot load as a weights-only PyTorch file ({first})") from None


def _unwrap(obj):
    """Common containers around a state dict: ``{'state_dict': ...}``, ``{'params': ...}`` etc."""
    if isinstance(obj, Mapping):
        for key in ("state_dict", "params_ema", "params", "model_state_dict", "net"):
            if key in obj and isinstance(obj[key], Mapping) and len(obj) <= 3:
                return obj[key]
    return obj


def _relative_keys(state: Mapping[str, Tensor]) -> dict[str, Tensor]:
    out = {}
    for k, v in state.items():
        for prefix in ("module.", "model."):
            k = k.removeprefix(prefix)
        out[k] = v
    return out


def _ircnn_from_state(state: Mapping[str, Tensor], dilations: Sequence[int], where: str) -> IRCNNDenoiser:
    rel = _relative_keys(state)
    idx = sorted({int(m.group(1)) for k in rel if (m := re.fullmatch(r"(\d+)\.weight", k))})
    if len(idx) != len(dilations):
        raise InputError(
            f"{where}: {len(idx)} conv layers, expected {len(dilations)} (dilations {tuple(dilations)})"
        )
    extra = set(rel) - {f"{i}.{p}" for i in idx for p in ("weight", "bias")}
    if extra:
        raise InputError(f"{where}: unexpected keys {sorted(extra)[:3]} for an IRCNN state dict")
    try:
        weights = [(rel[f"{i}.weight"].float(), rel[f"{i}.bias"].float()) for i in idx]
    except KeyError as err:
        raise InputError(f"{where}: missing bias {err}") from None
    return _ircnn_from_convs(weights, dilations, where)


def ircnn_nets_from_state(
    obj, dilations: Sequence[int] = IRCNN_DILATIONS, where: str = "state dict"
) -> list[IRCNNDenoiser]:
    """IRCNN denoisers from a loaded ``.pth`` object (see the module docstring for the accepted layouts).

    A single net's state dict (keys ``model.<j>.*`` / ``<j>.*`` with ``<j>`` the Sequential position)
    gives a one-element list.
    """
    obj = _unwrap(obj)
    if not isinstance(obj, Mapping) or not obj:
        raise InputError(f"{where}: expected a dict of tensors or of state dicts, got {type(obj).__name__}")
    if all(isinstance(v, Mapping) for v in obj.values()):  # {'0': sd, '1': sd, ...}
        try:
            keys = sorted(obj, key=lambda k: int(k))
        except (TypeError, ValueError):
            raise InputError(f"{where}: sub-state-dict keys must be integers, got {list(obj)[:3]}") from None
        if [int(k) for k in keys] != list(range(len(keys))):
            raise InputError(f"{where}: sub-state-dict keys must be 0..{len(keys) - 1}, got {keys[:5]}...")
        return [_ircnn_from_state(obj[k], dilations, f"{where}[{k}]") for k in keys]
    if not all(isinstance(v, Tensor) for v in obj.values()):
        raise InputError(f"{where}: mixes tensors and non-tensors")
    state = {(k.removeprefix("nets.")): v for k, v in obj.items()}
    if _is_single_net(state):
        return [_ircnn_from_state(state, dilations, where)]
    # a flattened bank: '<i>.model.<j>.weight' or '<i>.<j>.weight'
    groups: dict[int, dict[str, Tensor]] = {}
    for k, v in state.items():
        m = re.fullmatch(r"(\d+)\.(.+)", k)
        if not m:
            raise InputError(f"{where}: unexpected key {k!r} for an IRCNN state dict or bank")
        groups.setdefault(int(m.group(1)), {})[m.group(2)] = v
    if sorted(groups) != list(range(len(groups))):
        raise InputError(f"{where}: network indices must be 0..{len(groups) - 1}")
    return [_ircnn_from_state(groups[i], dilations, f"{where}[{i}]") for i in sorted(groups)]


def _is_single_net(state: Mapping[str, Tensor]) -> bool:
    rel = _relative_keys(state)
    return all(re.fullmatch(r"\d+\.(weight|bias)", k) for k in rel)


def load_ircnn_pth(
    path: str | os.PathLike, dilations: Sequence[int] = IRCNN_DILATIONS
) -> list[IRCNNDenoiser]:
    """IRCNN denoisers from a ``.pth`` file (``ircnn_gray.pth`` layout, or a single net)."""
    return ircnn_nets_from_state(load_torch_file(path), dilations, where=str(path))


def ircnn_pth_state(nets: Sequence[torch.nn.Module]) -> dict[str, dict[str, Tensor]]:
    """``{'0': state_dict, ..., '24': state_dict}`` (CPU, contiguous): the ``ircnn_gray.pth`` layout."""
    return {
        str(i): {k: _fresh_copy(v.to("cpu")) for k, v in net.state_dict().items()}
        for i, net in enumerate(nets)
    }


def export_ircnn_pth(nets: Sequence[torch.nn.Module], path: str | os.PathLike) -> Path:
    """Save ``nets`` in the ``ircnn_gray.pth`` layout (readable by KAIR/DPIR and :func:`load_ircnn_pth`)."""
    p = Path(path)
    p.parent.mkdir(parents=True, exist_ok=True)
    tmp = p.with_name(p.name + ".tmp")
    torch.save(ircnn_pth_state(nets), tmp)
    os.replace(tmp, p)
    return p


def load_dncnn(source) -> DnCNN:
    """A DnCNN from a ``.pth`` path or an already-loaded state dict (BN or BN-folded layout)."""
    where = str(source) if isinstance(source, (str, os.PathLike)) else "state dict"
    state = load_torch_file(source) if isinstance(source, (str, os.PathLike)) else source
    state = _unwrap(state)
    if not isinstance(state, Mapping) or not all(isinstance(v, Tensor) for v in state.values()):
        raise InputError(f"{where}: not a flat DnCNN state dict")
    try:
        return DnCNN.from_state_dict(state).eval()
    except (ValueError, RuntimeError) as err:
        first = str(err).strip().splitlines()[0]
        raise InputError(f"{where}: cannot load as DnCNN ({first})") from None
