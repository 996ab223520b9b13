"""Every primary config (``configs/*.yaml``) composes with every option of every group it uses, and what the
composed config describes is instantiated: methods (through ``build_method``), priors, RPODM with each
denoiser, the Lightning trainer, loggers and callbacks. Nothing runs; no data is needed."""

from __future__ import annotations

import importlib.util
from dataclasses import asdict
from pathlib import Path

import pytest
import torch
from hydra import compose, initialize_config_dir
from omegaconf import OmegaConf, open_dict

from podm_cli.apps import app_overrides, config_dir
from podm_cli.apps.common import boundary_settings, method_boundary
from podm_cli.apps.methods import build_method, method_names
from podm_cli.apps.schema import register_schemas

CONFIGS = config_dir()
PRIMARIES = sorted(p.stem for p in CONFIGS.glob("*.yaml"))
#: Groups added with ``+group=option`` (not in a defaults list) and the primary they belong to.
EXTRA_GROUPS = {"experiment": "train", "launcher": "train"}
#: Options that need an optional plugin (pyproject extras), and that plugin's module.
PLUGINS = {("hparams_search", "optuna"): "hydra_plugins.hydra_optuna_sweeper",
           ("launcher", "slurm"): "hydra_plugins.hydra_submitit_launcher"}


def _options(group: str) -> list[str]:
    return sorted(p.stem for p in (CONFIGS / group).glob("*.yaml") if not p.stem.startswith("_"))


def _groups(primary: str) -> list[tuple[str, str]]:
    """``(group, override key)`` of each group in ``primary``'s defaults list (``method@podm`` keeps its package)."""
    out = []
    for entry in OmegaConf.load(CONFIGS / f"{primary}.yaml").get("defaults", []):
        if not OmegaConf.is_dict(entry):
            continue
        for key in entry:
            group = key.replace("optional ", "").split("@")[0]
            if group != "hydra" and (CONFIGS / group).is_dir():
                out.append((group, key.replace("optional ", "")))
    return out


def _cases():
    for primary in PRIMARIES:
        yield pytest.param(primary, None, id=primary)
        for group, key in _groups(primary):
            for option in _options(group):
                yield pytest.param(primary, f"{key}={option}", id=f"{primary}-{key}={option}")
    for group, primary in EXTRA_GROUPS.items():
        for option in _options(group):
            yield pytest.param(primary, f"+{group}={option}", id=f"{primary}-+{group}={option}")


def _installed(module: str) -> bool:
    try:
        return importlib.util.find_spec(module) is not None
    except ModuleNotFoundError:
        return False


def _compose(primary: str, overrides: list[str]):
    register_schemas()
    with initialize_config_dir(config_dir=str(CONFIGS), version_base="1.3"):
        return compose(primary, overrides=app_overrides(primary, overrides), return_hydra_config=False)


def test_every_config_group_is_used():
    """A group folder nothing composes is dead config."""
    used = {g for p in PRIMARIES for g, _ in _groups(p)} | set(EXTRA_GROUPS) | {"hydra"}
    assert sorted(p.name for p in CONFIGS.iterdir() if p.is_dir()) == sorted(used)


@pytest.mark.parametrize("primary,override", list(_cases()))
def test_config_composes_and_instantiates(primary, override, tmp_path):
    group_option = tuple(override.lstrip("+").split("=")) if override else None
    if group_option in PLUGINS and not _installed(PLUGINS[group_option]):
        pytest.skip(f"{override} needs an optional plugin ({PLUGINS[group_option]})")
    cfg = _compose(primary, [override] if override else [])
    instantiate = {"eval": _eval, "deblur": _deblur, "converge": _converge, "train": _train}[primary]
    instantiate(cfg, tmp_path)


def _eval(cfg, tmp_path):
    assert sorted(cfg.method_cfg) == method_names()
    assert cfg.methods is None or set(cfg.methods) <= set(method_names())
    for name in cfg.method_cfg:
        settings = boundary_settings(cfg.operator)
        method = build_method(name, cfg.method_cfg[name], tmp_path, boundary=settings)
        own = name == "fdn"  # FDN keeps the boundary handling its weights were trained with (docs/fdn.md)
        assert own or asdict(method.boundary_handling) == {**asdict(method.boundary_handling),
                                                           **method_boundary(settings, name)}
        assert method.bytes_per_pixel > 0


def _deblur(cfg, tmp_path):
    assert cfg.method._target_.startswith("podm_cli.methods.")
    assert build_method("method", cfg.method, tmp_path).bytes_per_pixel > 0


def _converge(cfg, tmp_path):
    from podm_cli.priors.factory import build_prior

    build_prior(**OmegaConf.to_container(cfg.prior))
    for key in ("podm", "ircnn"):
        build_method(key, cfg[key], tmp_path)


def _train(cfg, tmp_path):
    import lightning as L

    from podm_cli.apps.train import _callbacks, _logger, model_kwargs
    from podm_cli.models import RPODM

    with open_dict(cfg):
        cfg.denoiser.pretrained = None  # the official bank is data; a random init builds the same modules
        for logger in (cfg.get("logger") or {}).values():
            logger.save_dir = str(tmp_path)
    model = RPODM(**model_kwargs(cfg, tmp_path))
    assert model.stages == cfg.model.stages
    trainer = OmegaConf.to_container(cfg.trainer, resolve=True)
    if trainer.get("accelerator") in ("gpu", "cuda") and not torch.cuda.is_available():
        return
    L.Trainer(**trainer, logger=_logger(cfg), callbacks=_callbacks(cfg, Path(tmp_path) / "ckpt"),
              default_root_dir=str(tmp_path))
