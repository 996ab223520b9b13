"""Run methods over evaluation protocols and collect per-image scores (library code, no Hydra).

Example (needs the Levin data, see ``podm data fetch levin``)::

    from podm_cli.evaluation.runner import EvalRunner
    datasets, notices = resolve_datasets(["levin"], data_root, limit=None)
    outcome = EvalRunner({"tv": TV()}, datasets, out_dir).run()
"""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import torch

from podm_cli import __version__
from podm_cli.data.datasets import SyntheticDataset, make_dataset
from podm_cli.errors import DataNotFoundError, InputError, PodmError
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


def noise_levels(value) -> list[float] | None:
    """``podm eval``'s ``sigma``: None, a noise level on [0, 1] or a list of them, as a list of distinct
    floats (None: every protocol at its own level). Raises :class:`InputError` for anything else.

    >>> noise_levels(0.02), noise_levels([0.005, 0.01, 0.01, 1]), noise_levels(None)
    ([0.02], [0.005, 0.01, 1.0], None)
    """
    if value is None:
        return None
    values = list(value) if isinstance(value, (list, tuple)) else [value]
    ok = bool(values) and all(isinstance(v, (int, float)) and not isinstance(v, bool) and 0 <= v <= 1
                              for v in values)  # NaN fails 0 <= v
    if not ok:
        raise InputError(f"sigma must be a noise level on [0, 1] or a non-empty list of them (e.g. sigma=0.02 or "
                         f"'sigma=[0.01,0.02]'), got {value!r}")
    return list(dict.fromkeys(float(v) for v in values))


def _at_level(dataset, level: float | None):
    """Say in ``dataset.note`` what a noise level other than the protocol's own means for it."""
    if level is not None and dataset.protocol != dataset.protocol.split("[", 1)[0]:
        what = (f"Gaussian noise of std {level:g} instead of the protocol's level"
                if isinstance(dataset, SyntheticDataset)
                else f"the captured images are unchanged; {level:g} is only the noise level given to methods")
        dataset.note = f"{dataset.note} -- here sigma={level:g}: {what}"
    return dataset


def resolve_datasets(names: list[str], root: Path | None, limit, sigmas: list[float] | None = None
                     ) -> tuple[list, list[str]]:
    """Build the datasets, replacing an absent real ``sun`` by ``sun_substitute`` (said in a notice).

    ``limit``: None, a number of images for every dataset, or ``{name: number or None}``. ``sigmas``
    (:func:`noise_levels`): every dataset once per noise level, in that order within each dataset; a level
    other than a protocol's own renames it (``levin_valid_whole[sigma=0.02]``, see
    :func:`~podm_cli.data.datasets.make_dataset`), so its results never mix with the protocol's. On the
    captured ``levin_real`` / released ``sun`` data the level is only the input sigma given to methods.
    Each dataset gets ``n_total`` (its size without a limit); a subset is said in a notice (not comparable
    with published numbers). Raises :class:`DataNotFoundError` for any other missing data, before any
    method runs.
    """
    datasets, notices = [], []
    levels = sigmas if sigmas else [None]

    def build(name: str, limit_of: str) -> list:
        n = limit.get(limit_of) if isinstance(limit, dict) else limit
        total = len(make_dataset(name, root)) if n is not None else None
        built = [_at_level(make_dataset(name, root, sigma=level, limit=n), level) for level in levels]
        for dataset in built:
            dataset.n_total = total if total is not None else len(dataset)
        return built

    for name in dict.fromkeys(names):  # keep order, drop repeats
        try:
            datasets += build(name, name)
        except DataNotFoundError:
            if name != "sun":
                raise
            notices.append(
                "the real Sun et al. data is absent: using sun_substitute (BSD68 + Set12, Sun's recipe), "
                "which is NOT comparable with published Sun numbers"
            )
            if "sun_substitute" not in names:
                datasets += build("sun_substitute", "sun")
    unique: dict[str, object] = {}
    for dataset in datasets:  # one per protocol name (sigma=0.01 on levin is levin itself)
        unique.setdefault(dataset.protocol, dataset)
    datasets = list(unique.values())
    for dataset in datasets:
        if len(dataset) < dataset.n_total:
            notices.append(f"SUBSET: {dataset.protocol} {len(dataset)} of {dataset.n_total} images: not "
                           f"comparable with the paper")
    if sigmas:
        captured = dict.fromkeys(d.protocol.split("[", 1)[0] for d in datasets
                                 if not isinstance(d, SyntheticDataset))
        notices.append(f"noise sweep: every dataset at sigma {', '.join(f'{s:g}' for s in sigmas)} (a level other "
                       f"than a protocol's own is in its name)"
                       + (f"; on captured data ({', '.join(captured)}) the level is only the input sigma given "
                          f"to methods" if captured else ""))
    return datasets, notices


