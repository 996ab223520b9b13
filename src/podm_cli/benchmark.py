"""Speed and memory benchmarks of the methods (``make bench``); never timed asserts in tests.

Each case runs in its own spawned process so the peak resident memory (CPU) or the peak CUDA
allocation belongs to that case alone.
"""

from __future__ import annotations

import multiprocessing as mp
import resource
import statistics
import time
from dataclasses import asdict, dataclass
from pathlib import Path


@dataclass(frozen=True)
class BenchCase:
    name: str  # method name = configs/method/<name>.yaml
    height: int
    width: int
    kernel_size: int = 27
    repeats: int = 3
    overrides: tuple[str, ...] = ()  # method config overrides, e.g. ("max_iter=100",)


@dataclass
class BenchEntry:
    name: str
    device: str
    image_size: str
    seconds_median: float
    seconds_min: float
    repeats: int
    peak_mem_mb: float


def _instantiate_method(name: str, overrides: tuple[str, ...]):
    from hydra.utils import instantiate
    from omegaconf import OmegaConf

    from podm_cli.apps import config_dir

    cfg = OmegaConf.load(config_dir() / "method" / f"{name}.yaml")
    cfg = OmegaConf.merge(cfg, OmegaConf.from_dotlist(list(overrides)))
    cfg.pop("defaults", None)
    return instantiate(cfg)


def _run_case(case: BenchCase, device: str, threads: int, queue) -> None:
    import torch

    from podm_cli.kernels import random_motion_kernel
    from podm_cli.physics import Blur, add_gaussian_noise

    torch.set_num_threads(threads)
    generator = torch.Generator().manual_seed(0)
    method = _instantiate_method(case.name, case.overrides).to(device)
    x = torch.rand(1, 1, case.height, case.width, generator=generator)
    x = torch.nn.functional.avg_pool2d(x, 5, stride=1, padding=2)  # a little structure
    kernel = random_motion_kernel(case.kernel_size, generator=generator).to(torch.float32)
    y = add_gaussian_noise(Blur(kernel)(x), 0.01, seed=0).to(device)
    kernel = kernel.to(device)
    if device.startswith("cuda"):
        torch.cuda.reset_peak_memory_stats()
    times = []
    for _ in range(case.repeats + 1):  # the first run warms caches (OTFs, LUTs, cuDNN) and is dropped
        if device.startswith("cuda"):
            torch.cuda.synchronize()
        start = time.perf_counter()
        method(y, kernel, 0.01)
        if device.startswith("cuda"):
            torch.cuda.synchronize()
        times.append(time.perf_counter() - start)
    times = times[1:]
    if device.startswith("cuda"):
        peak = torch.cuda.max_memory_allocated() / 2**20
    else:
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux
    queue.put(asdict(BenchEntry(case.name, device, f"{case.height}x{case.width}", statistics.median(times),
                                min(times), case.repeats, round(peak, 1))))


def run_cases(cases: list[BenchCase], device: str = "cpu", threads: int = 2) -> list[dict]:
    """Run each case in a fresh spawned process; returns the bench.json entries."""
    ctx = mp.get_context("spawn")
    entries = []
    for case in cases:
        queue = ctx.Queue()
        proc = ctx.Process(target=_run_case, args=(case, device, threads, queue))
        proc.start()
        proc.join()
        if proc.exitcode != 0:
            raise RuntimeError(f"benchmark case {case} failed with exit code {proc.exitcode}")
        entries.append(queue.get())
    return entries


def write_bench(entries: list[dict], path: Path) -> None:
    import json

    from podm_cli.evaluation.report import write_atomic

    write_atomic(Path(path), json.dumps({"entries": entries}, indent=2) + "\n")


def print_bench(entries: list[dict]) -> None:
    from rich.console import Console
    from rich.table import Table

    table = Table(title="podm bench")
    for column in ("name", "device", "image_size", "seconds_median", "seconds_min", "repeats", "peak_mem_mb"):
        table.add_column(column, justify="left" if column in ("name", "device", "image_size") else "right")
    for e in entries:
        table.add_row(e["name"], e["device"], e["image_size"], f"{e['seconds_median']:.3f}",
                      f"{e['seconds_min']:.3f}", str(e["repeats"]), f"{e['peak_mem_mb']:.0f}")
    Console().print(table)
