"""`podm eval` (Hydra app; configs/eval.yaml): methods x protocols, our numbers beside the paper's."""

from __future__ import annotations

from dataclasses import asdict
from pathlib import Path

import torch
from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig, OmegaConf

from podm_cli.apps.common import boundary_settings, describe_boundary, resolve_device, resolve_dtype
from podm_cli.apps.methods import build_method
from podm_cli.data.datasets import PROTOCOLS
from podm_cli.data.locator import data_root
from podm_cli.errors import PodmError


def build_methods(cfg: DictConfig) -> dict:
    """Instantiate the selected methods from ``method_cfg`` (boundary handling from ``operator``)."""
    available = list(cfg.method_cfg.keys())
    names = list(cfg.methods) if cfg.methods is not None else available
    root = data_root(cfg.data.root)
    return {
        name: build_method(name, cfg.method_cfg.get(name), root, boundary=boundary_settings(cfg.operator))
        for name in names
    }


def apply_suite(cfg: DictConfig) -> tuple[list[str], object, bool]:
    """The datasets and image limits of this run, filling ``cfg.methods`` and ``cfg.sigma`` from the suite
    when they are null.

    ``suite`` (``cpu``: sized for 30 minutes on 2 CPU cores; ``full``: the whole table; ``noise``: the noise
    sweep) gives the methods, datasets (with per-dataset image counts) and noise levels (``sigma``) that
    ``methods=`` / ``datasets=`` / ``sigma=`` do not name; ``limit=`` caps every dataset. Returns (dataset
    names, limit: a number, None or ``{name: number}``, whether the run is the suite's own default).
    """
    suites = OmegaConf.to_container(cfg.suites, resolve=True)
    if cfg.suite not in suites:
        raise PodmError(f"unknown suite '{cfg.suite}' (suites: {', '.join(suites)})")
    suite = suites[cfg.suite]
    is_default = cfg.methods is None and cfg.datasets is None and cfg.limit is None and cfg.sigma is None
    if cfg.methods is None:
        cfg.methods = suite.get("methods")  # null: every configured method
    if cfg.sigma is None:
        cfg.sigma = suite.get("sigma")  # null: every protocol at its own noise level
    if cfg.datasets is not None:
        names, limit = list(cfg.datasets), cfg.limit
    else:
        counts = suite["datasets"]
        names, limit = list(counts), cfg.limit if cfg.limit is not None else counts
    if isinstance(limit, dict) and all(v is None for v in limit.values()):
        limit = None
    return names, limit, is_default


def method_fingerprints(cfg: DictConfig, methods: dict) -> dict[str, str]:
    """Per method, the hash of what determines its rows (its config with the operator settings it was built
    with, the files it names, podm's version): ``resume=true`` recomputes rows whose hash changed."""
    from podm_cli.evaluation.runner import method_fingerprint

    return {name: method_fingerprint(method, {**OmegaConf.to_container(cfg.method_cfg[name], resolve=True),
                                              "operator": asdict(method.boundary_handling)})
            for name, method in methods.items()}


def record_boundaries(outcome, methods: dict) -> list[str]:
    """Each row on a ``valid`` protocol records the boundary handling its method ran with; one notice line."""
    valid = {name for name, p in outcome.protocols.items() if p.get("mode") == "valid"}
    used = {name: describe_boundary(method.boundary_handling) for name, method in methods.items()}
    for row in outcome.rows:
        row["boundary"] = used[row["method"]] if row["dataset"] in valid else "-"
    ran = sorted({row["method"] for row in outcome.rows if row["dataset"] in valid})
    return [f"boundary on valid data: {'; '.join(f'{n} {used[n]}' for n in ran)}"] if ran else []


