#!/usr/bin/env python
"""`make bench`: seconds per image and peak memory of each method; writes bench.json and prints a table.

    python scripts/bench.py                       # every case, CPU, 2 threads
    python scripts/bench.py --only tv hl --device cuda --out bench_gpu.json
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from podm_cli.benchmark import BenchCase, print_bench, run_cases, write_bench

SIZES = [(255, 255), (768, 1024)]
# Network methods are slow on a CPU: one timed run (after a warm-up) for the big image.
CASES = [BenchCase(name, h, w) for name in ("tv", "hl") for h, w in SIZES] + [
    BenchCase(name, h, w, repeats=3 if h * w < 100_000 else 1) for name in ("ircnn", "podm") for h, w in SIZES
]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", nargs="*", help="method names to run (default: all cases)")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--out", type=Path, default=Path("bench.json"))
    args = parser.parse_args(argv)
    cases = [c for c in CASES if not args.only or c.name in args.only]
    entries = run_cases(cases, device=args.device, threads=args.threads)
    write_bench(entries, args.out)
    print_bench(entries)
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
