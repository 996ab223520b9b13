#!/usr/bin/env python
"""Average the ``curves.csv`` files of a ``podm converge`` multirun (one job per image/kernel).

    podm converge -m image=im_1,im_2,im_3,im_4 kernel=1,2,3,4,5,6,7,8
    python scripts/average_curves.py multirun/converge/<timestamp> [--fill last|none] [--no-plots]

Writes ``curves_mean.csv`` (method, iteration, n, psi, rel_change, psnr, accepted) and, unless
``--no-plots``, ``psi_mean.png``, ``rel_change_mean.png``, ``psnr_mean.png`` into the multirun folder (or
``--out``). The averaging is :func:`podm_cli.evaluation.convergence_output.average_curves`.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from podm_cli.evaluation.convergence_output import average_curves, write_mean_curves


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
    written = write_mean_curves(rows, args.out or args.folder, len(files), plots=not args.no_plots)
    print(f"averaged {len(files)} curves.csv -> {', '.join(str(p) for p in written)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
