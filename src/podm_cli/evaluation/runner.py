"""Run methods over evaluation protocols and collect per-image scores (library code, no Hydra).

Example (needs the Levin data, see ``podm data fetch levin``)::

    from podm_cli.evaluation.runner import EvalRunner
    datasets, notices = resolve_datasets(["levin"], data_root, limit=None)
    outcome = EvalRunner({"tv": TV()}, datasets, out_dir).run()
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import torch

from podm_cli.data.datasets import make_dataset
from podm_cli.errors import DataNotFoundError, PodmError
from podm_cli.evaluation.records import ImageRecord, PerImageCSV, summarise
from podm_cli.methods.base import Method
from podm_cli.metrics import score


@dataclass
class Skipped:
    method: str
    reason: str


@dataclass
class EvalOutcome:
    rows: list[dict]
    protocols: dict[str, dict]
    skipped: list[Skipped] = field(default_factory=list)
    notices: list[str] = field(default_factory=list)
    examples: dict[str, dict[str, torch.Tensor]] = field(default_factory=dict)  # dataset -> label -> image


def resolve_datasets(names: list[str], root: Path | None, limit: int | None) -> tuple[list, list[str]]:
    """Build the datasets, replacing an absent real ``sun`` by ``sun_substitute`` (said in a notice).

    Raises :class:`DataNotFoundError` for any other missing data, before any method runs.
    """
    datasets, notices = [], []
    for name in dict.fromkeys(names):  # keep order, drop repeats
        try:
            datasets.append(make_dataset(name, root, limit=limit))
        except DataNotFoundError:
            if name != "sun":
                raise
            notices.append(
                "the real Sun et al. data is absent: using sun_substitute (BSD68 + Set12, Sun's recipe), "
                "which is NOT comparable with published Sun numbers"
            )
            if "sun_substitute" not in names:
                datasets.append(make_dataset("sun_substitute", root, limit=limit))
    return datasets, notices


def _split_name(sample) -> tuple[str, str]:
    image = getattr(sample, "image", None)
    kernel = getattr(sample, "kernel_name", None)
    if image is not None and kernel is not None:
        return str(image), str(kernel)
    name = str(sample.name)
    head, sep, tail = name.rpartition("_k")
    return (head, f"k{tail}") if sep else (name, "")


def _batches(dataset, batch_size: int, todo) -> Iterator[list]:
    """Consecutive samples sharing image and kernel shapes (so they stack), at most ``batch_size``."""
    batch: list = []
    for index in range(len(dataset)):
        sample = dataset[index]
        if not todo(sample):
            continue
        key = (tuple(sample.blurred.shape), tuple(sample.kernel.shape))
        if batch and (len(batch) == batch_size or key != batch[0][0]):
            yield [s for _, s in batch]
            batch = []
        batch.append((key, sample))
    if batch:
        yield [s for _, s in batch]


class EvalRunner:
    """Evaluate ``methods`` (name -> :class:`Method`) on protocol datasets, writing ``per_image.csv``.

    ``datasets`` are protocol datasets (``make_dataset`` / :func:`resolve_datasets`), or any object with
    ``protocol``, ``mode``, ``scoring``, ``note``, ``root``, ``len()`` and indexing.
    """

    def __init__(
        self,
        methods: dict[str, Method],
        datasets: list,
        out_dir: Path,
        *,
        resume: bool = False,
        device: str = "cpu",
        dtype: torch.dtype = torch.float32,
        batch_size: int = 8,
        progress: bool = True,
    ):
        if batch_size < 1:
            raise PodmError(f"batch_size must be >= 1, got {batch_size}")
        self.methods = methods
        self.datasets = list(datasets)
        self.out_dir = Path(out_dir)
        self.resume = resume
        self.device = torch.device(device)
        self.dtype = dtype
        self.batch_size = batch_size
        self.progress = progress

    def run(self) -> EvalOutcome:
        datasets = self.datasets
        skipped, runnable = [], {}
        for name, method in self.methods.items():
            reason = method.missing(datasets[0].root) if datasets else None
            if reason:
                skipped.append(Skipped(name, reason))
            else:
                runnable[name] = method.to(self.device)
        self.out_dir.mkdir(parents=True, exist_ok=True)
        table = PerImageCSV(self.out_dir / "per_image.csv", resume=self.resume)
        examples: dict[str, dict[str, torch.Tensor]] = {}
        total = sum(len(d) for d in datasets) * len(runnable)
        with _progress(self.progress, total) as bar:
            for dataset in datasets:
                examples[dataset.protocol] = self._example_inputs(dataset)
                for name, method in runnable.items():
                    bar.describe(f"{name} / {dataset.protocol}")
                    self._run_one(name, method, dataset, table, bar, examples[dataset.protocol])
        order = [(m, d.protocol) for d in datasets for m in runnable]
        sources = {name: getattr(method, "source", "recomputed") for name, method in runnable.items()}
        protocols = {d.protocol: _describe_protocol(d) for d in datasets}
        rows = summarise(table.records, sources, order)
        return EvalOutcome(rows, protocols, skipped, [], examples)

    def _example_inputs(self, dataset) -> dict[str, torch.Tensor]:
        first = dataset[0]
        return {"_name": first.name, "blurred": first.blurred, "sharp": first.sharp}

    def _run_one(self, name, method, dataset, table: PerImageCSV, bar, example) -> None:
        def todo(sample) -> bool:
            image, kernel = _split_name(sample)
            done = table.done(name, dataset.protocol, image, kernel)
            if done:
                bar.advance(1)
            return not done

        for batch in _batches(dataset, self.batch_size, todo):
            y = torch.stack([s.blurred for s in batch]).to(self.device, self.dtype)
            sharp = torch.stack([s.sharp for s in batch]).to(self.device, torch.float64)
            kernels = torch.stack([s.kernel for s in batch]).unsqueeze(1).to(self.device, self.dtype)
            sigma = torch.tensor([float(s.sigma) for s in batch], device=self.device, dtype=self.dtype)
            if self.device.type == "cuda":
                torch.cuda.synchronize(self.device)
            start = time.perf_counter()
            x = method(y, kernels, sigma, mode=dataset.mode)
            if self.device.type == "cuda":
                torch.cuda.synchronize(self.device)
            seconds = (time.perf_counter() - start) / len(batch)
            x = x.clamp(0, 1).to(torch.float64)
            psnr, ssim = score(x, sharp, dataset.scoring)
            records = []
            for i, sample in enumerate(batch):
                image, kernel = _split_name(sample)
                records.append(
                    ImageRecord(name, dataset.protocol, image, kernel, float(psnr[i]), float(ssim[i]), seconds)
                )
                if sample.name == example["_name"]:
                    example[name] = x[i].cpu()
            table.append(records)
            bar.advance(len(batch))


def _describe_protocol(dataset) -> dict:
    scoring = dataset.scoring
    return {
        "version": getattr(dataset, "version", 1),
        "mode": dataset.mode,
        "n_images": len(dataset),
        "scoring": scoring.describe() if hasattr(scoring, "describe") else str(scoring),
        "note": getattr(dataset, "note", ""),
    }


class _progress:
    """A rich progress bar over images (or nothing when disabled)."""

    def __init__(self, enabled: bool, total: int):
        self.enabled = enabled
        self.total = total

    def __enter__(self):
        if self.enabled:
            from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

            self._bar = Progress(
                TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                transient=False,
            )
            self._bar.start()
            self._task = self._bar.add_task("eval", total=self.total)
        return self

    def describe(self, text: str) -> None:
        if self.enabled:
            self._bar.update(self._task, description=text)

    def advance(self, n: int) -> None:
        if self.enabled:
            self._bar.advance(self._task, n)

    def __exit__(self, *exc):
        if self.enabled:
            self._bar.stop()
        return False
