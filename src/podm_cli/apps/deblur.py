"""`podm deblur IMAGE [IMAGE|DIR|GLOB ...] kernel=K` (Hydra app; configs/deblur.yaml)."""

from __future__ import annotations

from hydra.utils import instantiate
from omegaconf import DictConfig, OmegaConf

from podm_cli.apps.common import resolve_device
from podm_cli.data.locator import data_root


def main(cfg: DictConfig) -> None:
    from rich.console import Console

    from podm_cli.restore import expand_inputs, parse_sigma, plan_jobs, run_job

    console = Console(stderr=False)
    sigma = parse_sigma(cfg.sigma)
    device = resolve_device(cfg.device)
    jobs = plan_jobs(expand_inputs(list(cfg.inputs)), cfg.kernel, cfg.out, cfg.overwrite)
    method_cfg = OmegaConf.to_container(cfg.method, resolve=True)
    method = instantiate(method_cfg, boundary=str(cfg.operator.boundary.value if hasattr(cfg.operator.boundary, "value")
                                                  else cfg.operator.boundary),
                         edgetaper_iterations=cfg.operator.edgetaper_iterations)
    missing = method.missing(data_root(cfg.data.root))
    if missing:
        from podm_cli.errors import DataNotFoundError

        raise DataNotFoundError(missing)
    method.to(device)
    for job in jobs:
        result = run_job(job, method, sigma, cfg.color, device, cfg.overwrite)
        h, w = result.size[-2:]
        console.print(f"{result.image} -> {result.output}  {w}x{h}x{result.size[0]}  "
                      f"{result.seconds:.2f} s  sigma {result.sigma * 255:.2f}/255")
