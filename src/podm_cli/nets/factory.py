"""Build denoiser backbones from the ``denoiser=`` config group (``configs/denoiser/{ircnn,dncnn,unet}.yaml``).

The YAML keys are the keyword arguments: ``build_denoiser(**cfg.denoiser)``, e.g.
``build_denoiser(name="ircnn", channels=64, dilations=[1, 2, 3, 4, 3, 2, 1], pretrained="official",
sigma=25 / 255)``. ``pretrained``:

* ``null`` / ``"none"``: random initialisation;
* ``"official"`` (IRCNN only): a copy of the official Keras bank's net for noise level ``sigma`` (on the
  [0, 1] scale; required), from ``<data root>/weights/ircnn_gray_keras``;
* a path (absolute, relative to the working directory, or relative to the data root): ``.hdf5`` (Keras
  IRCNN), a folder of ``net{i}.hdf5`` (Keras bank; needs ``sigma``), or ``.pth`` (a state dict; for an
  IRCNN bank in the ``ircnn_gray.pth`` layout, ``sigma`` picks the net).

:func:`build_stage_denoisers` gives one network per stage of an unrolled model (RPODM), each initialised
for that stage's noise level.

Example::

    >>> build_denoiser("unet", channels=8, scales=3).__class__.__name__
    'ResUNet'
    >>> len(build_stage_denoisers("ircnn", [49 / 255, 20 / 255], pretrained=None, channels=8))
    2
"""

from __future__ import annotations

import copy
import os
from collections.abc import Sequence
from pathlib import Path

from torch import nn

from podm_cli.errors import InputError
from podm_cli.nets.bank import DenoiserBank, bank_index, default_keras_dir
from podm_cli.nets.dncnn import DnCNN
from podm_cli.nets.ircnn import IRCNN_DILATIONS, IRCNNDenoiser
from podm_cli.nets.unet import ResUNet
from podm_cli.nets.weights import (
    IRCNN_COUNT,
    keras_file,
    load_dncnn,
    load_ircnn_pth,
    load_keras_ircnn,
    load_torch_file,
)
from podm_cli.paths import resolve_model_path

__all__ = ["DENOISERS", "build_denoiser", "build_stage_denoisers"]

#: Backbone names accepted by :func:`build_denoiser`.
DENOISERS = ("ircnn", "dncnn", "unet")

_NO_WEIGHTS = (None, "", "none", "null", "None", False)


def _official_dir(data_root) -> Path:
    """The official Keras bank's folder; a clear error naming the fetch command when it is absent."""
    path = default_keras_dir(data_root)
    if not path.is_dir():
        from podm_cli.errors import DataNotFoundError

        raise DataNotFoundError(f"the official IRCNN bank is missing ({path}); run `podm data fetch weights`")
    return path


def _bank_pick(bank_nets: Sequence[nn.Module], sigma: float | None, what: str) -> nn.Module:
    if len(bank_nets) == 1:
        return bank_nets[0]
    if sigma is None:
        raise InputError(f"{what} holds {len(bank_nets)} denoisers: pass sigma (noise level on [0, 1])")
    return copy.deepcopy(DenoiserBank(bank_nets).net_for(sigma))


def _keras_dir_net(path: Path, sigma: float | None) -> IRCNNDenoiser:
    """Only the file needed: ``net{i}.hdf5`` of the official bank for noise level ``sigma``."""
    if sigma is None:
        raise InputError(f"{path} holds {IRCNN_COUNT} denoisers: pass sigma (noise level on [0, 1])")
    f = path / keras_file(bank_index(sigma))
    if not f.is_file():
        from podm_cli.errors import DataNotFoundError

        raise DataNotFoundError(
            f"IRCNN Keras weights not found: {f} is missing; run `podm data fetch weights`"
        )
    return load_keras_ircnn(f)


def _check_arch(net: IRCNNDenoiser, channels: int, dilations: Sequence[int], where: str) -> None:
    if net.channels != int(channels) or tuple(net.dilations) != tuple(int(d) for d in dilations):
        raise InputError(
            f"{where}: weights are IRCNN(channels={net.channels}, dilations={net.dilations}), config asks "
            f"channels={channels}, dilations={tuple(dilations)}"
        )


