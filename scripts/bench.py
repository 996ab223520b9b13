#!/usr/bin/env python
"""`make bench`: seconds per image and peak memory of each method; writes bench.json and prints a table.

    python scripts/bench.py                       # every case, CPU, 2 threads
    python scripts/bench.py --only tv hl --device cuda --out bench_gpu.json
    python scripts/bench.py --only deblur         # the `podm deblur` photo cases only
    python scripts/bench.py --only train          # RPODM training: Lightning loop vs a plain PyTorch loop
    python scripts/bench.py --memory-per-pixel    # what tile=auto budgets with (podm_cli.tiling)

The `podm deblur` cases time the whole command path (read a JPEG, restore with tiling, write) on a
synthetic colour photo: 1 megapixel with the default method of configs/deblur.yaml and with hl, and a
12-megapixel photo with hl under the default memory budget (tiled). The default method on a 12-megapixel
photo takes many minutes on a 2-core CPU (IRCNN, the default before RPODM: hours): it runs with --device cuda,
or with --with-slow.
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
] + [BenchCase("rpodm", h, w, repeats=3 if h * w < 100_000 else 1) for h, w in SIZES] + [
    BenchCase("csf", h, w) for h, w in SIZES] + [
    BenchCase("epll", h, w, repeats=2 if h * w < 100_000 else 1) for h, w in SIZES  # issue 6: < 20 s at 255^2
] + [BenchCase("rtf", h, w, repeats=3 if h * w < 100_000 else 1) for h, w in SIZES]
DEBLUR_CASES = [
    DeblurBenchCase(None, 1000, 1000),  # 1 MP colour photo, the default method
    DeblurBenchCase("hl", 1000, 1000),
    DeblurBenchCase("hl", 3000, 4000),  # 12 MP, tile=auto under the default memory budget
]
SLOW_CASES = [DeblurBenchCase(None, 3000, 4000)]  # 12 MP with the default method


def training_throughput(threads: int) -> dict:
    """RPODM training samples/s: the Lightning loop against a plain PyTorch loop (same model, batches)."""
    import torch

    from podm_cli.training.throughput import compare_loops

    torch.set_num_threads(threads)
    r = compare_loops()
    return {"name": "train_throughput", "device": "cpu", "image_size": "64x64 crops",
            # seconds per training sample in the Lightning loop; the plain loop's figure is in the notes
            "seconds_median": 1.0 / r["lightning_samples_per_s"], "seconds_min": 1.0 / r["lightning_samples_per_s"],
            "repeats": 20, "peak_mem_mb": float("nan"),
            "notes": (f"{r['setting']}: Lightning {r['lightning_samples_per_s']:.2f} samples/s, plain loop "
                      f"{r['plain_samples_per_s']:.2f} samples/s, overhead {r['overhead_percent']:+.1f}%")}


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
    if not args.only or "train" in args.only:
        entries.append(training_throughput(args.threads))
    write_bench(entries, args.out)
    print_bench(entries)
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
