#!/usr/bin/env python
"""Train EPLL's Gaussian-mixture patch prior (logic: podm_cli.priors.gmm); see docs/epll.md.

    OMP_NUM_THREADS=1 PODM_DATA=../shared/data python scripts/train_gmm.py \
        --patches 500000 --components 200 --iterations 30 --max-minutes 22 \
        --out src/podm_cli/assets/gmm_8x8_200.npz

Images (:func:`split_images`): the clean list (podm_cli.data.training_list: BSDS500 train + test without
12003, which contains Set12's starfish; 399 images, grey luma), every 10th held out for the held-out
log-likelihood; never Levin, Sun, BSD68 (= BSDS500 val) or Set12. Checkpoints the mixture after every
EM iteration (``--out`` itself, written atomically) and the curve to ``--log``; ``--resume``
continues from them.
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
from podm_cli.data.training_list import clean_files
from podm_cli.errors import PodmError
from podm_cli.priors.gmm import GaussianMixture, dc_free_basis, fit_gmm, patches_to_dcfree, sample_patches


def split_images(root) -> tuple[list[Path], list[Path]]:
    """``(train, held_out)`` image files: the clean list, every 10th (0, 10, 20, ...) held out."""
    files = clean_files(root)
    return [f for i, f in enumerate(files) if i % 10], files[::10]


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--patches", type=int, default=500_000)
    ap.add_argument("--heldout", type=int, default=50_000)
    ap.add_argument("--components", type=int, default=200)
    ap.add_argument("--iterations", type=int, default=30)
    ap.add_argument("--psi", type=float, default=1e-3, help="covariance regulariser (see podm_cli.priors.gmm)")
    ap.add_argument("--max-minutes", type=float, default=None)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--threads", type=int, default=int(os.environ.get("OMP_NUM_THREADS", "1")))
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--out", type=Path, default=Path("src/podm_cli/assets/gmm_8x8_200.npz"))
    ap.add_argument("--log", type=Path, default=Path("docs/epll_gmm_training.json"),
                    help="the log-likelihood curve (JSON), rewritten after every iteration")
    ap.add_argument("--resume", action="store_true")
    args = ap.parse_args(argv)
    torch.set_num_threads(args.threads)

    root = data_root(None)
    try:
        train, held = split_images(root)
    except PodmError as err:
        print(err, file=sys.stderr)
        return 2
    t0 = time.time()
    basis = dc_free_basis(8, torch.float32)
    z = patches_to_dcfree(sample_patches(train, args.patches, 8, seed=args.seed), basis).to(args.device)
    zh = patches_to_dcfree(sample_patches(held, args.heldout, 8, seed=args.seed + 1), basis).to(args.device)
    print(f"patches: {z.shape[0]} train from {len(train)} images, {zh.shape[0]} held out from {len(held)} "
          f"images ({time.time() - t0:.1f}s)", flush=True)

    log_path = args.log
    log = {"command": " ".join(["python", "scripts/train_gmm.py", *(argv if argv is not None else sys.argv[1:])]),
           "train_images": len(train), "heldout_images": len(held), "patches": z.shape[0],
           "heldout_patches": zh.shape[0], "psi": args.psi, "iterations": []}
    init, start = None, 0
    if args.resume and args.out.is_file() and log_path.is_file():
        init = GaussianMixture.load(args.out)
        log = json.loads(log_path.read_text())
        start = len(log["iterations"])
        print(f"resuming after iteration {start}", flush=True)

    single = GaussianMixture.single_gaussian(z.cpu())
    log["single_gaussian"] = {"train": float(single.log_prob(z.cpu().double()).mean()),
                              "heldout": float(single.log_prob(zh.cpu().double()).mean())}
    print(f"single Gaussian: train {log['single_gaussian']['train']:.3f}  held-out "
          f"{log['single_gaussian']['heldout']:.3f} nats/patch", flush=True)
    args.out.parent.mkdir(parents=True, exist_ok=True)

    def checkpoint(gmm, rec):
        held_ll = float(gmm.to(dtype=torch.float32).log_prob(zh).double().mean())
        entry = {"iteration": rec.iteration, "loglik_train": rec.loglik, "objective_train": rec.objective,
                 "heldout_loglik_after": held_ll, "seconds": rec.seconds}
        log["iterations"].append(entry)
        gmm.meta = {"patches": log["patches"], "psi": args.psi, "iterations": len(log["iterations"]),
                    "data": "BSDS500 train+test (no 12003; every 10th image held out), grey luma, 8x8, "
                            "DC removed"}
        gmm.save(args.out)
        tmp = log_path.with_name(log_path.name + ".tmp")
        tmp.write_text(json.dumps(log, indent=1))
        tmp.replace(log_path)
        print(f"iter {rec.iteration:3d}  train loglik {rec.loglik:9.4f}  penalised {rec.objective:9.4f}  "
              f"held-out (new params) {held_ll:9.4f}  {rec.seconds:5.1f}s", flush=True)

    max_s = None if args.max_minutes is None else args.max_minutes * 60 - (time.time() - t0)
    gmm, _ = fit_gmm(z, args.components, args.iterations - start, args.psi, seed=args.seed, init=init,
                     start_iteration=start, max_seconds=max_s, callback=checkpoint)
    final = float(gmm.to(dtype=torch.float32).log_prob(z).double().mean())
    log["final_train_loglik"] = final
    log_path.write_text(json.dumps(log, indent=1))
    print(f"final: train {final:.4f}  held-out {log['iterations'][-1]['heldout_loglik_after']:.4f}  "
          f"single Gaussian held-out {log['single_gaussian']['heldout']:.4f}  wrote {args.out}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
