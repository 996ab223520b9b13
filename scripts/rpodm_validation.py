#!/usr/bin/env python
"""RPODM on its validation pairs beside IRCNN and FDN: the numbers docs/training.md reports.

Builds the validation pairs exactly as `podm train` did for the first weights file given (its
``trained_for``: blur mode, noise level or range with its spacing, 8-bit rounding, kernel size; BSDS500 val
minus BSD68, centre crops, fixed non-Levin kernels and noise) and prints mean PSNR/SSIM, overall and per
noise level, of IRCNN and FDN (their `podm eval` defaults, with the boundary rule of
configs/operator/valid.yaml for `valid` pairs), the model the run started from (``--init``) and each trained
weights file given, both with the boundary rule the first file was trained with (``trained_for.boundary``):

    PODM_DATA=../shared/data python scripts/rpodm_validation.py asset:rpodm_adjust.pt --baselines ircnn fdn rpodm_edgetaper
    PODM_DATA=../shared/data python scripts/rpodm_validation.py asset:rpodm_real.pt --init asset:rpodm_levin.pt
    PODM_DATA=../shared/data python scripts/rpodm_validation.py src/podm_cli/assets/rpodm_levin.pt

``--splits`` adds, per method, the mean PSNR on the smoother and the rougher half of the crops (mean absolute
gradient of the sharp crop) and by kernel extent (<= 17, 18-23, >= 24 px): where two models differ.
``--levin-kernels SIGMA`` is a diagnosis, never a selection: the validation's sharp crops (BSDS, never a Levin
image) re-blurred by Levin's 8 kernels (exact, ``valid``, cycled over the crops), noise SIGMA, 8-bit, with
the mean per kernel -- whether a difference that Levin's benchmark shows comes from its kernels
(``--intensity 0.55``: crops darkened to Levin's mean grey level first). ``--strokes`` replaces the crops by
procedural stroke images (:mod:`podm_cli.training.strokes`, seeds no training run draws), the content of Levin's
im3 / im4 that BSDS lacks; ``--sigma`` gives every pair one noise level instead of the ladder:

    PODM_DATA=../shared/data python scripts/rpodm_validation.py asset:rpodm_adjust.pt --baselines ircnn --val-images 32 --strokes --sigma 0.03
"""

from __future__ import annotations

import argparse
import time

import torch
from omegaconf import OmegaConf

from podm_cli.apps import config_dir
from podm_cli.apps.common import boundary_settings, method_boundary
from podm_cli.apps.methods import build_method
from podm_cli.data.datasets import LEVIN_KERNELS
from podm_cli.data.locator import data_root
from podm_cli.kernels.files import load_levin_kernels
from podm_cli.methods.rpodm import RPODMMethod
from podm_cli.metrics import psnr, ssim
from podm_cli.models.rpodm_weights import read_weights_file
from podm_cli.training.cache import default_cache_path
from podm_cli.training.datamodule import BlurPairsDataModule
from podm_cli.training.pairs import ValidationPairs
from podm_cli.training.strokes import stroke_image

