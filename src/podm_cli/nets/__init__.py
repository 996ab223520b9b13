"""Denoiser backbones (IRCNN, DnCNN, a residual UNet), the 25-network IRCNN bank and weight importers.

* :class:`IRCNNDenoiser`, :class:`DnCNN`, :class:`ResUNet`: residual denoisers ``x -> x - net(x)``.
* :class:`DenoiserBank`: noise-level-specific nets, ``bank.denoise(x, sigma)`` with ``sigma`` on [0, 1];
  ``DenoiserBank.from_keras_dir()`` (official Keras bank), ``DenoiserBank.from_pth(path)``.
* :func:`build_denoiser` / :func:`build_stage_denoisers`: the ``denoiser=`` config group.
* :mod:`podm_cli.nets.weights`: Keras HDF5 and ``.pth`` importers, ``ircnn_gray.pth`` exporter.
"""

from podm_cli.nets.bank import DenoiserBank, bank_index, default_keras_dir, official_sigmas
from podm_cli.nets.dncnn import DnCNN
from podm_cli.nets.factory import DENOISERS, build_denoiser, build_stage_denoisers
from podm_cli.nets.ircnn import IRCNN_DILATIONS, IRCNNDenoiser
from podm_cli.nets.unet import ResUNet
from podm_cli.nets.weights import (
    IRCNN_COUNT,
    KERAS_RELPATH,
    export_ircnn_pth,
    load_dncnn,
    load_ircnn_pth,
    load_keras_ircnn,
    load_keras_ircnn_dir,
    read_keras_convs,
)

__all__ = [
    "DENOISERS",
    "IRCNN_COUNT",
    "IRCNN_DILATIONS",
    "KERAS_RELPATH",
    "DenoiserBank",
    "DnCNN",
    "IRCNNDenoiser",
    "ResUNet",
    "bank_index",
    "build_denoiser",
    "build_stage_denoisers",
    "default_keras_dir",
    "export_ircnn_pth",
    "load_dncnn",
    "load_ircnn_pth",
    "load_keras_ircnn",
    "load_keras_ircnn_dir",
    "official_sigmas",
    "read_keras_convs",
]