def record_input_sigma(datasets: list, methods: dict) -> list[str]:
    """One notice line per protocol whose kernel is approximate: which methods raised the input noise level."""
    lines = []
    for dataset in datasets:
        if dataset.kernel != "approximate":
            continue
        raised = [f"{n} x{m.approximate_kernel_sigma_scale:g}" for n, m in methods.items()
                  if m.approximate_kernel_sigma_scale != 1.0]
        lines.append(f"{dataset.protocol}: the kernel is approximate (recovered from the capture); input sigma "
                     f"{dataset.sigma * 255:g}/255" + (f", raised for {', '.join(raised)} (docs/noise_level.md)"
                                                        if raised else " for every method"))
    return lines


def record_weight_sets(outcome, datasets: list, methods: dict) -> list[str]:
    """One notice line per method that picks its weights by noise level (FDN): the set used on each protocol."""
    ran = {(row["method"], row["dataset"]) for row in outcome.rows}
    lines = []
    for name, method in methods.items():
        used = [(d.protocol, method.weights_for(method.input_sigma(d.sigma, d.kernel)))
                for d in datasets if (name, d.protocol) in ran]
        if used and used[0][1] is not None:
            lines.append(f"{name} weights: " + "; ".join(f"{p} {w}" for p, w in used))
    return lines


def main(cfg: DictConfig) -> None:
    from podm_cli.evaluation.report import print_table, write_reports
    from podm_cli.evaluation.runner import EvalRunner, describe_plan, noise_levels, resolve_datasets

    out_dir = Path(HydraConfig.get().runtime.output_dir)
    if cfg.resume and not (out_dir / "per_image.csv").is_file():
        raise PodmError(f"resume=true: {out_dir} holds no earlier run to continue (no per_image.csv); pass "
                        f"hydra.run.dir=<the directory of the interrupted run>")
    names, limit, is_default = apply_suite(cfg)
    sigmas = noise_levels(OmegaConf.to_container(cfg.sigma) if OmegaConf.is_config(cfg.sigma) else cfg.sigma)
    unknown = [d for d in names if d not in PROTOCOLS]
    if unknown:
        raise PodmError(f"unknown dataset '{unknown[0]}' (protocols: {', '.join(PROTOCOLS)})")
    device, dtype = resolve_device(cfg.device), resolve_dtype(cfg.dtype)
    torch.manual_seed(cfg.seed)
    if cfg.limit is not None and cfg.limit < 1:
        raise PodmError(f"limit must be >= 1 (or null for every image), got {cfg.limit}")
    methods = build_methods(cfg)
    root = data_root(cfg.data.root)
    datasets, notices = resolve_datasets(names, root, limit, sigmas)
    plan, _ = describe_plan(list(methods), datasets, device)
    print(plan, flush=True)
    if is_default and cfg.suite == "cpu":
        full = OmegaConf.to_container(cfg.suites, resolve=True).get("full", {})
        full_names = list(full.get("datasets", {}))
        full_methods = full.get("methods") or list(cfg.method_cfg.keys())
        _, seconds = describe_plan(full_methods, resolve_datasets(full_names, root, None)[0], device)
        when = f" (estimated {seconds / 3600:.1f} h on 2 CPU cores)" if seconds else ""
        print(f"this is podm eval's CPU-sized default (a labelled subset); the full table: podm eval suite=full{when}",
              flush=True)
        notices.append("CPU-sized default suite (suite=cpu): a subset of methods and images; the full table is "
                       "`podm eval suite=full`")
    runner = EvalRunner(
        methods,
        datasets,
        out_dir,
        resume=cfg.resume,
        device=device,
        dtype=dtype,
        batch_size=cfg.batch_size,
        fingerprints=method_fingerprints(cfg, methods),
    )
    outcome = runner.run()
    outcome.notices.extend(notices + record_boundaries(outcome, methods) + record_input_sigma(datasets, methods)
                           + record_weight_sets(outcome, datasets, methods))
    print_table(outcome.rows, outcome.skipped, outcome.notices)
    write_reports(outcome, out_dir, OmegaConf.to_container(cfg, resolve=True, enum_to_str=True),
                  figures=cfg.report)
    print(f"results: {out_dir}")
