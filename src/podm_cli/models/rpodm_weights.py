"""RPODM's compact weights file (written by ``podm train``, read by the ``rpodm`` method): ``{"format", "config", "state_dict"}`` saved with :func:`torch.save` and read
back with ``weights_only=True`` (a file from the internet cannot run code).

``config`` holds the keyword arguments of :class:`~podm_cli.models.RPODM` (with ``pretrained`` cleared: the
weights are in the file); extra keys (the train app writes ``trained_for``: operator and noise level, and
``provenance``: command, steps, best validation PSNR) sit beside it.
``state_dict`` is stored in float16 by default (half the size; the restored PSNR moves by < 0.01 dB).

Example::

    >>> import tempfile, torch
    >>> from podm_cli.models import RPODM
    >>> cfg = {"stages": 2, "denoiser": {"name": "ircnn", "channels": 8, "pretrained": None}}
    >>> path = export_weights(RPODM(**cfg), cfg, tempfile.mkdtemp() + "/m.pt")
    >>> load_weights(path).stages
    2
"""

from __future__ import annotations

import copy
import os
from pathlib import Path

import torch

from podm_cli.atomic import atomic_path
from podm_cli.errors import InputError

__all__ = ["FORMAT", "export_weights", "initialise_from", "load_weights", "read_weights_file"]

FORMAT = "podm-rpodm/1"


def export_weights(model: torch.nn.Module, config: dict, path: str | os.PathLike, half: bool = True,
                   **extra) -> Path:
    """Write ``model``'s parameters and buffers with the ``config`` that rebuilds it (atomically)."""
    config = copy.deepcopy(dict(config))
    denoiser = dict(config.get("denoiser") or {})
    denoiser["pretrained"] = None
    config["denoiser"] = denoiser
    config.pop("data_root", None)
    state = {
        k: (v.detach().to("cpu", torch.float16) if half and v.is_floating_point() else v.detach().cpu())
        for k, v in model.state_dict().items()
    }
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(path) as tmp:
        torch.save({"format": FORMAT, "config": config, "state_dict": state, **extra}, tmp)
    return path


def read_weights_file(path: str | os.PathLike) -> dict:
    """The raw content of a weights file (checked format), loaded with ``weights_only=True``."""
    path = Path(path)
    if not path.is_file():
        raise InputError(f"RPODM weights not found: {path}")
    try:
        blob = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # unpickling refused or a corrupt file: one line, not a traceback
        raise InputError(f"{path}: not a loadable RPODM weights file ({str(err).splitlines()[0]})") from None
    if not isinstance(blob, dict) or blob.get("format") != FORMAT:
        raise InputError(f"{path}: not an RPODM weights file (format {FORMAT!r} expected)")
    return blob


def load_weights(path: str | os.PathLike, device: torch.device | str = "cpu"):
    """Rebuild the :class:`~podm_cli.models.RPODM` stored in ``path`` (float32, eval mode). A noise-adaptive
    model trained on a noise range gets it as ``noise_range`` (its learned noise inputs are clamped to it)."""
    from podm_cli.models import RPODM

    blob = read_weights_file(path)
    config = dict(blob["config"])
    sigma = blob.get("trained_for", {}).get("sigma")
    if config.get("noise_input") and isinstance(sigma, (list, tuple)) and "noise_range" not in config:
        config["noise_range"] = list(sigma)  # a noise-adaptive model sees only the noise it was trained on
    try:
        model = RPODM(**config)
        model.load_state_dict({k: v.float() if v.is_floating_point() else v for k, v in blob["state_dict"].items()})
    except (TypeError, RuntimeError) as err:
        raise InputError(f"{path}: weights do not fit their config ({str(err).splitlines()[0]})") from None
    return model.to(device).eval()


def initialise_from(model: torch.nn.Module, path: str | os.PathLike) -> dict[str, list[str]]:
    """Start ``model`` (an :class:`~podm_cli.models.RPODM`) from the weights in ``path``, a model of the same
    stage count that may lack this one's additions: a stage network wrapped for ``noise_input`` takes the
    plain network's weights (its widened first convolution gets them in its first input channels, zeros
    for the noise map), and parameters the file does not have (the ``mu_mode="hypernet"`` network) keep
    their initial values. Returns ``{"copied": [...], "kept": [...]}`` (target parameter names).

    >>> import tempfile
    >>> from podm_cli.models import RPODM
    >>> cfg = {"stages": 2, "denoiser": {"name": "ircnn", "channels": 8, "pretrained": None}}
    >>> path = export_weights(RPODM(**cfg), cfg, tempfile.mkdtemp() + "/m.pt")
    >>> report = initialise_from(RPODM(**cfg, noise_input=True, mu_mode="hypernet"), path)
    >>> sorted({k.split(".")[0] for k in report["kept"]})
    ['hypernet']
    """
    blob = read_weights_file(path)
    source = {k: v.float() if v.is_floating_point() else v for k, v in blob["state_dict"].items()}
    if int(blob["config"].get("stages", -1)) != int(getattr(model, "stages", -2)):
        raise InputError(f"{path}: {blob['config'].get('stages')} stages, the model to initialise has {model.stages}")
    target = model.state_dict()
    copied, kept = [], []
    for name, value in target.items():
        src = source.get(name, source.get(name.replace(".net.", ".", 1)))
        if src is None:
            kept.append(name)
            continue
        if src.shape == value.shape:
            value.copy_(src)
        elif src.ndim == 4 and value.ndim == 4 and src.shape[0] == value.shape[0] and src.shape[1] < value.shape[1]:
            value.zero_()
            value[:, : src.shape[1]] = src  # a widened first convolution: zero weights on the new inputs
        else:
            raise InputError(f"{path}: {name} has shape {tuple(src.shape)}, the model needs {tuple(value.shape)}")
        copied.append(name)
    model.load_state_dict(target)
    return {"copied": copied, "kept": kept}
