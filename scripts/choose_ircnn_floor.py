#!/usr/bin/env python
"""Choose IRCNN's last denoiser level (``sigma_floor``) on data disjoint from every test set.

Images: grey (BT.601 luma) centre crops of BSDS500 *train* images (never Levin, Sun, BSD68 = BSDS val,
or Set12). Kernels: real camera-shake kernels of Schelten et al. 2015 no larger than ``--max-kernel`` px.
Circular blur, Gaussian noise ``--sigma`` (seeded per image), HQS with the official bank
(:class:`podm_cli.methods.ircnn.IRCNN`), PSNR on [0, 1] over the whole crop. Prints a Markdown table.

    PODM_DATA=../shared/data .venv/bin/python scripts/choose_ircnn_floor.py
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np
import scipy.io
import torch

from podm_cli.data.locator import data_root
from podm_cli.evaluation.metrics import psnr, ssim
from podm_cli.imageio import read_image
from podm_cli.methods.ircnn import IRCNN
from podm_cli.nets import DenoiserBank
from podm_cli.physics import Blur, add_gaussian_noise, image_seed


def evenly(n: int, k: int) -> list[int]:
    return sorted({round(float(v)) for v in np.linspace(0, n - 1, k)})


def load_pairs(root: Path, count: int, crop: int, max_kernel: int):
    files = sorted((root / "train/BSDS500/train").glob("*.jpg"))
    files = [files[i] for i in evenly(len(files), count)]
    mats = scipy.io.loadmat(root / "train/kernels_schelten2015.mat")["kernels"].ravel()
    small = [np.asarray(k, dtype=np.float64) for k in mats if max(k.shape) <= max_kernel]
    small = [small[i] for i in evenly(len(small), count)]
    xs, ks, names = [], [], []
    for f, k in zip(files, small):
        x, _ = read_image(f, mode="gray")
        h, w = x.shape[-2:]
        t, l = (h - crop) // 2, (w - crop) // 2
        xs.append(x[:, t : t + crop, l : l + crop])
        k = np.clip(k, 0, None)
        pad = np.zeros((max_kernel, max_kernel))
        oy, ox = (max_kernel - k.shape[0]) // 2, (max_kernel - k.shape[1]) // 2
        pad[oy : oy + k.shape[0], ox : ox + k.shape[1]] = k / k.sum()
        ks.append(torch.from_numpy(pad))
        names.append(f.stem)
    return torch.stack(xs).double(), torch.stack(ks)[:, None], names


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

    x, k, names = load_pairs(root, args.images, args.crop, args.max_kernel)
    y = add_gaussian_noise(Blur(k)(x), args.sigma, seed=[image_seed(n) for n in names]).float()
    bank = DenoiserBank.from_keras_dir(root / "weights/ircnn_gray_keras")
    print(
        f"{len(names)} BSDS500-train crops {args.crop}x{args.crop}, Schelten kernels <= {args.max_kernel} px, "
        f"circular blur, sigma {args.sigma}, {args.iterations} iterations"
    )
    print(f"blurred input: {psnr(y.double(), x).mean():.2f} dB\n")
    print("| floor (0..255) | mean PSNR | mean SSIM | worst PSNR | best on # images | seconds |")
    print("|---:|---:|---:|---:|---:|---:|")
    rows = []
    for floor in args.floors:
        t0 = time.perf_counter()
        est = IRCNN(iterations=args.iterations, sigma_floor=floor, bank=bank)(y, k.float(), args.sigma)
        rows.append((floor, psnr(est.double(), x), ssim(est.double(), x), time.perf_counter() - t0))
    table = torch.stack([r[1] for r in rows])  # (floors, images)
    wins = torch.bincount(table.argmax(0), minlength=len(rows))
    for (floor, p, s, sec), win in zip(rows, wins.tolist()):
        print(f"| {floor:g} | {p.mean():.2f} | {s.mean():.4f} | {p.min():.2f} | {win} | {sec:.0f} |")
    best = max(rows, key=lambda r: float(r[1].mean()))
    print(f"\nbest mean PSNR: floor {best[0]:g}")


if __name__ == "__main__":
    main()
