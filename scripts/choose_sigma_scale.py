#!/usr/bin/env python
"""Choose a method's ``sigma_scale`` (factor on the given noise level) on captured-blur-like data.

Data disjoint from every test set (never a Levin image or kernel): grey centre crops of BSDS500 *train*
images and real camera-shake kernels of Schelten et al. 2015 (:mod:`podm_cli.data.tuning`), observed as a
captured blur is (:meth:`~podm_cli.data.tuning.TuningSet.observe_captured`): ``valid`` blur by a *true*
kernel (the Schelten kernel spread by a Gaussian of ``--kernel-blur`` px), Gaussian noise ``--sigma``,
8-bit rounding; the method gets the *approximate* kernel (the Schelten kernel plus ``--kernel-noise`` x
peak noise on its support) and the nominal ``--sigma``, scaled inside the method by each ``sigma_scale``.
PSNR on [0, 1] over the whole ``valid`` region, ``--border`` px discarded. Prints a Markdown table.
``--given-blur`` and ``--rotation`` switch on the two further kernel errors of ``observe_captured`` (the
recovered kernel blurrier than the true one; a blur that turns across the frame). ``--method tv`` / ``hl``
run podm eval's method with its ``valid``-data rule (configs/operator/valid.yaml), the scale multiplying
the noise level it is given.

    PYTHONPATH=src PODM_DATA=../shared/data OMP_NUM_THREADS=1 .venv/bin/python scripts/choose_sigma_scale.py \\
        --method ircnn --scales 1 1.5 2 3
"""

from __future__ import annotations

import argparse
import time

import torch

from podm_cli.data.locator import data_root
from podm_cli.data.tuning import load_tuning_set
from podm_cli.metrics import psnr

METHODS = ("ircnn", "tv", "hl")


def build(method: str, scale: float, root, stages: int, bank=None, last: float | None = None,
          adjust_after: int | None = None):
    """The method with ``sigma_scale = scale`` and, when given, the last denoiser level ``last`` (on [0, 1]) and
    ``boundary=adjust`` after ``adjust_after`` stages (everything else at its defaults)."""
    if method == "ircnn":
        from podm_cli.methods.ircnn import IRCNN

        extra = {} if last is None else {"denoiser_last": last}
        m = IRCNN(stages=stages, sigma_scale=scale, data_root=root, bank=bank, **extra)
        return m if adjust_after is None else m.with_boundary(boundary="adjust", adjust_after=adjust_after)
    if method in METHODS:
        from omegaconf import OmegaConf

        from podm_cli.apps import config_dir
        from podm_cli.apps.common import boundary_settings
        from podm_cli.apps.methods import build_method

        rule = boundary_settings(OmegaConf.load(config_dir() / "operator" / "valid.yaml"))
        return build_method(method, None, data_root=root, boundary=rule)
    raise SystemExit(f"--method must be one of {METHODS}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--method", default="ircnn", choices=METHODS)
    ap.add_argument("--root", default=None, help="data root (default: the locator's)")
    ap.add_argument("--images", type=int, default=16)
    ap.add_argument("--crop", type=int, default=160, help="sharp crop side; y is crop - 30 px a side")
    ap.add_argument("--max-kernel", type=int, default=31)
    ap.add_argument("--sigma", type=float, default=1.5 / 255, help="noise added and given (1.5/255)")
    ap.add_argument("--kernel-blur", type=float, default=0.5, help="true kernel = given spread by this (px)")
    ap.add_argument("--kernel-noise", type=float, default=0.05, help="given kernel noise, x kernel peak")
    ap.add_argument("--given-blur", type=float, default=0.0,
                    help="given kernel = the true one spread by this (px) before its noise (default 0: off)")
    ap.add_argument("--rotation", type=float, default=0.0,
                    help="true blur turns from -this to +this degrees across the frame (default 0: off)")
    ap.add_argument("--border", type=int, default=10)
    ap.add_argument("--stages", type=int, default=30, help="IRCNN only")
    ap.add_argument("--scales", type=float, nargs="+", default=[1, 1.5, 2, 3])
    ap.add_argument("--lasts", type=float, nargs="+", default=[None],
                    help="last denoiser levels to cross with the scales, on 0..255 (default: the method's)")
    ap.add_argument("--adjust-after", type=int, default=None,
                    help="boundary=adjust after this many stages (podm eval's valid default for ircnn: 10); "
                         "default: the method's own rule")
    ap.add_argument("--threads", type=int, default=1)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    root = data_root(args.root)

    tuning = load_tuning_set(root, args.images, args.crop, args.max_kernel)
    y, k_given, truth = tuning.observe_captured(args.sigma, args.kernel_blur, args.kernel_noise,
                                                given_blur=args.given_blur, rotation=args.rotation)
    b = args.border
    inner = (slice(None), slice(None), slice(b, -b or None), slice(b, -b or None))
    truth = truth[inner]
    print(f"{len(tuning.names)} BSDS500-train crops -> y {y.shape[-2]}x{y.shape[-1]} (valid), Schelten kernels "
          f"<= {args.max_kernel} px, true kernel spread {args.kernel_blur} px, given kernel noise "
          f"{args.kernel_noise} x peak, given kernel spread {args.given_blur} px, rotation +-{args.rotation} deg, "
          f"sigma {args.sigma * 255:g}/255, 8-bit; {args.method}, border {b}")
    bank = None
    rows = []
    for last in args.lasts:
        for scale in args.scales:
            m = build(args.method, scale, root, args.stages, bank, None if last is None else last / 255,
                      args.adjust_after)
            bank = getattr(m, "bank", None)
            t0 = time.perf_counter()
            given_sigma = args.sigma if args.method == "ircnn" else args.sigma * scale  # IRCNN scales inside
            est = m(y, k_given.float(), given_sigma, mode="valid")
            rows.append((scale, last, psnr(est.double()[inner], truth), time.perf_counter() - t0))
    table = torch.stack([r[2] for r in rows])
    wins = torch.bincount(table.argmax(0), minlength=len(rows))
    print("\n| sigma_scale | last level (/255) | mean PSNR | worst PSNR | best on # images | seconds |")
    print("|---:|---:|---:|---:|---:|---:|")
    for (scale, last, p, sec), win in zip(rows, wins.tolist()):
        print(f"| {scale:g} | {'default' if last is None else f'{last:g}'} | {p.mean():.2f} | {p.min():.2f} | {win} "
              f"| {sec:.0f} |")
    best = max(rows, key=lambda r: float(r[2].mean()))
    print(f"\nbest mean PSNR: sigma_scale {best[0]:g}, last level {best[1] if best[1] is not None else 'default'}")


if __name__ == "__main__":
    main()