#: Measured seconds per megapixel of blurred image, per method, on the 2 CPU cores of the development machine,
#: idle (2026-12-02: the levin_real / levin_valid_whole / levin runs of docs/training.md and
#: ``podm eval methods=[epll,csf,csf_5x5,csf_official,rtf,podm,podm_authors] datasets=[levin_real] limit=4``;
#: median over protocols). Used only to estimate a run's time before it starts.
SECONDS_PER_MEGAPIXEL_CPU = {
    "hl": 0.8, "csf_official": 1.1, "csf": 1.3, "tv": 1.4, "rtf": 4.7, "fdn": 17.5, "rpodm": 22.0,
    "rpodm_edgetaper": 25.0, "rpodm_levin": 26.0, "csf_5x5": 25.5, "ircnn": 80.0, "podm": 99.0,
    "podm_authors": 113.0, "epll": 173.0,
}


def estimate_seconds(method: str, datasets: list, device: str = "cpu") -> float | None:
    """Estimated seconds for ``method`` on ``datasets`` (None: not measured, or not on a CPU)."""
    rate = SECONDS_PER_MEGAPIXEL_CPU.get(method)
    if rate is None or device != "cpu":
        return None
    total = 0.0
    for dataset in datasets:
        if len(dataset):
            total += len(dataset) * dataset[0].blurred.numel() / 1e6 * rate
    return total


def describe_plan(methods: list[str], datasets: list, device: str = "cpu") -> tuple[str, float | None]:
    """One line: methods x datasets x images and the estimated time; returns (line, seconds or None)."""
    parts = [f"{d.protocol} {len(d)}" + (f" of {d.n_total}" if len(d) < getattr(d, "n_total", len(d)) else "")
             for d in datasets]
    n = sum(len(d) for d in datasets) * len(methods)
    estimates = {m: estimate_seconds(m, datasets, device) for m in methods}
    known = [v for v in estimates.values() if v is not None]
    unknown = [m for m, v in estimates.items() if v is None]
    line = (f"plan: {_plural(len(methods), 'method')} ({', '.join(methods)}) x {_plural(len(datasets), 'dataset')} "
            f"({', '.join(parts)} images) = {n} restorations")
    seconds = sum(known) if known else None
    if device != "cpu":
        line += f"; on {device}"
    elif seconds is not None:
        line += f"; estimated {_duration(seconds)} on 2 CPU cores"
        if unknown:
            line += f" plus {', '.join(unknown)} (not measured)"
    return line, seconds


def _plural(n: int, word: str) -> str:
    return f"{n} {word}" + ("" if n == 1 else "s")


def _duration(seconds: float) -> str:
    minutes = seconds / 60
    return f"{seconds:.0f} s" if seconds < 90 else f"{minutes:.0f} min" if minutes < 90 else f"{minutes / 60:.1f} h"


