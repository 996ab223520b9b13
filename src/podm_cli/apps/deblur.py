"""`podm deblur IMAGE [IMAGE|DIR|GLOB ...] kernel=K` (Hydra app; configs/deblur.yaml)."""

from __future__ import annotations

import sys

from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig

from podm_cli.apps.common import boundary_settings, resolve_device
from podm_cli.apps.methods import build_method
from podm_cli.data.locator import data_root


def main(cfg: DictConfig) -> None:
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    from podm_cli.apps import config_dir
    from podm_cli.restore import (
        DeblurOptions,
        check_jobs,
        expand_inputs,
        parse_sigma,
        parse_tile,
        plan_jobs,
        run_job,
    )

    options = DeblurOptions(
        sigma=parse_sigma(cfg.sigma),
        noise_floor=_noise_floor(cfg.noise_floor),
        color=str(cfg.color),
        device=resolve_device(cfg.device),
        tile=parse_tile(cfg.tile),
        overlap=cfg.overlap,
        memory_budget_mb=_positive_number(cfg.memory_budget_mb, "memory_budget_mb"),
        save_stages=bool(cfg.save_stages),
        overwrite=bool(cfg.overwrite),
        skip_existing=bool(cfg.skip_existing),
    )
    if options.color not in ("rgb", "ycbcr"):
        from podm_cli.errors import InputError

        raise InputError(f"color must be rgb or ycbcr, got {options.color!r}")
    # outputs are named by the method as chosen (method=hl -> photo_hl.png); any method's outputs in a folder
    # are not inputs
    tag = HydraConfig.get().runtime.choices.get("method") or "podm"
    known = tuple(p.stem for p in (config_dir() / "method").glob("*.yaml") if not p.stem.startswith("_"))
    jobs = plan_jobs(expand_inputs(list(cfg.inputs), output_tags=(*known, "podm")), cfg.kernel, cfg.out,
                     options.overwrite, options.save_stages, tag=tag, skip_existing=options.skip_existing,
                     kernel_index=cfg.kernel_index)
    root = data_root(cfg.data.root)
    method = build_method(HydraConfig.get().runtime.choices.get("method", "method"), cfg.method, root,
                          boundary=boundary_settings(cfg.operator))
    missing = method.missing(root)
    if missing:
        from podm_cli.errors import DataNotFoundError

        raise DataNotFoundError(missing)
    check_jobs(jobs, method, options)  # every image decoded and checked before the first restoration
    method.to(options.device)

    stderr = Console(stderr=True)
    progress = Progress(
        TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
        console=stderr, transient=True, disable=not (cfg.progress and stderr.is_terminal),
    )
    with progress:
        images = progress.add_task("images", total=len(jobs))
        tiles = progress.add_task("tiles", total=1, visible=False)
        for job in jobs:
            if job.skip:
                progress.advance(images)
                print(f"{job.image}: skipped, {job.output} exists (skip_existing=true)", flush=True)
                continue
            progress.update(images, description=f"images ({job.image.name})")

            def on_plan(plan, _tiles=tiles):
                progress.reset(_tiles, total=plan.n_tiles, visible=plan.tiled)

            def on_tile(done, total, _tiles=tiles):
                progress.update(_tiles, completed=done)

            result = run_job(job, method, options, on_tile=on_tile, on_plan=on_plan)
            progress.advance(images)
            # One line per image on stdout (above the live bar on a terminal; never wrapped).
            print(result.summary(method.name), file=sys.stdout, flush=True)


def _noise_floor(value) -> float:
    from podm_cli.errors import InputError
    from podm_cli.restore import parse_sigma

    sigma = parse_sigma(value)
    if sigma == "auto":
        raise InputError("noise_floor must be a number in [0, 1] (the floor of sigma=auto)")
    return float(sigma)


def _positive_number(value, what: str) -> float:
    from podm_cli.errors import InputError

    try:
        number = float(value)
    except (TypeError, ValueError):
        raise InputError(f"{what} must be a positive number, got {value!r}") from None
    if not number > 0:
        raise InputError(f"{what} must be a positive number, got {value!r}")
    return number
