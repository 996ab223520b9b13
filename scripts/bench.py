#!/usr/bin/env python
"""`make bench`: seconds per image and peak memory of each method; writes bench.json and prints a table.

    python scripts/bench.py                       # every case, CPU, 2 threads
    python scripts/bench.py --only tv hl --device cuda --out bench_gpu.json
    python scripts/bench.py --only deblur         # the `podm deblur` photo cases only
    python scripts/bench.py --memory-per-pixel    # what tile=auto budgets with (podm_cli.tiling)

The `podm deblur` cases time the whole command path (read a JPEG, restore with tiling, write) on a
synthetic colour photo: 1 megapixel with the default method of configs/deblur.yaml and with hl, and a
12-megapixel photo with hl under the default memory budget (tiled). The default method (IRCNN) on a
12-megapixel photo takes hours on a 2-core CPU: it runs with --device cuda, or with --with-slow.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from podm_cli.benchmark import (
    BenchCase,
    DeblurBenchCase,
    measure_memory_per_pixel,
    print_bench,
    run_cases,
    write_bench,
)

SIZES = [(255, 255), (768, 1024)]
# Network methods are slow on a CPU: one timed run (after a warm-up) for the big image.
CASES = [BenchCase(name, h, w) for name in ("tv", "hl") for h, w in SIZES] + [
    BenchCase(name, h, w, repeats=3 if h * w < 100_000 else 1) for name in ("ircnn", "podm") for h, w in SIZES
]
DEBLUR_CASES = [
    DeblurBenchCase(None, 1000, 1000),  # 1 MP colour photo, the default method
    DeblurBenchCase("hl", 1000, 1000),
    DeblurBenchCase("hl", 3000, 4000),  # 12 MP, tile=auto under the default memory budget
]
SLOW_CASES = [DeblurBenchCase(None, 3000, 4000)]  # 12 MP with the default method


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", nargs="*", help="method names to run, or 'deblur' (default: all cases)")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--out", type=Path, default=Path("bench.json"))
    parser.add_argument("--with-slow", action="store_true", help="also the 12 MP photo with the default method")
    parser.add_argument("--memory-per-pixel", action="store_true",
                        help="measure each method's bytes per extended pixel and channel, then exit")
    args = parser.parse_args(argv)
    if args.memory_per_pixel:
        measured = measure_memory_per_pixel(args.only)
        print(json.dumps({"bytes_per_extended_pixel_per_channel": measured,
                          "sizes": ["512x512x1", "768x768x1", "512x512x3"]}, indent=2))
        return 0
    deblur = DEBLUR_CASES + (SLOW_CASES if args.with_slow or args.device != "cpu" else [])
    cases = [c for c in CASES if not args.only or c.name in args.only]
    cases += [c for c in deblur if not args.only or "deblur" in args.only or c.name in args.only]
    entries = run_cases(cases, device=args.device, threads=args.threads)
    write_bench(entries, args.out)
    print_bench(entries)
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
