#!/usr/bin/env python
"""An RPODM weights file on a `valid` protocol under each boundary rule: edgetaper, and adjust after 0, 2, 4
and 6 stages (docs/training.md, "Which boundary rule at inference"). Prints the mean PSNR of each rule under
the protocol's own scoring.

    PODM_DATA=../shared/data python scripts/rpodm_boundaries.py asset:rpodm_real.pt levin_real
    PODM_DATA=../shared/data python scripts/rpodm_boundaries.py asset:rpodm_real.pt levin_valid_whole --limit 16
"""

from __future__ import annotations

import argparse

import torch

from podm_cli.data.datasets import make_dataset
from podm_cli.methods.rpodm import RPODMMethod
from podm_cli.metrics import score

RULES = {
    "edgetaper": {"boundary": "edgetaper"},
    **{f"adjust after {n}": {"boundary": "adjust", "adjust_after": n} for n in (0, 2, 4, 6)},
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("weights", help="an exported rpodm.pt or asset:NAME")
    parser.add_argument("protocol", help="a valid protocol: levin_real, levin_valid_whole, levin_valid, ...")
    parser.add_argument("--limit", type=int, default=None, help="the first N items only")
    args = parser.parse_args()
    dataset = make_dataset(args.protocol, None, limit=args.limit)
    methods = {name: RPODMMethod(weights=args.weights).with_boundary(**rule) for name, rule in RULES.items()}
    scores: dict[str, list[float]] = {name: [] for name in RULES}
    for i in range(len(dataset)):
        item = dataset[i]
        for name, method in methods.items():
            with torch.no_grad():
                out = method(item.blurred[None], item.kernel, torch.tensor([item.sigma]), mode="valid")
            scores[name].append(float(score(out.double(), item.sharp[None].double(), dataset.scoring)[0][0]))
    for name, values in scores.items():
        print(f"{dataset.protocol} ({len(values)} items)  {name:<16} {sum(values) / len(values):.3f} dB")


if __name__ == "__main__":
    main()