def build_denoiser(
    name: str,
    pretrained: str | os.PathLike | None = None,
    sigma: float | None = None,
    in_channels: int = 1,
    data_root: str | os.PathLike | None = None,
    **arch,
) -> nn.Module:
    """One denoiser ``x -> denoised x`` (residual networks, ``(N, C, H, W)`` in and out).

    Args:
        name: ``ircnn`` | ``dncnn`` | ``unet``.
        pretrained: see the module docstring.
        sigma: noise level on [0, 1] used to pick a net from a bank (IRCNN).
        in_channels: image channels (1 = grey).
        data_root: data root for ``official`` and relative paths (default: the locator's).
        **arch: backbone keys from the YAML: ircnn ``channels, dilations``; dncnn ``channels, depth,
            batch_norm``; unet ``channels, scales, blocks``.
    """
    name = str(name).lower()
    if name == "ircnn":
        channels = int(arch.pop("channels", 64))
        dilations = tuple(arch.pop("dilations", IRCNN_DILATIONS))
        _no_extra(name, arch)
        if pretrained in _NO_WEIGHTS:
            return IRCNNDenoiser(in_channels, channels=channels, dilations=dilations)
        if str(pretrained) == "official":
            path = _official_dir(data_root)
        else:
            path = resolve_model_path(pretrained, data_root)
        if path.is_dir():
            net = _keras_dir_net(path, sigma)
        elif path.suffix.lower() in (".hdf5", ".h5"):
            net = load_keras_ircnn(path)
        else:
            net = _bank_pick(load_ircnn_pth(path, dilations), sigma, str(path))
        _check_arch(net, channels, dilations, str(path))
        return net
    if name == "dncnn":
        channels = int(arch.pop("channels", 64))
        depth = int(arch.pop("depth", 17))
        batch_norm = bool(arch.pop("batch_norm", True))
        _no_extra(name, arch)
        if pretrained in _NO_WEIGHTS:
            return DnCNN(in_channels, channels=channels, depth=depth, batch_norm=batch_norm)
        path = resolve_model_path(pretrained, data_root)
        net = load_dncnn(path)
        if net.channels != channels or net.depth != depth:
            raise InputError(
                f"{path}: weights are DnCNN(channels={net.channels}, depth={net.depth}), config asks "
                f"channels={channels}, depth={depth}"
            )
        return net
    if name == "unet":
        kw = {k: int(arch.pop(k)) for k in ("channels", "scales", "blocks") if k in arch}
        _no_extra(name, arch)
        net = ResUNet(in_channels, **kw)
        if pretrained not in _NO_WEIGHTS:
            path = resolve_model_path(pretrained, data_root)
            try:
                net.load_state_dict(load_torch_file(path))
            except RuntimeError as err:
                raise InputError(f"{path}: does not fit ResUNet({kw}) ({str(err).splitlines()[0]})") from None
        return net
    raise InputError(f"unknown denoiser {name!r} (choose from {', '.join(DENOISERS)})")


def build_stage_denoisers(
    name: str, sigmas: Sequence[float], pretrained: str | os.PathLike | None = None, **kwargs
) -> nn.ModuleList:
    """One independent denoiser per stage; ``sigmas`` (on [0, 1]) pick each stage's bank net.

    The bank (or weight file) is read once; every stage gets its own copy of the parameters.
    """
    name = str(name).lower()
    if name == "ircnn" and pretrained not in _NO_WEIGHTS:
        data_root = kwargs.get("data_root")
        path = _official_dir(data_root) if str(pretrained) == "official" else resolve_model_path(pretrained, data_root)
        if path.is_dir() or path.suffix.lower() == ".pth":
            channels = int(kwargs.get("channels", 64))
            dilations = tuple(kwargs.get("dilations", IRCNN_DILATIONS))
            if path.is_dir():  # read each needed net{i}.hdf5 once
                cache: dict[int, IRCNNDenoiser] = {}

                def pick(s: float) -> IRCNNDenoiser:
                    i = bank_index(s)
                    if i not in cache:
                        cache[i] = _keras_dir_net(path, s)
                    return cache[i]

            else:
                bank = DenoiserBank.from_pth(path)
                pick = bank.net_for
            nets = []
            for s in sigmas:
                net = copy.deepcopy(pick(float(s)))
                _check_arch(net, channels, dilations, str(path))
                nets.append(net)
            return nn.ModuleList(nets)
    first = build_denoiser(
        name, pretrained=pretrained, sigma=float(sigmas[0]) if len(sigmas) else None, **kwargs
    )
    return (
        nn.ModuleList([first] + [copy.deepcopy(first) for _ in range(len(sigmas) - 1)])
        if len(sigmas)
        else nn.ModuleList()
    )


def _no_extra(name: str, arch: dict) -> None:
    arch.pop("name", None)
    if arch:
        raise InputError(f"unknown {name} denoiser option(s): {', '.join(sorted(arch))}")
