#!/usr/bin/env python
"""Average the ``curves.csv`` files of a ``podm converge`` multirun (one job per image/kernel).

    podm converge -m image=im_1,im_2,im_3,im_4 kernel=1,2,3,4,5,6,7,8
    python scripts/average_curves.py multirun/converge/<timestamp> [--fill last|none] [--no-plots]

Writes ``curves_mean.csv`` (method, iteration, n, psi, rel_change, psnr, accepted) and, unless
``--no-plots``, ``psi_mean.png``, ``rel_change_mean.png``, ``psnr_mean.png`` into the multirun folder (or
``--out``). The averaging is :func:`podm_cli.evaluation.convergence.average_curves`.
"""

from __future__ import annotations

import argparse
import csv
import math
import sys
from pathlib import Path

from podm_cli.evaluation.convergence import average_curves

COLUMNS = ("method", "iteration", "n", "psi", "rel_change", "psnr", "accepted")
PLOTS = (("psi", "mean Psi(x)", True), ("rel_change", "mean relative change", True), ("psnr", "mean PSNR (dB)", False))


def plot(rows: list[dict], out: Path, runs: int) -> list[Path]:
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    written = []
    methods = list(dict.fromkeys(r["method"] for r in rows))
    for key, label, log_y in PLOTS:
        fig = Figure(figsize=(6.0, 4.0), dpi=120)
        FigureCanvasAgg(fig)
        ax = fig.add_subplot(1, 1, 1)
        for m in methods:
            pts = [(r["iteration"], r[key]) for r in rows if r["method"] == m and not math.isnan(r[key])]
            if pts:
                ax.plot(*zip(*pts), label=m)
        if log_y:
            ax.set_yscale("log")
        ax.set_xlabel("iteration")
        ax.set_ylabel(label)
        ax.set_title(f"average over {runs} run(s)")
        ax.grid(True, alpha=0.3)
        ax.legend(fontsize=8)
        fig.tight_layout()
        path = out / f"{key}_mean.png"
        fig.savefig(path, format="png")
        written.append(path)
    return written


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("folder", type=Path, help="a multirun folder (searched recursively for curves.csv)")
    ap.add_argument("--fill", choices=("last", "none"), default="last",
                    help="carry a stopped run's last values forward (default) or average only running ones")
    ap.add_argument("--out", type=Path, default=None, help="output folder (default: the multirun folder)")
    ap.add_argument("--no-plots", action="store_true")
    args = ap.parse_args(argv)
    files = sorted(args.folder.rglob("curves.csv"))
    if not files:
        print(f"average_curves: error: no curves.csv under {args.folder}", file=sys.stderr)
        return 2
    rows = average_curves(files, fill=args.fill)
    out = args.out or args.folder
    out.mkdir(parents=True, exist_ok=True)
    target = out / "curves_mean.csv"
    tmp = target.with_name(".curves_mean.csv.tmp")
    with open(tmp, "w", newline="") as fh:
        w = csv.DictWriter(fh, fieldnames=list(COLUMNS), lineterminator="\n")
        w.writeheader()
        for r in rows:
            w.writerow({k: ("" if isinstance(r[k], float) and math.isnan(r[k]) else r[k]) for k in COLUMNS})
    tmp.replace(target)
    written = [target] + ([] if args.no_plots else plot(rows, out, len(files)))
    print(f"averaged {len(files)} curves.csv -> {', '.join(str(p) for p in written)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
