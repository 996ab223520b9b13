"""`podm eval` (Hydra app; configs/eval.yaml): methods x protocols, our numbers beside the paper's."""

from __future__ import annotations

from pathlib import Path

import torch
from hydra.core.hydra_config import HydraConfig
from hydra.utils import instantiate
from omegaconf import DictConfig, OmegaConf

from podm_cli.apps.common import boundary_settings, resolve_device, resolve_dtype
from podm_cli.data.datasets import PROTOCOLS
from podm_cli.data.locator import data_root
from podm_cli.errors import PodmError


def build_methods(cfg: DictConfig) -> dict:
    """Instantiate the selected methods from ``method_cfg`` (boundary handling from ``operator``)."""
    available = list(cfg.method_cfg.keys())
    names = list(cfg.methods) if cfg.methods is not None else available
    unknown = [n for n in names if n not in cfg.method_cfg]
    if unknown:
        raise PodmError(f"unknown method '{unknown[0]}' (available: {', '.join(available) or 'none'})")
    return {
        name: instantiate(cfg.method_cfg[name]).with_boundary(**boundary_settings(cfg.operator))
        for name in names
    }


def main(cfg: DictConfig) -> None:
    from podm_cli.evaluation.report import print_table, write_reports
    from podm_cli.evaluation.runner import EvalRunner, resolve_datasets

    unknown = [d for d in cfg.datasets if d not in PROTOCOLS]
    if unknown:
        raise PodmError(f"unknown dataset '{unknown[0]}' (protocols: {', '.join(PROTOCOLS)})")
    device, dtype = resolve_device(cfg.device), resolve_dtype(cfg.dtype)
    out_dir = Path(HydraConfig.get().runtime.output_dir)
    torch.manual_seed(cfg.seed)
    if cfg.limit is not None and cfg.limit < 1:
        raise PodmError(f"limit must be >= 1 (or null for every image), got {cfg.limit}")
    methods = build_methods(cfg)
    datasets, notices = resolve_datasets(list(cfg.datasets), data_root(cfg.data.root), cfg.limit)
    runner = EvalRunner(
        methods,
        datasets,
        out_dir,
        resume=cfg.resume,
        device=device,
        dtype=dtype,
        batch_size=cfg.batch_size,
    )
    outcome = runner.run()
    outcome.notices.extend(notices)
    print_table(outcome.rows, outcome.skipped, outcome.notices)
    write_reports(outcome, out_dir, OmegaConf.to_container(cfg, resolve=True, enum_to_str=True),
                  figures=cfg.report)
    print(f"results: {out_dir}")
