"""Per-image results on disk: an append-only CSV that survives interruption, and its summary rows."""

from __future__ import annotations

import csv
import math
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from statistics import fmean

from podm_cli.evaluation.paper import paper_numbers, published_numbers


@dataclass(frozen=True)
class ImageRecord:
    method: str
    dataset: str
    image: str
    kernel: str
    psnr: float
    ssim: float
    seconds: float
    key: str = ""  # hash of what determined this row (method config, weights, protocol, code version)


CSV_FIELDS = [f.name for f in fields(ImageRecord)]


class PerImageCSV:
    """``per_image.csv``: one row per (method, dataset, image), flushed as it is written.

    Re-opening an existing file (``resume=true``) keeps the rows whose ``key`` (the hash of what determines
    a row) is the one ``keys[(method, dataset)]`` this run computes, and lets the runner skip them; rows
    computed under another config, other weights, another protocol version or code version, or for a
    (method, dataset) pair this run does not have, are dropped (and recomputed where the run has the pair).
    ``kept`` / ``dropped`` count them.
    """

    def __init__(self, path: Path, resume: bool, keys: dict[tuple[str, str], str] | None = None):
        self.path = Path(path)
        self.records: list[ImageRecord] = []
        self.kept = self.dropped = 0
        if resume and self.path.exists():
            earlier = read_records(self.path)
            if keys is not None:
                self.records = [r for r in earlier if keys.get((r.method, r.dataset)) == r.key]
            else:
                self.records = earlier
            self.kept, self.dropped = len(self.records), len(earlier) - len(self.records)
        self._done = {(r.method, r.dataset, r.image, r.kernel) for r in self.records}
        # Rewrite from the parsed rows: a line cut short by a kill is dropped, not kept half-written.
        with open(self.path, "w", newline="") as handle:
            writer = csv.DictWriter(handle, fieldnames=CSV_FIELDS)
            writer.writeheader()
            writer.writerows(asdict(r) for r in self.records)

    def done(self, method: str, dataset: str, image: str, kernel: str) -> bool:
        return (method, dataset, image, kernel) in self._done

    def append(self, records: list[ImageRecord]) -> None:
        with open(self.path, "a", newline="") as handle:
            writer = csv.DictWriter(handle, fieldnames=CSV_FIELDS)
            writer.writerows(asdict(r) for r in records)
            handle.flush()
        self.records.extend(records)
        self._done.update((r.method, r.dataset, r.image, r.kernel) for r in records)


def read_records(path: Path) -> list[ImageRecord]:
    """Rows of a per-image CSV; incomplete or malformed lines (an interrupted write) are skipped."""
    records = []
    with open(path, newline="") as handle:
        for row in csv.DictReader(handle):
            try:
                records.append(
                    ImageRecord(
                        method=row["method"],
                        dataset=row["dataset"],
                        image=row["image"],
                        kernel=row["kernel"],
                        psnr=float(row["psnr"]),
                        ssim=float(row["ssim"]),
                        seconds=float(row["seconds"]),
                        key=row.get("key") or "",
                    )
                )
            except (KeyError, TypeError, ValueError):
                continue
    return records


def summarise(records: list[ImageRecord], sources: dict[str, str], order: list[tuple[str, str]]) -> list[dict]:
    """One summary row per (method, dataset) in ``order``, with the paper's numbers beside ours.

    PSNR is the mean of per-image PSNRs (the convention of the Levin/Sun literature).
    """
    rows = []
    for method, dataset in order:
        mine = [r for r in records if r.method == method and r.dataset == dataset]
        if not mine:
            continue
        paper_psnr, paper_ssim = paper_numbers(method, dataset)
        finite = [r.psnr for r in mine if math.isfinite(r.psnr)]
        rows.append(
            {
                "method": method,
                "dataset": dataset,
                "protocol": dataset,
                "psnr": round(fmean(finite), 4) if finite else float("inf"),
                "ssim": round(fmean(r.ssim for r in mine), 5),
                "n_images": len(mine),
                "seconds_per_image": round(fmean(r.seconds for r in mine), 4),
                "paper_psnr": paper_psnr,
                "paper_ssim": paper_ssim,
                "published": published_numbers(method, dataset),
                "source": sources.get(method, "recomputed"),
            }
        )
    return rows
