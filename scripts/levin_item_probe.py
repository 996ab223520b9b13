#!/usr/bin/env python
"""One benchmark item, probed: methods side by side, RPODM's inputs scaled, IRCNN's stage count varied.

A diagnosis of where a method loses on one item, never a selection (every number here is on a test item):

    PODM_DATA=../shared/data python scripts/levin_item_probe.py im4_k2 --sigma 0.03

prints the PSNR (the protocol's scoring) of each ``--methods`` (their `podm eval` defaults, with the boundary rules of
configs/operator/valid.yaml), then RPODM with the input noise level it is given scaled (``--sigma-scales``: its
noise-conditioned networks and F weights both follow it), with only its F weights scaled (``--rho-scales``:
all stages but the last, whose weight only keeps the estimate at the last denoiser's output), and IRCNN with
``--ircnn-stages`` HQS iterations. ``--save FILE`` writes truth | each method's estimate side by side (8-bit PNG).
"""

from __future__ import annotations

import argparse
import math
import sys

import torch
from omegaconf import OmegaConf

from podm_cli.apps import config_dir
from podm_cli.apps.common import boundary_settings
from podm_cli.apps.methods import build_method
from podm_cli.data.datasets import make_dataset
from podm_cli.data.locator import data_root
from podm_cli.metrics import score as protocol_score


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("item", help="item name, e.g. im4_k2")
    parser.add_argument("--dataset", default="levin_valid_whole")
    parser.add_argument("--sigma", type=float, default=None, help="noise level (default: the protocol's)")
    parser.add_argument("--methods", nargs="*", default=["rpodm", "ircnn", "rpodm_edgetaper", "fdn", "tv"])
    parser.add_argument("--sigma-scales", nargs="*", type=float, default=[0.85, 1.0, 1.2])
    parser.add_argument("--rho-scales", nargs="*", type=float, default=[0.5, 1.0, 2.0])
    parser.add_argument("--ircnn-stages", nargs="*", type=int, default=[8, 15, 30, 60])
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--save", default=None, help="PNG of truth | estimates of --methods")
    args = parser.parse_args()
    if any(n < 1 for n in args.ircnn_stages):
        fail(f"--ircnn-stages must be >= 1, got {args.ircnn_stages}")
    torch.set_num_threads(args.threads)
    root = data_root(None)
    ds = make_dataset(args.dataset, root, sigma=args.sigma)
    names = [ds[i].name for i in range(len(ds))]
    if args.item not in names:
        fail(f"no item {args.item!r} in {ds.protocol} (e.g. {names[0]})")
    item = ds[names.index(args.item)]
    mode = ds.mode
    boundary = boundary_settings(OmegaConf.load(config_dir() / "operator" / "valid.yaml"))

    def score(method, sigma=item.sigma) -> tuple[float, torch.Tensor]:
        with torch.no_grad():
            x = method(item.blurred[None], item.kernel, sigma, mode=mode).clamp(0, 1)
        return float(protocol_score(x.double(), item.sharp[None].double(), ds.scoring)[0]), x[0, 0]

    print(f"{ds.protocol} {item.name}: sigma {255 * item.sigma:.2f}/255")
    estimates = []
    for name in args.methods:
        p, x = score(build_method(name, data_root=root, boundary=boundary))
        estimates.append(x)
        print(f"  {name:<18} {p:.2f}")
    rpodm = build_method("rpodm", data_root=root, boundary=boundary)
    print("  rpodm, input sigma x " + "  ".join(f"{s:g}: {score(rpodm, item.sigma * s)[0]:.2f}" for s in args.sigma_scales))
    log_mu = rpodm.model.log_mu.data.clone()
    out = []
    for c in args.rho_scales:
        rpodm.model.log_mu.data[:-1] = log_mu[:-1] + math.log(c)
        out.append(f"{c:g}: {score(rpodm)[0]:.2f}")
    rpodm.model.log_mu.data.copy_(log_mu)
    print("  rpodm, F weights x " + "  ".join(out))
    ircnn = build_method("ircnn", data_root=root, boundary=boundary)
    out = []
    for n in args.ircnn_stages:
        ircnn.stages = n
        out.append(f"{n}: {score(ircnn)[0]:.2f}")
    print("  ircnn, stages " + "  ".join(out))
    if args.save:
        from PIL import Image

        row = torch.cat([item.sharp[0]] + estimates, dim=1)
        Image.fromarray((row.numpy() * 255).round().astype("uint8")).save(args.save)
        print(f"  truth | {' | '.join(args.methods)} -> {args.save}")


def fail(message: str) -> None:
    print(f"levin_item_probe: {message}", file=sys.stderr)
    raise SystemExit(2)


if __name__ == "__main__":
    main()
