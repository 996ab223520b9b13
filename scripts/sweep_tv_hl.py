#!/usr/bin/env python
"""Choose the TV (mu) and HL (lambda) data weights by a sweep on images disjoint from every test set.

Recipe (docs/tv_hl_weights.md has the command, the printed table and the choice):

* images: ``--images`` BSDS500 *train* images (disjoint from Levin, Sun, BSD68 = BSDS500 val, Set12),
  chosen with a seeded permutation, converted to grey (BT.601), centre crop ``--crop`` x ``--crop``;
* kernels: real camera-shake kernels of Schelten et al. 2015 (never the Levin kernels), one per image,
  cropped to their support and shrunk (antialiased bilinear) so that the longest side is at most a size
  drawn uniformly from ``--kernel-sizes LO HI`` (default 31 31);
* blur: circular; noise: Gaussian, sigma = ``--sigma`` (default 1 %), seeded per image; no quantisation
  (the ``levin`` protocol);
* score: PSNR on [0, 1] over the whole image (raw solver output, no clipping), mean over the images;
* the chosen weight is the grid value with the best mean PSNR.

Run from the repository root::

    .venv/bin/python scripts/sweep_tv_hl.py --data ../shared/data
"""

from __future__ import annotations

import argparse
import math
import time
from pathlib import Path

import numpy as np
import scipy.io
import torch
import torch.nn.functional as F

from podm_cli.data.training_list import BSDS_TRAIN, clean_files, clean_picks
from podm_cli.imageio import read_image
from podm_cli.methods.hl import HyperLaplacian
from podm_cli.methods.tv import TV
from podm_cli.metrics import psnr
from podm_cli.physics import Blur, add_gaussian_noise, image_seed

MU_GRID = [250, 354, 500, 707, 1000, 1414, 2000, 2828, 4000, 5657, 8000]
LAM_GRID = [250, 354, 500, 707, 1000, 1414, 2000, 2828, 4000, 5657, 8000, 11314, 16000]


def schelten_kernel(raw: np.ndarray, max_size: int) -> torch.Tensor:
    """Crop a kernel to its support, shrink it to fit ``max_size`` (keeping its aspect), normalise."""
    k = np.clip(np.asarray(raw, dtype=np.float64), 0, None)
    rows, cols = np.flatnonzero(k.sum(1) > 0), np.flatnonzero(k.sum(0) > 0)
    k = torch.from_numpy(k[rows[0] : rows[-1] + 1, cols[0] : cols[-1] + 1].copy())
    scale = max_size / max(k.shape)
    if scale < 1:
        size = (max(1, round(k.shape[0] * scale)), max(1, round(k.shape[1] * scale)))
        k = F.interpolate(k[None, None], size=size, mode="bilinear", antialias=True, align_corners=False)[0, 0]
    k = k.clamp_min(0)
    return k / k.sum()


def pad_kernel(k: torch.Tensor, size: int) -> torch.Tensor:
    """Zero-pad to ``size x size`` with the kernel centre ``(kh // 2, kw // 2)`` at ``(size // 2, size // 2)``."""
    out = k.new_zeros(size, size)
    oy, ox = size // 2 - k.shape[0] // 2, size // 2 - k.shape[1] // 2
    out[oy : oy + k.shape[0], ox : ox + k.shape[1]] = k
    return out


def make_problems(data: Path, n: int, crop: int, kernel_sizes: tuple[int, int], sigma: float, seed: int):
    """``(x, y, kernels, names)``: sharp crops, blurred noisy observations, per-item kernels (float64).

    Each kernel's longest side is shrunk to a size drawn uniformly from ``kernel_sizes = (lo, hi)`` (never
    enlarged); all are zero-padded to ``hi x hi`` for batching.
    """
    rng = np.random.default_rng(seed)
    n_clean = len(clean_files(data, (BSDS_TRAIN,)))
    if n_clean < n:
        raise SystemExit(f"need {n} BSDS500 train images under {data}, found {n_clean}")
    # a seeded permutation of the whole listing, 12003 (contains Set12's starfish) replaced by a clean image
    files = clean_picks(data, BSDS_TRAIN, lambda count: rng.permutation(count)[:n])
    picks = range(n)
    raw_kernels = scipy.io.loadmat(data / "train" / "kernels_schelten2015.mat")["kernels"][0]
    kpicks = rng.permutation(len(raw_kernels))[:n]
    targets = rng.integers(kernel_sizes[0], kernel_sizes[1] + 1, size=n)
    xs, ks, names = [], [], []
    for i, j, target in zip(picks, kpicks, targets):
        img = read_image(files[i], mode="gray")[0].to(torch.float64)
        h, w = img.shape[-2:]
        top, left = (h - crop) // 2, (w - crop) // 2
        xs.append(img[:, top : top + crop, left : left + crop])
        ks.append(pad_kernel(schelten_kernel(raw_kernels[j], int(target)), kernel_sizes[1]))
        names.append(f"{files[i].stem}_schelten{j:03d}")
    x = torch.stack(xs)
    kernels = torch.stack(ks)[:, None]
    y = Blur(kernels, mode="circular")(x)
    y = add_gaussian_noise(y, sigma, seed=[image_seed(nm) for nm in names])
    return x, y, kernels, names


