#!/usr/bin/env python
"""Choose IRCNN's last denoiser level (``sigma_floor``) on data disjoint from every test set.

Images: grey (BT.601 luma) centre crops of BSDS500 *train* images (never Levin, Sun, BSD68 = BSDS val,
or Set12). Kernels: real camera-shake kernels of Schelten et al. 2015 no larger than ``--max-kernel`` px.
Circular blur, Gaussian noise ``--sigma`` (seeded per image) -- the shared tuning set of
:mod:`podm_cli.data.tuning`; HQS with the official bank
(:class:`podm_cli.methods.ircnn.IRCNN`), PSNR on [0, 1] over the whole crop. Prints a Markdown table.

    PODM_DATA=../shared/data .venv/bin/python scripts/choose_ircnn_floor.py
"""

from __future__ import annotations

import argparse
import time

import torch

from podm_cli.data.locator import data_root
from podm_cli.data.tuning import load_tuning_set
from podm_cli.methods.ircnn import IRCNN
from podm_cli.metrics import psnr, ssim
from podm_cli.nets import DenoiserBank


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--root", default=None, help="data root (default: the locator's)")
    ap.add_argument("--images", type=int, default=16)
    ap.add_argument("--crop", type=int, default=128)
    ap.add_argument("--max-kernel", type=int, default=31)
    ap.add_argument("--sigma", type=float, default=0.01)
    ap.add_argument("--iterations", type=int, default=30)
    ap.add_argument("--floors", type=float, nargs="+", default=[3, 5, 7.65, 10, 13, 16, 20])
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    root = data_root(args.root)

    tuning = load_tuning_set(root, args.images, args.crop, args.max_kernel)  # podm_cli.data.tuning
    x, k = tuning.sharp, tuning.kernels
    y = tuning.observe(args.sigma)
    bank = DenoiserBank.from_keras_dir(root / "weights/ircnn_gray_keras")
    print(f"{tuning.describe(args.sigma)}, {args.iterations} iterations")
    print(f"blurred input: {psnr(y.double(), x).mean():.2f} dB\n")
    print("| floor (0..255) | mean PSNR | mean SSIM | worst PSNR | best on # images | seconds |")
    print("|---:|---:|---:|---:|---:|---:|")
    rows = []
    for floor in args.floors:
        t0 = time.perf_counter()
        est = IRCNN(stages=args.iterations, denoiser_last=floor / 255, bank=bank)(y, k.float(), args.sigma)
        rows.append((floor, psnr(est.double(), x), ssim(est.double(), x), time.perf_counter() - t0))
    table = torch.stack([r[1] for r in rows])  # (floors, images)
    wins = torch.bincount(table.argmax(0), minlength=len(rows))
    for (floor, p, s, sec), win in zip(rows, wins.tolist()):
        print(f"| {floor:g} | {p.mean():.2f} | {s.mean():.4f} | {p.min():.2f} | {win} | {sec:.0f} |")
    best = max(rows, key=lambda r: float(r[1].mean()))
    print(f"\nbest mean PSNR: floor {best[0]:g}")


if __name__ == "__main__":
    main()
