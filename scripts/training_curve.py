#!/usr/bin/env python
"""Validation curve of a `podm train` run: a PNG and a markdown table of val PSNR/SSIM per validation.

    python scripts/training_curve.py outputs/train/<run> --out docs/training_curve.png --ref "IRCNN 29.10"
"""

from __future__ import annotations

import argparse
import datetime

from podm_cli.training.curves import plot_curves, read_scalars


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("run_dir")
    parser.add_argument("--out", required=True)
    parser.add_argument("--ref", action="append", default=[], help='a reference line "NAME VALUE"')
    args = parser.parse_args()
    scalars = read_scalars(args.run_dir)
    refs = {r.rsplit(" ", 1)[0]: float(r.rsplit(" ", 1)[1]) for r in args.ref}
    plot_curves(scalars, args.out, refs)
    ssim = {s: v for s, _, v in scalars.get("val/ssim", [])}
    start = min(t for series in scalars.values() for _, t, _ in series)
    print("| step | wall (h:mm) | val PSNR | val SSIM |\n|---:|---:|---:|---:|")
    for step, t, v in scalars.get("val/psnr", []):
        wall = str(datetime.timedelta(seconds=round(t - start)))[:-3]
        print(f"| {step + 1} | {wall} | {v:.3f} | {ssim.get(step, float('nan')):.4f} |")


if __name__ == "__main__":
    main()
