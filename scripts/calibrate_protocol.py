#!/usr/bin/env python
"""Protocol calibration study (docs/protocol.md): TV and HL under candidate protocols vs the paper.

    PODM_DATA=../shared/data python scripts/calibrate_protocol.py --out docs/protocol_calibration.md
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import torch

from podm_cli.apps.methods import build_method
from podm_cli.data.locator import data_root
from podm_cli.evaluation.calibration import (
    LEVIN_CANDIDATES,
    SUN_CANDIDATES,
    calibrate,
    markdown,
    rank_protocols,
)


def load_method(name: str):
    return build_method(name, None, data_root())


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--methods", nargs="*", default=["tv", "hl"])
    parser.add_argument("--skip-sun", action="store_true")
    parser.add_argument("--boundaries", nargs="*", default=["liu", "edgetaper"],
                        help="boundary handling tried on valid candidates")
    parser.add_argument("--out", type=Path, default=Path("protocol_calibration.md"))
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    methods = {name: load_method(name) for name in args.methods}
    candidates = LEVIN_CANDIDATES + ([] if args.skip_sun else SUN_CANDIDATES)
    rows = calibrate(methods, data_root(), candidates, boundaries=args.boundaries)
    ranking = rank_protocols(rows)
    text = markdown(rows) + "\n| candidate | scoring | mean abs gap to paper (dB) | HL > TV |\n|---|---|---|---|\n"
    text += "".join(f"| {c} | {s} | {g:.2f} | {'yes' if h else 'NO'} |\n" for c, s, g, h in ranking)
    args.out.write_text(text)
    args.out.with_suffix(".json").write_text(json.dumps(rows, indent=1))
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
