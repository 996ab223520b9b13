"""`podm converge` (Hydra app; configs/converge.yaml): the paper's Fig. 2 convergence study.

The logic lives in :mod:`podm_cli.evaluation.convergence`; this app only turns the composed config into
plain arguments, writes into the Hydra run dir and prints the summary.
"""

from __future__ import annotations

import sys
from pathlib import Path

from omegaconf import DictConfig, OmegaConf


def main(cfg: DictConfig) -> None:
    from hydra.core.hydra_config import HydraConfig

    from podm_cli.evaluation.convergence import check_methods, load_study_sample, run_convergence
    from podm_cli.evaluation.convergence_output import summary_lines, write_study

    c = OmegaConf.to_container(cfg, resolve=True)
    check_methods(c["methods"])  # fail before loading data
    out_dir = Path(HydraConfig.get().runtime.output_dir)
    root = (c.get("data") or {}).get("root")
    sample = load_study_sample(
        c["dataset"], c["image"], c["kernel"], root=root, sigma=c.get("sigma"), crop=c.get("crop"),
        seed=int(c.get("seed") or 0),
    )
    print(f"podm converge: {sample.protocol} {sample.name}, methods {', '.join(c['methods'])} -> {out_dir}",
          file=sys.stderr)
    report = run_convergence(
        sample,
        methods=c["methods"],
        prior=c.get("prior"),
        max_iterations=int(c["max_iterations"]),
        tolerance=float(c["tolerance"]),
        podm=c.get("podm"),
        ircnn=c.get("ircnn"),
        fista=c.get("fista"),
        ircnn_hold_last=bool(c.get("ircnn_hold_last", True)),
        weights=c.get("weights"),
        data_root=root,
        device=c.get("device", "auto"),
        precision=c.get("precision", "float64"),
        log=lambda line: print(f"podm converge: {line}", file=sys.stderr),
    )
    paths = write_study(report, out_dir, plots=bool(c.get("plots", True)))
    for line in summary_lines(report):
        print(line)
    print(f"wrote {', '.join(p.name for p in paths.values())} to {out_dir}")