def fingerprint(*parts) -> str:
    """A short stable hash of JSON-able ``parts`` (dict keys sorted).

    >>> fingerprint({"lam": 1}, "levin") == fingerprint({"lam": 1}, "levin") != fingerprint({"lam": 2}, "levin")
    True
    """
    text = json.dumps(parts, sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def file_stamp(path) -> dict | None:
    """Size and modification time of a file (a cheap checksum of weights files), None if it is no file."""
    try:
        p = Path(path)
        if p.is_file():
            st = p.stat()
            return {"file": str(p.resolve()), "size": st.st_size, "mtime_ns": st.st_mtime_ns}
    except (OSError, ValueError):
        pass
    return None


def method_fingerprint(method: Method, config: dict | None = None) -> str:
    """What determines a method's rows: its config (or its simple attributes), the files it names (weights:
    size and mtime) and podm's version."""
    attributes = {k: v for k, v in vars(method).items() if isinstance(v, (bool, int, float, str, type(None)))}
    files = [file_stamp(v) for v in [*(config or {}).values(), *vars(method).values()]
             if isinstance(v, (str, Path)) and file_stamp(v)]
    return fingerprint(type(method).__qualname__, config if config is not None else attributes, files,
                       __version__)


def dataset_fingerprint(dataset) -> str:
    """What determines a protocol's rows: its name (which carries sigma / seed), version, mode and scoring."""
    scoring = dataset.scoring.describe() if hasattr(dataset.scoring, "describe") else str(dataset.scoring)
    version = getattr(dataset, "version", None) or getattr(getattr(dataset, "spec", None), "version", None)
    return fingerprint(dataset.protocol, version, dataset.mode, scoring)


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
        fingerprints: dict[str, str] | None = None,
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
        self.fingerprints = fingerprints or {}

    def keys(self, methods: dict[str, Method]) -> dict[tuple[str, str], str]:
        """The hash of what determines each (method, dataset) row (see :class:`PerImageCSV`)."""
        out = {}
        for name, method in methods.items():
            mfp = self.fingerprints.get(name) or method_fingerprint(method)
            for dataset in self.datasets:
                out[(name, dataset.protocol)] = fingerprint(mfp, dataset_fingerprint(dataset))
        return out

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
        keys = self.keys(runnable)
        table = PerImageCSV(self.out_dir / "per_image.csv", resume=self.resume, keys=keys)
        notices = []
        if self.resume:
            changed = sorted({f"{r[0]}/{r[1]}" for r in keys if not any(
                rec.method == r[0] and rec.dataset == r[1] for rec in table.records)})
            notice = f"resuming: {table.kept} of {table.kept + table.dropped} rows kept"
            if table.dropped:
                notice += (f"; {table.dropped} dropped (computed with another method config, weights, protocol or "
                           f"code version, or not in this run)")
            if changed:
                notice += f"; to compute: {', '.join(changed)}"
            print(notice, flush=True)
            notices.append(notice)
        examples: dict[str, dict[str, torch.Tensor]] = {}
        total = sum(len(d) for d in datasets) * len(runnable)
        with _progress(self.progress, total) as bar:
            for dataset in datasets:
                examples[dataset.protocol] = self._example_inputs(dataset)
                for name, method in runnable.items():
                    bar.describe(f"{name} / {dataset.protocol}")
                    key = keys[(name, dataset.protocol)]
                    self._run_one(name, method, dataset, table, bar, examples[dataset.protocol], key)
                    self._keep_example(name, method, dataset, examples[dataset.protocol], key)
        order = [(m, d.protocol) for d in datasets for m in runnable]
        sources = {name: getattr(method, "source", "recomputed") for name, method in runnable.items()}
        protocols = {d.protocol: _describe_protocol(d) for d in datasets}
        rows = summarise(table.records, sources, order)
        return EvalOutcome(rows, protocols, skipped, notices, examples)

    def _example_inputs(self, dataset) -> dict[str, torch.Tensor]:
        first = dataset[0]
        return {"_name": first.name, "blurred": first.blurred, "sharp": first.sharp}

    def _keep_example(self, name, method, dataset, example, key: str) -> None:
        """The strip's image of ``name`` on ``dataset``: saved when computed, read back (or recomputed, one
        image) when a resumed run skipped it, so a resumed run's report equals an uninterrupted one's."""
        path = self.out_dir / "examples" / dataset.protocol / f"{name}-{key}.pt"
        if name in example:
            path.parent.mkdir(parents=True, exist_ok=True)
            for stale in path.parent.glob(f"{name}-*.pt"):  # computed under another key
                stale.unlink(missing_ok=True)
            torch.save(example[name].contiguous(), path)
            return
        if path.is_file():
            try:
                example[name] = torch.load(path, map_location="cpu", weights_only=True)
                return
            except Exception:  # noqa: BLE001 - a damaged file is recomputed below
                path.unlink(missing_ok=True)
        sample = dataset[0]
        y = sample.blurred[None].to(self.device, self.dtype)
        k = sample.kernel[None, None].to(self.device, self.dtype)
        sigma = self._input_sigma(method, dataset, [sample])
        example[name] = method(y, k, sigma, mode=dataset.mode).clamp(0, 1).to(torch.float64)[0].cpu()
        path.parent.mkdir(parents=True, exist_ok=True)
        torch.save(example[name].contiguous(), path)

    def _input_sigma(self, method, dataset, samples) -> torch.Tensor:
        """The noise levels ``method`` restores ``samples`` with (raised where the protocol's kernel is
        approximate: :meth:`~podm_cli.methods.base.Method.input_sigma`)."""
        return torch.tensor([float(method.input_sigma(s.sigma, dataset.kernel)) for s in samples],
                            device=self.device, dtype=self.dtype)

    def _run_one(self, name, method, dataset, table: PerImageCSV, bar, example, key: str = "") -> None:
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
            sigma = self._input_sigma(method, dataset, batch)
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
                    ImageRecord(name, dataset.protocol, image, kernel, float(psnr[i]), float(ssim[i]), seconds, key)
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
        "n_total": getattr(dataset, "n_total", len(dataset)),
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
            from rich.markup import escape  # levin[sigma=0.02] is a name, not markup

            self._bar.update(self._task, description=escape(text))

    def advance(self, n: int) -> None:
        if self.enabled:
            self._bar.advance(self._task, n)

    def __exit__(self, *exc):
        if self.enabled:
            self._bar.stop()
        return False
