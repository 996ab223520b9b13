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
"""

from __future__ import annotations

import argparse
import time

import torch
from omegaconf import OmegaConf

from podm_cli.apps import config_dir
from podm_cli.apps.common import boundary_settings, method_boundary
from podm_cli.apps.methods import build_method
from podm_cli.data.locator import data_root
from podm_cli.methods.rpodm import RPODMMethod
from podm_cli.metrics import psnr, ssim
from podm_cli.models.rpodm_weights import read_weights_file
from podm_cli.training.cache import default_cache_path
from podm_cli.training.datamodule import BlurPairsDataModule


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("weights", nargs="+", help="exported rpodm.pt files (or asset:NAME)")
    parser.add_argument("--init", default=None, help="the weights the run started from (e.g. asset:rpodm_levin.pt)")
    parser.add_argument("--baselines", nargs="*", default=["ircnn", "fdn"])
    parser.add_argument("--val-images", type=int, default=16)
    parser.add_argument("--val-crop", type=int, default=128)
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    root = data_root(None)
    first = RPODMMethod(weights=args.weights[0]).weights_path
    made = read_weights_file(first).get("trained_for", {})
    mode = made.get("mode", "circular")
    dm = BlurPairsDataModule(str(root), mode=mode, val_images=args.val_images, val_crop=args.val_crop,
                             sigma=made.get("sigma", 0.01),
                             sigma_spacing=made.get("val_sigma_spacing") or made.get("sigma_spacing", "linear"),
                             quantize=bool(made.get("quantize", False)), kernel_size=int(made.get("kernel_size", 31)),
                             cache=str(default_cache_path()), train_images=1)
    dm.setup()
    batch = next(iter(torch.utils.data.DataLoader(dm.val_set, batch_size=len(dm.val_set))))
    y, k, s, ref = batch["blurred"], batch["kernel"], batch["sigma"], batch["sharp"].double()
    boundary = boundary_settings(OmegaConf.load(config_dir() / "operator" / "valid.yaml"))
    levels = sorted(set(s.tolist()))
    groups = [levels[i : i + 4] for i in range(0, len(levels), 4)]  # four noise bands

    def report(name, method):
        t = time.perf_counter()
        with torch.no_grad():
            x = torch.cat([method(y[i : i + 1], k[i, 0], s[i : i + 1], mode=mode) for i in range(len(y))])
        p = psnr(x.clamp(0, 1).double(), ref)
        bands = "  ".join(f"{255 * g[0]:.1f}-{255 * g[-1]:.1f}/255: {p[torch.isin(s, torch.tensor(g))].mean():.2f}"
                          for g in groups)
        print(f"{name:<44} PSNR {p.mean():.3f}  SSIM {ssim(x.clamp(0, 1).double(), ref).mean():.4f}  [{bands}]  "
              f"({time.perf_counter() - t:.1f} s)", flush=True)

    print(f"{len(y)} validation pairs {args.val_crop}x{args.val_crop}, {mode} blur, sigma "
          f"{255 * min(levels):.2f}-{255 * max(levels):.2f}/255, quantized {made.get('quantize', False)}")
    for name in args.baselines:
        report(f"{name} (podm eval default)", build_method(name, data_root=root, boundary=boundary))
    # the training's rule (recorded in the first weights file), for the starting model too
    rule = made.get("boundary") or method_boundary(boundary, "rpodm")
    for label, path in ([("initialisation", args.init)] if args.init else []) + [("trained", p) for p in args.weights]:
        report(f"RPODM {label} ({path})", RPODMMethod(weights=path).with_boundary(**rule))


if __name__ == "__main__":
    main()
