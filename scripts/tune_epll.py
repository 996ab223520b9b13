#!/usr/bin/env python
"""Choose EPLL's beta schedule on the disjoint tuning set (podm_cli.data.tuning); see docs/epll.md.

    OMP_NUM_THREADS=1 PODM_DATA=../shared/data python scripts/tune_epll.py --images 8 --crop 128

Prints mean PSNR per candidate schedule (circular blur, 1 % noise, BSDS500-train crops, Schelten kernels);
never looks at a test image.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import time

import torch

from podm_cli.data.locator import data_root
from podm_cli.data.tuning import load_tuning_set
from podm_cli.methods.epll import EPLL

CANDIDATES = {
    "paper: 1/s^2 x [1,4,8,16,32,64]": dict(betas=[1, 4, 8, 16, 32, 64], beta_unit="inv_sigma2"),
    "demo: 50 x [1,2,...,64]": dict(betas=[50 * 2**i for i in range(7)], beta_unit="absolute"),
    "demo, lam 0.5": dict(betas=[50 * 2**i for i in range(7)], beta_unit="absolute", lam=0.5),
    "demo, lam 2": dict(betas=[50 * 2**i for i in range(7)], beta_unit="absolute", lam=2.0),
    "demo, 2 inner": dict(betas=[50 * 2**i for i in range(7)], beta_unit="absolute", inner_iterations=2),
    "50 x [1,...,512]": dict(betas=[50 * 2**i for i in range(10)], beta_unit="absolute"),
    "1/s^2 x [0.005 .. 0.32] (= demo at 1 %)": dict(betas=[0.005 * 2**i for i in range(7)], beta_unit="inv_sigma2"),
    "demo, lam 4": dict(betas=[50 * 2**i for i in range(7)], beta_unit="absolute", lam=4.0),
    "demo, lam 8": dict(betas=[50 * 2**i for i in range(7)], beta_unit="absolute", lam=8.0),
    "demo x 2 (100 .. 6400), lam 4": dict(betas=[100 * 2**i for i in range(7)], beta_unit="absolute", lam=4.0),
}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--images", type=int, default=8)
    ap.add_argument("--crop", type=int, default=128)
    ap.add_argument("--sigma", type=float, default=0.01)
    ap.add_argument("--only", nargs="*", default=None)
    args = ap.parse_args(argv)
    torch.set_num_threads(1)
    ts = load_tuning_set(data_root(None), images=args.images, crop=args.crop)
    y = ts.observe(args.sigma)
    x = ts.sharp.float()
    print(ts.describe(args.sigma))
    out = {}
    for name, kw in CANDIDATES.items():
        if args.only and name not in args.only:
            continue
        m = EPLL(**kw)
        t0 = time.time()
        psnrs = []
        for i in range(y.shape[0]):
            r = m(y[i : i + 1], ts.kernels[i, 0].float(), args.sigma).clamp(0, 1)
            psnrs.append(-10 * math.log10(float(((r - x[i : i + 1]) ** 2).mean())))
        out[name] = {"psnr": sum(psnrs) / len(psnrs), "seconds_per_image": (time.time() - t0) / len(psnrs), **kw}
        print(f"{name:45s} {out[name]['psnr']:.3f} dB  {out[name]['seconds_per_image']:.1f} s/image", flush=True)
    print(json.dumps(out, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
