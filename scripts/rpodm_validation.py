#!/usr/bin/env python
"""RPODM on its validation pairs beside IRCNN: the numbers docs/training.md reports.

Builds the validation pairs exactly as `podm train` does (BSDS500 val minus BSD68, centre crops, fixed
non-Levin kernels and noise; configs/train.yaml `train_data`) and prints mean PSNR/SSIM of
IRCNN (30 iterations, the eval default), RPODM at initialisation (the bank along the stage schedule) and
each trained weights file given:

    PODM_DATA=../shared/data python scripts/rpodm_validation.py src/podm_cli/assets/rpodm_levin.pt
"""

from __future__ import annotations

import argparse
import time

import torch

from podm_cli.data.locator import data_root
from podm_cli.methods.ircnn import IRCNN
from podm_cli.metrics import psnr, ssim
from podm_cli.models import RPODM
from podm_cli.training.cache import default_cache_path
from podm_cli.training.datamodule import BlurPairsDataModule
from podm_cli.training.export import load_weights, read_weights_file


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("weights", nargs="*", help="exported rpodm.pt files")
    parser.add_argument("--val-images", type=int, default=16)
    parser.add_argument("--val-crop", type=int, default=128)
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    root = data_root(None)
    dm = BlurPairsDataModule(str(root), val_images=args.val_images, val_crop=args.val_crop,
                             cache=str(default_cache_path()), train_images=1)
    dm.setup()
    batch = next(iter(torch.utils.data.DataLoader(dm.val_set, batch_size=len(dm.val_set))))
    y, k, s, ref = batch["blurred"], batch["kernel"], batch["sigma"], batch["sharp"].double()

    def report(name, fn):
        t = time.perf_counter()
        with torch.no_grad():
            x = fn().clamp(0, 1).double()
        print(f"{name:<40} PSNR {psnr(x, ref).mean():.3f}  SSIM {ssim(x, ref).mean():.4f}  "
              f"({time.perf_counter() - t:.1f} s)", flush=True)

    print(f"{len(y)} validation pairs {args.val_crop}x{args.val_crop}, sigma {float(s[0]):.3f}")
    report("IRCNN (30 iterations, floor 13)", lambda: IRCNN(data_root=root)(y, k, s))
    seen = set()
    for path in args.weights:
        cfg = read_weights_file(path)["config"]
        key = (cfg["stages"], tuple(cfg.get("denoiser_levels", cfg.get("sigma_schedule", ()))), cfg.get("final_mu_scale"))
        if key not in seen:
            seen.add(key)
            init = RPODM(**{**cfg, "denoiser": {**cfg["denoiser"], "pretrained": "official"}}, data_root=root).eval()
            report(f"RPODM {cfg['stages']} stages at initialisation", lambda: init(y, k, s))
        model = load_weights(path)
        report(f"RPODM trained ({path})", lambda: model(y, k, s))


if __name__ == "__main__":
    main()