def sweep(make_method, grid, x, y, kernels, sigma) -> list[tuple[float, float, float]]:
    """``[(weight, mean PSNR, seconds)]`` for every weight of ``grid``."""
    rows = []
    for value in grid:
        method = make_method(value)
        start = time.perf_counter()
        est = method(y, kernels, sigma)
        rows.append((value, float(psnr(est, x).mean()), time.perf_counter() - start))
    return rows


def print_table(title: str, rows, extra: str = "") -> float:
    best = max(rows, key=lambda r: r[1])
    print(f"\n{title}{extra}")
    print("| weight | mean PSNR (dB) | s |")
    print("|---:|---:|---:|")
    for value, p, secs in rows:
        mark = " **best**" if value == best[0] else ""
        print(f"| {value:g} | {p:.3f}{mark} | {secs:.1f} |")
    return best[0]


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--data", type=Path, default=Path("../shared/data"), help="data root (PODM_DATA layout)")
    ap.add_argument("--images", type=int, default=32)
    ap.add_argument("--crop", type=int, default=160)
    ap.add_argument("--kernel-sizes", type=int, nargs=2, default=[31, 31], metavar=("LO", "HI"),
                    help="shrink each kernel's longest side to a size drawn from [LO, HI] (px)")
    ap.add_argument("--sigma", type=float, default=0.01)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--mu", type=float, nargs="+", default=MU_GRID, help="TV weights to try")
    ap.add_argument("--lam", type=float, nargs="+", default=LAM_GRID, help="HL weights to try")
    ap.add_argument("--alphas", type=float, nargs="+", default=[2 / 3, 0.5, 0.8],
                    help="HL exponents; the first one is the configured default")
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args(argv)
    torch.set_num_threads(args.threads)

    x, y, kernels, names = make_problems(
        args.data, args.images, args.crop, tuple(args.kernel_sizes), args.sigma, args.seed
    )
    sizes = [tuple(int(s) for s in torch.nonzero(k[0]).amax(0) - torch.nonzero(k[0]).amin(0) + 1) for k in kernels]
    lo, hi = args.kernel_sizes
    print(f"{len(names)} BSDS500-train crops {args.crop}x{args.crop}, Schelten kernels shrunk to {lo}..{hi} px "
          f"(support sizes {min(sizes)}..{max(sizes)}), circular blur, sigma {args.sigma:g}, seed {args.seed}")
    print(f"input (blurred) mean PSNR: {float(psnr(y, x).mean()):.3f} dB")
    print("images:", " ".join(names))

    best_mu = print_table("TV (FTVd ADMM, beta 10, gamma 1.618, tol 1e-3, <= 500 it): mu",
                          sweep(lambda v: TV(lam=v), args.mu, x, y, kernels, args.sigma))
    best_lam = {}
    for alpha in args.alphas:
        best_lam[alpha] = print_table(
            f"HL (Krishnan-Fergus, beta 1 -> 256 by 2 sqrt 2, 1 inner it.): lambda, alpha = {alpha:.4g}",
            sweep(lambda v, a=alpha: HyperLaplacian(lam=v, alpha=a), args.lam, x, y, kernels, args.sigma))
    print(f"\nchosen: tv.lam = {best_mu:g}; hl.lam = {best_lam[args.alphas[0]]:g} (alpha = {args.alphas[0]:.4g})")
    for alpha in args.alphas[1:]:
        print(f"(for reference: alpha = {alpha:.4g} -> best lambda {best_lam[alpha]:g})")
    if not math.isclose(args.sigma, 0.01):
        print("note: sigma is not 1 %; the configured weights are for 1 %")


if __name__ == "__main__":
    main()
