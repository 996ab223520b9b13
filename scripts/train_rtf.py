#!/usr/bin/env python
"""Train podm's regression-tree-field cascade for 1 % noise (logic: podm_cli.training.rtf); docs/rtf.md.

    OMP_NUM_THREADS=2 PODM_DATA=../shared/data python scripts/train_rtf.py \
        --out src/podm_cli/assets/rtf_sigma1.npz

(the defaults are the shipped model's settings: 5 stages of depths 0/6/6/6/6, 128 crops 96 px, 20 L-BFGS
iterations per level; 44 min on 2 CPU cores.)

Training crops: BSDS500 train + test without 12003 (podm_cli.training.pairs), kernels: Schelten et al. 2015
(<= 31 px, rotated) and random camera-shake trajectories, never Levin's; circular blur, 1 % noise.
Validation: centre crops of BSDS500 val minus BSD68. The model is checkpointed after every stage; the log
goes to ``--log`` (JSON, default docs/<out stem>_training.json) and stdout.

    python scripts/train_rtf.py --compare asset:rtf_sigma1.npz

scores the model (each stage) and podm's CSF on podm's tuning set (podm_cli.data.tuning) instead of training.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

import torch

from podm_cli.data.locator import data_root


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--depths", type=int, nargs="+", default=[0, 6, 6, 6, 6],
                    help="tree depth per stage (the first stage: 0 = a learned Wiener filter)")
    ap.add_argument("--sigma", type=float, default=0.01, help="noise level on [0, 1]")
    ap.add_argument("--train", type=int, default=128, help="training crops")
    ap.add_argument("--crop", type=int, default=96)
    ap.add_argument("--val-crop", type=int, default=128)
    ap.add_argument("--shrink-taus", type=float, nargs="*", default=[0.01, 0.03, 0.1],
                    help="shrinkage basis r^3/(r^2+tau^2) of the tree stages (0..1 scale); none = linear only")
    ap.add_argument("--filter-size", type=int, default=3, choices=[3, 5], help="CRF filters: non-DC DCT atoms")
    ap.add_argument("--fit-iters", type=int, default=20, help="L-BFGS iterations per tree level")
    ap.add_argument("--bins", type=int, default=32, help="candidate thresholds per feature (quantiles)")
    ap.add_argument("--min-leaf", type=int, default=2000, help="fewest training pixels per leaf")
    ap.add_argument("--max-minutes", type=float, default=None)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--threads", type=int, default=int(os.environ.get("OMP_NUM_THREADS", "2")))
    ap.add_argument("--out", type=Path, default=None)
    ap.add_argument("--log", type=Path, default=None)
    ap.add_argument("--compare", nargs="+", default=None, metavar="MODEL",
                    help="score these RTF models (paths or asset:<name>) and podm's CSF on the tuning set, then exit")
    args = ap.parse_args(argv)
    torch.set_num_threads(args.threads)
    root = data_root(None)
    if args.compare:
        return compare(args.compare, root, args.sigma)
    if args.out is None:
        ap.error("--out is required when training")
    from podm_cli.training.rtf import make_rtf_data, train_rtf

    t0 = time.time()
    data = make_rtf_data(root, "train", args.train, args.crop, args.sigma, seed=args.seed)
    val = make_rtf_data(root, "val", None, args.val_crop, args.sigma, seed=args.seed)
    print(f"{data.sharp.shape[0]} training crops {args.crop}px, {val.sharp.shape[0]} validation crops "
          f"{args.val_crop}px ({time.time() - t0:.0f} s)", flush=True)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    model, history = train_rtf(data, val, args.depths, args.fit_iters, args.bins, args.min_leaf,
                               shrink_taus=args.shrink_taus, filter_size=args.filter_size,
                               log=lambda s: print(s, flush=True), checkpoint=args.out,
                               max_seconds=None if args.max_minutes is None else args.max_minutes * 60)
    cmd = " ".join(["python", "scripts/train_rtf.py", *(argv if argv is not None else sys.argv[1:])])
    model.meta.update({"command": cmd, "train_crops": args.train, "crop": args.crop, "threads": args.threads,
                       "data": "BSDS500 train+test crops (no 12003), Schelten + random motion kernels, circular, "
                               f"sigma {args.sigma}", "seconds": round(time.time() - t0)})
    model.save(args.out)
    log_path = args.log or Path("docs") / f"{args.out.stem}_training.json"
    log_path.write_text(json.dumps({"command": cmd, "history": history}, indent=1) + "\n")
    print(f"wrote {args.out} ({args.out.stat().st_size / 1024:.0f} KiB) and {log_path} "
          f"({time.time() - t0:.0f} s in all)", flush=True)
    return 0


def compare(models, root, sigma: float) -> int:
    from podm_cli.data.tuning import load_tuning_set
    from podm_cli.methods.csf import CSF
    from podm_cli.methods.rtf import RTF

    ts = load_tuning_set(root, images=16, crop=128)
    y, x = ts.observe(sigma), ts.sharp.float()
    print(ts.describe(sigma))

    def psnr(out) -> float:
        mse = ((out.clamp(0, 1) - x) ** 2).flatten(1).mean(1)
        return float((-10 * torch.log10(mse)).mean())

    print(f"{'csf (podm pairwise)':40s} {psnr(CSF()(y, ts.kernels.float(), sigma)):.3f} dB")
    for name in models:
        method = RTF(model=name)
        outs = []
        t = time.time()
        method(y, ts.kernels.float(), sigma, on_stage=lambda i, xi: outs.append(xi))
        per_stage = " / ".join(f"{psnr(o):.3f}" for o in outs)
        print(f"{name:40s} depths {method.model.depths}: {per_stage} dB  "
              f"({(time.time() - t) / len(ts.names):.2f} s/image)", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
