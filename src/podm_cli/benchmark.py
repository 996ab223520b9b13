"""Speed and memory benchmarks of the methods (``make bench``); never timed asserts in tests.

Each case runs in its own spawned process so the peak resident memory (CPU) or the peak CUDA
allocation belongs to that case alone. :class:`BenchCase` times a method on a grey image;
:class:`DeblurBenchCase` times ``podm deblur``'s whole path (read, restore with tiling, write) on a synthetic
colour photo; :func:`measure_memory_per_pixel` measures what ``tile=auto`` budgets with.
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
    notes: str = ""


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

    from podm_cli.data.locator import data_root
    from podm_cli.kernels import random_motion_kernel
    from podm_cli.physics import Blur, add_gaussian_noise

    torch.set_num_threads(threads)
    generator = torch.Generator().manual_seed(0)
    method = _instantiate_method(case.name, case.overrides)
    missing = method.missing(data_root())
    if missing:
        queue.put({"skipped": f"{case.name}: {missing}"})
        return
    method = method.to(device)
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


# ----------------------------------------------------------------------------------- podm deblur on photos
@dataclass(frozen=True)
class DeblurBenchCase:
    """``podm deblur`` (read, restore, write) on a synthetic colour photo of ``height x width`` pixels.

    ``method=None`` is the default method of ``configs/deblur.yaml``; tiling follows ``tile`` and
    ``memory_budget_mb`` as on the command line (defaults: auto, the config's budget).
    """

    method: str | None
    height: int
    width: int
    kernel_size: int = 31
    tile: int | str | None = "auto"
    memory_budget_mb: float | None = None
    repeats: int = 1
    overrides: tuple[str, ...] = ()

    @property
    def name(self) -> str:
        return f"deblur:{self.method or default_deblur_method()}"


def default_deblur_method() -> str:
    """The method ``podm deblur`` uses when none is given (``configs/deblur.yaml``'s defaults list)."""
    from omegaconf import OmegaConf

    from podm_cli.apps import config_dir

    cfg = OmegaConf.load(config_dir() / "deblur.yaml")
    for item in cfg.defaults:
        if isinstance(item, dict) or OmegaConf.is_dict(item):
            if "method" in item:
                return str(item["method"])
    raise RuntimeError("configs/deblur.yaml names no default method")


def _deblur_config_value(key: str):
    from omegaconf import OmegaConf

    from podm_cli.apps import config_dir

    return OmegaConf.load(config_dir() / "deblur.yaml")[key]


def _synthetic_photo(height: int, width: int, seed: int = 0):
    """A (H, W, 3) uint8 'photo': smooth colour regions, edges and fine texture, blurred a little."""
    import numpy as np

    g = np.random.default_rng(seed)
    yy = np.arange(height, dtype=np.float32)[:, None]
    xx = np.arange(width, dtype=np.float32)[None, :]
    img = np.empty((height, width, 3), np.float32)
    for c in range(3):
        fy, fx, ph = g.uniform(0.002, 0.02, 2).tolist() + [g.uniform(0, 6.28)]
        img[..., c] = 0.5 + 0.25 * np.sin(fy * yy + ph) * np.cos(fx * xx)
    for _ in range(60):  # rectangles: edges for the deconvolution to restore
        y0, x0 = g.integers(0, height), g.integers(0, width)
        img[y0:y0 + g.integers(20, height // 4 + 21), x0:x0 + g.integers(20, width // 4 + 21)] = g.uniform(0, 1, 3)
    img += 0.03 * g.standard_normal((height, width, 1), dtype=np.float32)
    np.clip(img, 0, 1, out=img)
    return (img * 255).astype(np.uint8)


def _run_deblur_case(case: DeblurBenchCase, device: str, threads: int, queue) -> None:
    import tempfile

    import numpy as np
    import torch
    from hydra.utils import instantiate
    from omegaconf import OmegaConf
    from PIL import Image

    from podm_cli.apps import config_dir
    from podm_cli.data.locator import data_root
    from podm_cli.kernels import random_motion_kernel
    from podm_cli.restore import DeblurJob, DeblurOptions, run_job

    torch.set_num_threads(threads)
    name = case.method or default_deblur_method()
    budget = float(case.memory_budget_mb or _deblur_config_value("memory_budget_mb"))
    cfg = OmegaConf.merge(OmegaConf.load(config_dir() / "method" / f"{name}.yaml"),
                          OmegaConf.from_dotlist(list(case.overrides)))
    cfg.pop("defaults", None)
    method = instantiate(cfg).with_boundary(boundary="liu")
    missing = method.missing(data_root())
    if missing:
        queue.put({"skipped": f"{name}: {missing}"})
        return
    method.to(device)
    with tempfile.TemporaryDirectory(prefix="podm-bench-") as tmp:
        folder = Path(tmp)
        Image.fromarray(_synthetic_photo(case.height, case.width)).save(folder / "photo.jpg", quality=92)
        kernel = random_motion_kernel(case.kernel_size, generator=torch.Generator().manual_seed(0))
        np.save(folder / "kernel.npy", kernel.numpy())
        options = DeblurOptions(sigma="auto", device=device, tile=case.tile, memory_budget_mb=budget,
                                overwrite=True)
        if device.startswith("cuda"):
            torch.cuda.reset_peak_memory_stats()
        base = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        times, result = [], None
        for _ in range(case.repeats):
            start = time.perf_counter()
            result = run_job(DeblurJob(folder / "photo.jpg", folder / "kernel.npy", folder / "photo_podm.jpg"),
                             method, options)
            times.append(time.perf_counter() - start)
        if device.startswith("cuda"):
            peak = torch.cuda.max_memory_allocated() / 2**20
        else:
            peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    megapixels = case.height * case.width / 1e6
    notes = (f"{result.tiles} tile(s), budget {budget:g} MB, {statistics.median(times) / megapixels:.1f} s/MP, "
             f"process before the run {base:.0f} MB")
    queue.put(asdict(BenchEntry(f"deblur:{name}", device, f"{case.height}x{case.width}x3",
                                statistics.median(times), min(times), case.repeats, round(peak, 1), notes)))


# ------------------------------------------------------------------------ memory per pixel (tile=auto)
def _memory_case(name: str, overrides: tuple[str, ...], size: int, channels: int, queue) -> None:
    import torch

    from podm_cli.kernels import random_motion_kernel
    from podm_cli.physics import next_fast_len

    torch.set_num_threads(1)
    method = _instantiate_method(name, overrides)
    method.boundary = "liu"
    kernel = random_motion_kernel(27, generator=torch.Generator().manual_seed(0)).float()
    method(torch.rand(channels, 1, 64, 64), kernel, 0.01, mode="valid")  # load nets, LUTs, FFT plans
    base = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    method(torch.rand(channels, 1, size, size), kernel, 0.01, mode="valid")
    grown = (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - base) * 1024
    queue.put(grown / (channels * next_fast_len(size + 26) ** 2))


#: Methods and the (cheap) settings used to measure their memory: memory does not depend on iterations.
MEMORY_CASES = {"tv": (), "hl": (), "ircnn": ("iterations=2",), "podm": ("stages=2",), "rtf": ()}


def measure_memory_per_pixel(names=None, sizes=((512, 1), (768, 1), (512, 3))) -> dict[str, list[float]]:
    """Peak resident-memory growth per extended pixel and channel (bytes) of each method on CPU.

    Each measurement runs in a fresh spawned process (peak RSS only grows); methods needing weights are
    skipped when the weights are absent. :data:`podm_cli.tiling.MEMORY_PER_PIXEL` rounds these up.
    """
    from podm_cli.data.locator import data_root

    ctx = mp.get_context("spawn")
    out: dict[str, list[float]] = {}
    for name, overrides in MEMORY_CASES.items():
        if names and name not in names:
            continue
        if _instantiate_method(name, overrides).missing(data_root()):
            continue
        values = []
        for size, channels in sizes:
            queue = ctx.Queue()
            proc = ctx.Process(target=_memory_case, args=(name, overrides, size, channels, queue))
            proc.start()
            proc.join()
            if proc.exitcode != 0:
                raise RuntimeError(f"memory measurement of {name} failed with exit code {proc.exitcode}")
            values.append(round(queue.get(), 1))
        out[name] = values
    return out


def run_cases(cases: list, device: str = "cpu", threads: int = 2) -> list[dict]:
    """Run each case in a fresh spawned process; returns the bench.json entries."""
    ctx = mp.get_context("spawn")
    entries = []
    for case in cases:
        queue = ctx.Queue()
        target = _run_deblur_case if isinstance(case, DeblurBenchCase) else _run_case
        proc = ctx.Process(target=target, args=(case, device, threads, queue))
        proc.start()
        proc.join()
        if proc.exitcode != 0:
            raise RuntimeError(f"benchmark case {case} failed with exit code {proc.exitcode}")
        entry = queue.get()
        if "skipped" in entry:
            print(f"skipped {entry['skipped']}")
            continue
        entries.append(entry)
    return entries


def write_bench(entries: list[dict], path: Path) -> None:
    import json

    from podm_cli.atomic import atomic_write_text

    atomic_write_text(Path(path), json.dumps({"entries": entries}, indent=2) + "\n")


def print_bench(entries: list[dict]) -> None:
    from rich.console import Console
    from rich.table import Table

    table = Table(title="podm bench")
    columns = ("name", "device", "image_size", "seconds_median", "seconds_min", "repeats", "peak_mem_mb", "notes")
    for column in columns:
        table.add_column(column, justify="left" if column in ("name", "device", "image_size", "notes") else "right")
    for e in entries:
        table.add_row(e["name"], e["device"], e["image_size"], f"{e['seconds_median']:.3f}",
                      f"{e['seconds_min']:.3f}", str(e["repeats"]), f"{e['peak_mem_mb']:.0f}", e.get("notes", ""))
    Console().print(table)
