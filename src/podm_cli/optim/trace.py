"""Per-iteration diagnostics of the iterative solvers, per image in the batch.

A :class:`Trace` holds one :class:`IterationRecord` per iteration (iteration 0 is the initial point). Each
record stores ``(N,)`` tensors (CPU, float64) so the accept / fallback decision, the objective and the
PSNR of every batch item can be read back; :meth:`Trace.rows` flattens them into plain dicts (one per
image and iteration, only while that image was still iterating), the format of ``curves.csv``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import torch
from torch import Tensor

__all__ = ["IterationRecord", "SolverResult", "Trace"]


def _cpu(t: Tensor | None) -> Tensor | None:
    return None if t is None else t.detach().to("cpu", torch.float64)


@dataclass
class IterationRecord:
    """What happened at one iteration ``l`` (``x^{l-1} -> x^l``) for each of the N images.

    Attributes:
        iteration: ``l`` (0 = the initial point).
        psi: ``Psi(x^l)``.
        rel_change: ``||x^l - x^{l-1}|| / ||x^{l-1}||`` (NaN at iteration 0).
        accepted: 1 where the network step ``x_G`` passed the checks, 0 where the solver fell back to a
            proximal-gradient step, NaN where no network step was tried (FISTA, post-schedule PG, it. 0).
        psnr: PSNR of ``clip(x^l, 0, 1)`` against the truth, when one was given (else NaN).
        active: whether the image was still iterating (False once it met the stopping rule).
        sigma: the denoiser noise level used at this stage, [0, 1] scale (NaN when none).
        error: ``||e||`` of the PODM error check (NaN when not computed).
        bound: ``C ||x_G - x^{l-1}||`` (NaN when not computed).
        psi_g: ``Psi(x_G)`` of the network candidate (NaN when not computed).
    """

    iteration: int
    psi: Tensor
    rel_change: Tensor
    accepted: Tensor
    psnr: Tensor
    active: Tensor
    sigma: float = math.nan
    error: Tensor | None = None
    bound: Tensor | None = None
    psi_g: Tensor | None = None

    def __post_init__(self):
        for name in ("psi", "rel_change", "accepted", "psnr", "error", "bound", "psi_g"):
            setattr(self, name, _cpu(getattr(self, name)))
        self.active = self.active.detach().to("cpu", torch.bool)


@dataclass
class Trace:
    """All iteration records of one solver run on a batch."""

    method: str
    records: list[IterationRecord] = field(default_factory=list)

    def append(self, record: IterationRecord) -> None:
        self.records.append(record)

    def __len__(self) -> int:
        return len(self.records)

    def stack(self, name: str) -> Tensor:
        """``(iterations + 1, N)`` tensor of one field (NaN where not recorded)."""
        cols = []
        for r in self.records:
            v = getattr(r, name)
            if v is None:
                v = torch.full_like(r.psi, math.nan)
            elif isinstance(v, float):
                v = torch.full_like(r.psi, v)
            cols.append(v.to(torch.float64))
        return torch.stack(cols)

    def rows(self, image_names: list[str] | None = None) -> list[dict]:
        """One dict per (image, iteration) while the image was active; keys of ``curves.csv`` plus extras."""
        out = []
        if not self.records:
            return out
        n = self.records[0].psi.numel()
        for i in range(n):
            for r in self.records:
                if not bool(r.active[i]):
                    break
                acc = float(r.accepted[i])
                out.append(
                    {
                        "method": self.method,
                        "image": image_names[i] if image_names else i,
                        "iteration": r.iteration,
                        "psi": float(r.psi[i]),
                        "rel_change": float(r.rel_change[i]),
                        "psnr": float(r.psnr[i]),
                        "accepted": "" if math.isnan(acc) else int(acc),
                        "sigma": r.sigma,
                        "error": math.nan if r.error is None else float(r.error[i]),
                        "bound": math.nan if r.bound is None else float(r.bound[i]),
                    }
                )
        return out


@dataclass
class SolverResult:
    """Output of a solver: the final batch ``x``, its trace, iterations run and convergence per image."""

    x: Tensor
    trace: Trace
    iterations: Tensor  # (N,) int64: iterations run by each image
    converged: Tensor  # (N,) bool: met the relative-change tolerance within the budget

    @property
    def acceptance_rate(self) -> Tensor:
        """Per image: accepted network steps / network steps tried (NaN if none was tried)."""
        acc = self.trace.stack("accepted")[1:]
        active = torch.stack([r.active for r in self.trace.records[1:]]) if len(self.trace) > 1 else None
        if active is None:
            return torch.full((self.x.shape[0],), math.nan, dtype=torch.float64)
        tried = (~torch.isnan(acc)) & active
        num = torch.where(tried, acc, torch.zeros_like(acc)).sum(0)
        den = tried.sum(0).to(torch.float64)
        return torch.where(den > 0, num / den.clamp(min=1), torch.full_like(num, math.nan))