STROKE_VALIDATION_SEED = 10**6  # training draws its stroke seeds at random in [0, 2**62): these are fixed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("weights", nargs="+", help="exported rpodm.pt files (or asset:NAME)")
    parser.add_argument("--init", default=None, help="the weights the run started from (e.g. asset:rpodm_levin.pt)")
    parser.add_argument("--baselines", nargs="*", default=["ircnn", "fdn"])
    parser.add_argument("--val-images", type=int, default=16)
    parser.add_argument("--val-crop", type=int, default=128)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--splits", action="store_true", help="also by crop smoothness and kernel extent")
    parser.add_argument("--levin-kernels", type=float, default=None, metavar="SIGMA",
                        help="diagnosis: the crops re-blurred by Levin's 8 kernels at noise SIGMA (valid, 8-bit)")
    parser.add_argument("--intensity", type=float, default=1.0,
                        help="with --levin-kernels: the sharp crops multiplied by this first (Levin's images are dark)")
    parser.add_argument("--strokes", action="store_true",
                        help="procedural stroke images instead of the BSDS crops (same kernels and noise)")
    parser.add_argument("--sigma", type=float, default=None, help="one noise level for every pair instead of the ladder")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    root = data_root(None)
    first = RPODMMethod(weights=args.weights[0]).weights_path
    made = read_weights_file(first).get("trained_for", {})
    mode = made.get("mode", "circular")
    dm = BlurPairsDataModule(str(root), mode=mode, val_images=args.val_images, val_crop=args.val_crop,
                             sigma=made.get("sigma", 0.01) if args.sigma is None else args.sigma,
                             sigma_spacing=made.get("val_sigma_spacing") or made.get("sigma_spacing", "linear"),
                             quantize=bool(made.get("quantize", False)), kernel_size=int(made.get("kernel_size", 31)),
                             cache=str(default_cache_path()), train_images=1)
    dm.setup()
    pairs = dm.val_set
    if args.strokes:  # the same kernels and noise ladder, stroke images for the crops
        size = args.val_crop + pairs.pad
        pairs = ValidationPairs([stroke_image(size, seed=STROKE_VALIDATION_SEED + i) for i in range(len(pairs))],
                                pairs.kernels, args.val_crop, pairs.sigma, pairs.mode, pairs.quantize,
                                sigma_spacing=pairs.sigma_spacing)
    batch = next(iter(torch.utils.data.DataLoader(pairs, batch_size=len(pairs))))
    y, k, s, ref = batch["blurred"], batch["kernel"], batch["sigma"], batch["sharp"].double()
    boundary = boundary_settings(OmegaConf.load(config_dir() / "operator" / "valid.yaml"))
    if args.levin_kernels is not None:
        y, k, s, ref = levin_kernel_pairs(ref * args.intensity, root, args.levin_kernels)
        mode = "valid"
    levels = sorted(set(s.tolist()))
    groups = [levels[i : i + 4] for i in range(0, len(levels), 4)]  # four noise bands
    splits = content_splits(ref, k) if args.splits else {}
    if splits and args.levin_kernels is not None:  # the kernels are Levin's k1..k8, cycled over the crops
        splits = {f"k{j + 1}": torch.arange(j, len(y), 8) for j in range(8)}

    def report(name, method):
        t = time.perf_counter()
        with torch.no_grad():
            x = torch.cat([method(y[i : i + 1], k[i, 0], s[i : i + 1], mode=mode) for i in range(len(y))])
        p = psnr(x.clamp(0, 1).double(), ref)
        bands = "  ".join(f"{255 * g[0]:.1f}-{255 * g[-1]:.1f}/255: {p[torch.isin(s, torch.tensor(g))].mean():.2f}"
                          for g in groups)
        print(f"{name:<44} PSNR {p.mean():.3f}  SSIM {ssim(x.clamp(0, 1).double(), ref).mean():.4f}  [{bands}]  "
              f"({time.perf_counter() - t:.1f} s)", flush=True)
        if splits:
            print("    " + "  ".join(f"{label}: {p[idx].mean():.3f}" for label, idx in splits.items()), flush=True)

    print(f"{len(y)} validation pairs {args.val_crop}x{args.val_crop}, {mode} blur, sigma "
          f"{255 * min(levels):.2f}-{255 * max(levels):.2f}/255, quantized {made.get('quantize', False)}")
    for name in args.baselines:
        report(f"{name} (podm eval default)", build_method(name, data_root=root, boundary=boundary))
    # the training's rule (recorded in the first weights file), for the starting model too
    rule = made.get("boundary") or method_boundary(boundary, "rpodm")
    for label, path in ([("initialisation", args.init)] if args.init else []) + [("trained", p) for p in args.weights]:
        report(f"RPODM {label} ({path})", RPODMMethod(weights=path).with_boundary(**rule))


def levin_kernel_pairs(sharp: torch.Tensor, root, sigma: float):
    """``(y, kernels, sigma per pair, truth)``: ``sharp`` (N, 1, H, W) ``valid``-blurred by Levin's kernel
    ``i % 8`` (zero-padded to the largest), noise ``sigma`` seeded per pair, 8-bit."""
    from podm_cli.physics import Blur, add_gaussian_noise, quantize
    from podm_cli.physics.blur import valid_offset

    levin = load_levin_kernels(root / LEVIN_KERNELS)
    size = max(max(kk.shape) for kk in levin)
    kernels = torch.zeros(len(sharp), 1, size, size, dtype=torch.float64)
    for i in range(len(sharp)):
        kk = levin[i % len(levin)].double()
        oy, ox = (size - kk.shape[0]) // 2, (size - kk.shape[1]) // 2
        kernels[i, 0, oy : oy + kk.shape[0], ox : ox + kk.shape[1]] = kk / kk.sum()
    y = quantize(add_gaussian_noise(Blur(kernels, "valid")(sharp), sigma, seed=list(range(len(sharp)))), 8).float()
    o, (h, w) = valid_offset(size, size), y.shape[-2:]
    truth = sharp[..., o[0] : o[0] + h, o[1] : o[1] + w]
    return y, kernels.float(), torch.full((len(sharp),), float(sigma)), truth


def content_splits(sharp: torch.Tensor, kernels: torch.Tensor) -> dict[str, torch.Tensor]:
    """Index sets of the pairs: smoother / rougher half (mean absolute gradient of the sharp crop), kernel
    extent bands (the larger side of the kernel's support above 1e-3 of its peak)."""
    grad = ((sharp[..., 1:, :] - sharp[..., :-1, :]).abs().mean(dim=(1, 2, 3))
            + (sharp[..., :, 1:] - sharp[..., :, :-1]).abs().mean(dim=(1, 2, 3)))
    order = grad.argsort()
    half = len(order) // 2
    ext = []
    for kk in kernels[:, 0]:
        nz = (kk > 1e-3 * kk.max()).nonzero()
        ext.append(int((nz.amax(0) - nz.amin(0) + 1).max()))
    ext = torch.tensor(ext)
    out = {"smoother half": order[:half], "rougher half": order[half:]}
    for label, lo, hi in (("kernel <= 17 px", 0, 17), ("18-23 px", 18, 23), (">= 24 px", 24, 10**6)):
        idx = ((ext >= lo) & (ext <= hi)).nonzero().flatten()
        if len(idx):
            out[f"{label} (n={len(idx)})"] = idx
    return out


if __name__ == "__main__":
    main()
