#!/usr/bin/env python
"""Train podm's own cascade of shrinkage fields for 1 % noise (logic: podm_cli.training.csf); docs/csf.md.

    OMP_NUM_THREADS=1 PODM_DATA=../shared/data python scripts/train_csf.py --kind pw --stages 3 \
        --out src/podm_cli/assets/csf_pw_sigma1.npz
    OMP_NUM_THREADS=1 PODM_DATA=../shared/data python scripts/train_csf.py --kind 5x5 --stages 5 \
        --out src/podm_cli/assets/csf_5x5_sigma1.npz

Training crops: the clean list (podm_cli.data.training_list: BSDS500 train + test without 12003, which
contains Set12's starfish; grey); validation crops from other images of that list (:func:`split_images`:
every 10th from the 6th) with other kernels; kernels: Schelten et al. 2015 (<= 35 px) and random motion
trajectories, never Levin's.
The model is checkpointed after every greedy stage; the log goes to ``--log`` (JSON) and stdout.

    python scripts/train_csf.py --compare asset:csf_pw_sigma1.npz asset:csf_5x5_sigma1.npz

scores models on podm's tuning set (podm_cli.data.tuning: BSDS500-train crops, Schelten kernels, circular,
1 %) instead of training: how podm chose which model `csf` uses (docs/csf.md).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

import torch

from podm_cli.data.locator import data_root
from podm_cli.data.training_list import clean_files
from podm_cli.errors import PodmError
from podm_cli.training.csf import load_csf_data, train_csf


def split_images(root) -> tuple[list[Path], list[Path]]:
    """``(train, validation)`` image files: the clean list, every 10th from the 6th (5, 15, 25, ...) for
    validation."""
    files = clean_files(root)
    return [f for i, f in enumerate(files) if i % 10 != 5], files[5::10]


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--kind", choices=["pw", "5x5", "3x3", "7x7"], default="pw")
    ap.add_argument("--stages", type=int, default=3)
    ap.add_argument("--sigma", type=float, default=0.01, help="noise level on [0, 1]")
    ap.add_argument("--train", type=int, default=64, help="training crops")
    ap.add_argument("--val", type=int, default=16, help="validation crops")
    ap.add_argument("--crop", type=int, default=96)
    ap.add_argument("--greedy-iters", type=int, default=60, help="L-BFGS iterations per greedy stage")
    ap.add_argument("--joint-iters", type=int, default=40, help="L-BFGS iterations of the joint phase")
    ap.add_argument("--max-minutes", type=float, default=None)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--threads", type=int, default=int(os.environ.get("OMP_NUM_THREADS", "1")))
    ap.add_argument("--out", type=Path, default=None)
    ap.add_argument("--compare", nargs="+", default=None, metavar="MODEL",
                    help="score these models (paths or asset:<name>) on the tuning set, then exit")
    ap.add_argument("--log", type=Path, default=None, help="JSON log (default: docs/<out stem>_training.json)")
    args = ap.parse_args(argv)
    torch.set_num_threads(args.threads)
    torch.set_flush_denormal(True)

    root = data_root(None)
    if args.compare:
        return compare(args.compare, root, args.sigma)
    if args.out is None:
        ap.error("--out is required when training")
    try:
        train_files, val_files = split_images(root)
    except PodmError as err:
        print(err, file=sys.stderr)
        return 2
    data = load_csf_data(root, train_files, args.train, args.crop, args.sigma, seed=args.seed)
    val = load_csf_data(root, val_files, args.val, args.crop, args.sigma, seed=args.seed + 1000)
    size = None if args.kind == "pw" else int(args.kind[0])
    args.out.parent.mkdir(parents=True, exist_ok=True)
    model, history = train_csf(data, val, args.stages, size, args.sigma, args.greedy_iters, args.joint_iters,
                               log=lambda s: print(s, flush=True), checkpoint=args.out,
                               max_seconds=None if args.max_minutes is None else args.max_minutes * 60)
    cmd = " ".join(["python", "scripts/train_csf.py", *(argv if argv is not None else sys.argv[1:])])
    model.meta.update({"command": cmd, "kind": args.kind, "sigma": args.sigma, "train_crops": args.train,
                       "crop": args.crop,
                       "data": "BSDS500 train+test crops (no 12003), Schelten + random motion kernels"})
    model.save(args.out)
    log_path = args.log or Path("docs") / f"{args.out.stem}_training.json"
    log_path.write_text(json.dumps({"command": cmd, "history": history}, indent=1))
    print(f"wrote {args.out} ({args.out.stat().st_size / 1024:.0f} KiB) and {log_path}", flush=True)
    return 0


def compare(models, root, sigma: float) -> int:
    import time

    from podm_cli.data.tuning import load_tuning_set
    from podm_cli.methods.csf import CSF

    ts = load_tuning_set(root, images=16, crop=128)
    y, x = ts.observe(sigma), ts.sharp.float()
    print(ts.describe(sigma))
    for name in models:
        method = CSF(model=name)
        t0 = time.time()
        out = method(y, ts.kernels.float(), sigma).clamp(0, 1)
        mse = ((out - x) ** 2).flatten(1).mean(1)
        psnr = float((-10 * torch.log10(mse)).mean())
        print(f"{name:40s} {method.model.stages} stages x {method.model.filters.shape[1]} filters: "
              f"{psnr:.3f} dB  ({(time.time() - t0) / len(ts.names):.2f} s/image)", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
