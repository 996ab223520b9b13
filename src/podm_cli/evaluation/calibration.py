"""Protocol calibration: which evaluation protocol reproduces the paper's TV/HL numbers?

The paper does not state its noise, boundary or crop protocol. TV and HL are deterministic, so running
them under candidate protocols and comparing with the paper's TV/HL rows tells which protocol the
paper's table most likely used. Each candidate restores the images once and is then scored several
ways (crop and shift search), since scoring does not change the restoration.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from statistics import fmean

import torch

from podm_cli.data.datasets import make_dataset
from podm_cli.evaluation.paper import paper_numbers
from podm_cli.metrics import Scoring, score


@dataclass(frozen=True)
class Candidate:
    """Data generation of one candidate: a protocol, optionally with another noise level."""

    protocol: str
    sigma: float | None = None
    limit: int | None = None

    @property
    def label(self) -> str:
        text = self.protocol
        if self.sigma is not None:
            text += f"[sigma={self.sigma * 255:.3g}/255]"
        if self.limit is not None:
            text += f"[first {self.limit}]"
        return text


# Scorings tried on every candidate: whole image, and crops of 20 / 50 px with best shift within +-10 px.
SCORINGS = {
    "whole": Scoring(0, 0),
    "crop20+shift": Scoring(20, 10),
    "crop50+shift": Scoring(50, 10),
}
LEVIN_CANDIDATES = [
    Candidate("levin"),
    Candidate("levin", sigma=1.5 / 255),
    Candidate("levin_valid"),
    Candidate("levin_valid", sigma=1.5 / 255),
    Candidate("levin_real"),
]
SUN_CANDIDATES = [Candidate("sun_substitute", limit=80)]


def restore_and_score(method, dataset, scorings: dict[str, Scoring], batch_size: int = 8) -> dict:
    """Restore every image of ``dataset`` once; mean PSNR/SSIM under each scoring + seconds per image."""
    sums = {name: ([], []) for name in scorings}
    seconds = []
    items = [dataset[i] for i in range(len(dataset))]
    groups: dict[tuple, list] = {}
    for item in items:
        groups.setdefault((tuple(item.blurred.shape), tuple(item.kernel.shape)), []).append(item)
    for group in groups.values():
        for start in range(0, len(group), batch_size):
            batch = group[start:start + batch_size]
            y = torch.stack([s.blurred for s in batch])
            k = torch.stack([s.kernel for s in batch]).unsqueeze(1).to(y.dtype)
            sigma = torch.tensor([float(s.sigma) for s in batch], dtype=y.dtype)
            tic = time.perf_counter()
            x = method(y, k, sigma, mode=dataset.mode).clamp(0, 1).double()
            seconds.append((time.perf_counter() - tic) / len(batch))
            sharp = torch.stack([s.sharp for s in batch]).double()
            for name, scoring in scorings.items():
                p, s = score(x, sharp, scoring)
                sums[name][0].extend(p.tolist())
                sums[name][1].extend(s.tolist())
    return {
        name: {"psnr": fmean(p), "ssim": fmean(s), "n": len(p), "seconds": fmean(seconds)}
        for name, (p, s) in sums.items()
    }


def calibrate(methods: dict, root, candidates: list[Candidate], boundaries=("liu",), progress=print) -> list[dict]:
    """Rows (candidate, boundary, scoring, method, psnr, ssim, paper_psnr, gap) for every combination.

    ``boundaries`` are tried on ``valid`` candidates (circular data needs no boundary handling).
    """
    rows = []
    for candidate in candidates:
        dataset = make_dataset(candidate.protocol, root, sigma=candidate.sigma, limit=candidate.limit)
        for boundary in boundaries if dataset.mode == "valid" else ("-",):
            for name, method in methods.items():
                method.boundary = boundary if boundary != "-" else method.boundary
                tic = time.perf_counter()
                scores = restore_and_score(method, dataset, SCORINGS)
                label = candidate.label + ("" if boundary == "-" else f" ({boundary})")
                progress(f"{label:<46} {name:<4} {time.perf_counter() - tic:6.1f} s")
                rows += _rows(label, dataset.mode, name, candidate.protocol, scores)
    return rows


def _rows(label: str, mode: str, name: str, protocol: str, scores: dict) -> list[dict]:
    rows = []
    paper_psnr, paper_ssim = paper_numbers(name, protocol)
    for scoring, value in scores.items():
        rows.append({
            "candidate": label, "mode": mode, "scoring": scoring, "method": name,
            "psnr": value["psnr"], "ssim": value["ssim"], "n_images": value["n"],
            "seconds_per_image": value["seconds"], "paper_psnr": paper_psnr, "paper_ssim": paper_ssim,
            "gap": None if paper_psnr is None else value["psnr"] - paper_psnr,
        })
    return rows


def rank_protocols(rows: list[dict]) -> list[tuple[str, str, float, bool]]:
    """(candidate, scoring, mean |gap| over methods, HL beats TV) sorted by closeness to the paper."""
    keys = dict.fromkeys((r["candidate"], r["scoring"]) for r in rows if r["gap"] is not None)
    ranked = []
    for candidate, scoring in keys:
        mine = {r["method"]: r for r in rows if (r["candidate"], r["scoring"]) == (candidate, scoring)}
        gap = fmean(abs(r["gap"]) for r in mine.values())
        hl_beats_tv = "hl" in mine and "tv" in mine and mine["hl"]["psnr"] > mine["tv"]["psnr"]
        ranked.append((candidate, scoring, gap, hl_beats_tv))
    return sorted(ranked, key=lambda t: t[2])


def markdown(rows: list[dict]) -> str:
    lines = ["| candidate | blur | scoring | method | PSNR | SSIM | paper PSNR | paper SSIM | gap (dB) | n | s/img |",
             "|---|---|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        lines.append(
            f"| {r['candidate']} | {r['mode']} | {r['scoring']} | {r['method']} | {r['psnr']:.2f} | "
            f"{r['ssim']:.3f} | {r['paper_psnr']} | {r['paper_ssim']} | {r['gap']:+.2f} | {r['n_images']} | "
            f"{r['seconds_per_image']:.2f} |"
        )
    return "\n".join(lines) + "\n"
