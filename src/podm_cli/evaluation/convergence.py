"""The convergence study of the paper's Fig. 2: FISTA, IRCNN and PODM on the same objective.

All methods are scored along their iterates by the same nonconvex objective
``Psi(x) = 1/2 ||k * x - y||^2 + g(x)`` (circular blur; ``g`` from the ``prior`` config group, by default the
PODM authors' ``1e-4 ||W x||_0.8^0.8`` on DCT coefficients), by the relative change
``||x^l - x^{l-1}|| / ||x^{l-1}||`` and by the PSNR of ``clip(x^l, 0, 1)`` against the sharp image:

* ``fista`` - FISTA on ``Psi`` (:func:`podm_cli.optim.fista.fista_solve`), ``mfista`` its monotone form;
* ``ircnn`` - IRCNN's HQS with the official bank and IRCNN's own schedule
  (:func:`podm_cli.optim.schedules.ircnn_schedule`; :func:`podm_cli.optim.hqs.hqs_solve`), continued past its
  schedule at the last level up to the iteration budget (``ircnn_hold_last``) -- it does not minimise ``Psi``;
* ``podm`` - PODM (:class:`podm_cli.methods.podm.PODM`) with the error check.

Every method stops at the same relative-change tolerance or iteration budget. Library code: plain
arguments, no Hydra (the ``podm converge`` app in :mod:`podm_cli.apps.converge` is a thin wrapper).

This module runs the study (:func:`load_study_sample`, :func:`run_convergence` -> :class:`StudyReport`);
:mod:`podm_cli.evaluation.convergence_output` writes it (``curves.csv``, plots, ``summary.json``, summary
lines) and averages curves over runs.
"""

from __future__ import annotations

import math
import os
import re
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field

import torch
from torch import Tensor

from podm_cli.errors import InputError
from podm_cli.optim.fista import fista_solve
from podm_cli.optim.hqs import hqs_solve
from podm_cli.optim.objective import Deconvolution
from podm_cli.optim.schedules import IRCNN_SIGMA_SCALE, ircnn_schedule
from podm_cli.optim.trace import SolverResult
from podm_cli.priors import Prior, build_prior

__all__ = [
    "CURVE_COLUMNS",
    "METHODS",
    "MethodRun",
    "StudyReport",
    "StudySample",
    "check_methods",
    "load_study_sample",
    "run_convergence",
]

METHODS = ("fista", "mfista", "ircnn", "podm")
CURVE_COLUMNS = ("method", "iteration", "psi", "rel_change", "psnr", "accepted", "sigma", "error", "bound")


# --------------------------------------------------------------------------------------------- input
@dataclass
class StudySample:
    """One observation for the study: ``y`` and ``truth`` are ``(1, 1, H, W)`` float64."""

    y: Tensor
    kernel: Tensor
    sigma: float
    truth: Tensor | None
    name: str
    protocol: str


def _index(value, what: str) -> int:
    m = re.search(r"(\d+)\s*$", str(value))
    if m is None:
        raise InputError(f"{what} must be a number or end with one (e.g. im_1, 1), got {value!r}")
    return int(m.group(1))


def load_study_sample(
    dataset: str = "levin",
    image="im_1",
    kernel=1,
    root: str | os.PathLike | None = None,
    sigma: float | None = None,
    crop: int | None = None,
    seed: int = 0,
) -> StudySample:
    """The ``dataset`` protocol's item for ``image`` (``im_1``/``im1``/``1``) and ``kernel`` (1..8).

    Only circular protocols fit the study's circular objective. ``crop`` (pixels) re-synthesises a
    smaller problem for quick runs: the centre ``crop x crop`` of the sharp image, blurred circularly by the
    same kernel, noise seeded from the item name; the protocol is then labelled ``<name>[crop=N]``.
    """
    from podm_cli.data.datasets import make_dataset
    from podm_cli.physics import Blur, add_gaussian_noise, image_seed

    ds = make_dataset(dataset, root, sigma=sigma, seed=seed, dtype=torch.float64)
    if ds.mode != "circular":
        raise InputError(
            f"podm converge needs a circular-blur protocol (its objective is circular); {dataset!r} is {ds.mode}"
        )
    name = f"im{_index(image, 'image')}_k{_index(kernel, 'kernel')}"
    if name not in ds.names:
        raise InputError(f"{dataset} has no item {name} (items: {ds.names[0]} .. {ds.names[-1]})")
    s = ds[ds.names.index(name)]
    y, truth, protocol = s.blurred[None], s.sharp[None], ds.protocol
    if crop is not None:
        crop = int(crop)
        h, w = truth.shape[-2:]
        kh, kw = s.kernel.shape
        if not (max(kh, kw) < crop <= min(h, w)):
            raise InputError(f"crop must be larger than the kernel ({kh}x{kw}) and at most {min(h, w)}, got {crop}")
        top, left = (h - crop) // 2, (w - crop) // 2
        truth = truth[..., top : top + crop, left : left + crop].contiguous()
        y = add_gaussian_noise(Blur(s.kernel)(truth), s.sigma, seed=image_seed(f"{name}_crop{crop}", seed))
        protocol = f"{protocol}[crop={crop}]"
    return StudySample(y=y, kernel=s.kernel, sigma=float(s.sigma), truth=truth, name=name, protocol=protocol)


# --------------------------------------------------------------------------------------------- running
@dataclass
class MethodRun:
    """One method's run: its solver result and wall time."""

    method: str
    result: SolverResult
    seconds: float

    @property
    def psi(self) -> Tensor:
        return self._col("psi")

    @property
    def rel_change(self) -> Tensor:
        return self._col("rel_change")

    @property
    def psnr(self) -> Tensor:
        return self._col("psnr")

    @property
    def accepted(self) -> Tensor:
        return self._col("accepted")

    def _col(self, name: str) -> Tensor:
        n = int(self.result.iterations[0]) + 1
        return self.result.trace.stack(name)[:n, 0]

    def summary(self, tolerance: float) -> dict:
        """Iterations run, first iteration with rel. change < tolerance, final Psi/PSNR, acceptance rate."""
        rel = self.rel_change
        below = torch.nonzero(rel < tolerance)
        acc = float(self.result.acceptance_rate[0])
        return {
            "method": self.method,
            "iterations": int(self.result.iterations[0]),
            "iterations_to_tolerance": int(below[0]) if below.numel() else None,
            "converged": bool(self.result.converged[0]),
            "final_psi": float(self.psi[-1]),
            "final_psnr": float(self.psnr[-1]),
            "best_psnr": float(torch.nan_to_num(self.psnr, nan=-math.inf).max()),
            "acceptance_rate": None if math.isnan(acc) else acc,
            "seconds": round(self.seconds, 3),
        }


@dataclass
class StudyReport:
    """Everything the study measured, plus what it was run on."""

    sample: StudySample
    runs: dict[str, MethodRun]
    tolerance: float
    max_iterations: int
    settings: dict = field(default_factory=dict)

    def rows(self) -> list[dict]:
        """``curves.csv`` rows."""
        out = []
        for run in self.runs.values():
            for row in run.result.trace.rows():
                row = dict(row)
                row["method"] = run.method
                out.append({k: row[k] for k in CURVE_COLUMNS})
        return out

    def summaries(self) -> dict[str, dict]:
        return {m: r.summary(self.tolerance) for m, r in self.runs.items()}

    def comparison(self) -> dict | None:
        """PODM vs FISTA on ``Psi``: who reaches whose final value, and when (``None`` without both)."""
        if "podm" not in self.runs or "fista" not in self.runs:
            return None
        p, f = self.runs["podm"], self.runs["fista"]
        target_f, target_p = float(f.psi[-1]), float(p.psi[-1])
        reach = lambda psi, target: (
            int(torch.nonzero(psi <= target)[0]) if bool((psi <= target).any()) else None
        )
        return {
            "fista_final_psi": target_f,
            "fista_iterations": int(f.result.iterations[0]),
            "podm_iterations_to_fista_final_psi": reach(p.psi, target_f),
            "podm_final_psi": target_p,
            "podm_iterations": int(p.result.iterations[0]),
            "fista_iterations_to_podm_final_psi": reach(f.psi, target_p),
        }


def check_methods(methods: Sequence[str]) -> list[str]:
    """The method names as a list; raises :class:`InputError` for an unknown or empty selection."""
    methods = [str(m) for m in methods]
    unknown = [m for m in methods if m not in METHODS]
    if unknown or not methods:
        raise InputError(f"unknown convergence method(s) {unknown or methods} (choose from {', '.join(METHODS)})")
    return methods


def _resolve_device(device: str | torch.device | None) -> torch.device:
    if device in (None, "auto"):
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    dev = torch.device(device)
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise InputError(f"device {device!r} requested but CUDA is not available")
    return dev


@torch.no_grad()
def run_convergence(
    sample: StudySample,
    *,
    methods: Sequence[str] = ("fista", "ircnn", "podm"),
    prior: Prior | Mapping | str | None = None,
    max_iterations: int = 100,
    tolerance: float = 1e-4,
    podm: Mapping | None = None,
    ircnn: Mapping | None = None,
    fista: Mapping | None = None,
    ircnn_hold_last: bool = True,
    denoiser: Callable[[Tensor, float], Tensor] | None = None,
    bank=None,
    weights: str | os.PathLike | None = None,
    data_root: str | os.PathLike | None = None,
    device: str | torch.device | None = "auto",
    precision: str = "float64",
    log: Callable[[str], None] | None = None,
) -> StudyReport:
    """Run the study on ``sample``.

    Args:
        methods: any of ``fista``, ``mfista``, ``ircnn``, ``podm`` (order kept in the outputs).
        prior: the ``g`` of ``Psi`` for every method (a :class:`Prior`, its config mapping or name;
            default: lp-DCT, p 0.8, lam 1e-4, 2 GST iterations). It is also PODM's G-step prior.
        max_iterations, tolerance: budget and relative-change stopping rule, the same for all methods.
        podm: :class:`~podm_cli.methods.podm.PODM` keyword arguments (``stages``, ``sigma_max``, ``mu``,
            ``descent_check``, ...); ``prior``, ``tol`` and ``max_iterations`` are taken from this call.
        ircnn: :class:`~podm_cli.methods.ircnn.IRCNN` keyword arguments (its schedule: ``stages``,
            ``denoiser_first``, ``denoiser_last``, ``rho_divisor``).
        fista: ``L``, ``monotone`` for :func:`~podm_cli.optim.fista.fista_solve`.
        ircnn_hold_last: run IRCNN's HQS past its schedule (last level held) up to ``max_iterations``;
            ``False`` stops it after its own ``iterations``.
        denoiser: a ``denoiser(x, sigma)`` used instead of the official bank (tests, other networks).
        bank, weights, data_root: an already-loaded bank, or where to load the official one from.
        device: ``auto`` | ``cpu`` | ``cuda[:N]``; precision: solver dtype (the nets run in float32).
        log: called with one progress line per finished method.
    """
    methods = check_methods(methods)
    if int(max_iterations) < 1 or not tolerance >= 0:
        raise InputError(f"need max_iterations >= 1 and tolerance >= 0, got {max_iterations}, {tolerance}")
    if precision not in ("float32", "float64"):
        raise InputError(f"precision must be float32 or float64, got {precision!r}")
    dev = _resolve_device(device)
    dtype = torch.float64 if precision == "float64" else torch.float32
    if isinstance(prior, Prior):
        g = prior
    elif isinstance(prior, Mapping):
        cfg = dict(prior)
        g = build_prior(cfg.pop("name", "lp_dct"), **cfg)
    else:
        g = build_prior(prior or "lp_dct", **({} if prior else {"p": 0.8, "lam": 1e-4, "gst_iterations": 2}))
    y = sample.y.to(device=dev, dtype=dtype)
    truth = None if sample.truth is None else sample.truth.to(device=dev, dtype=dtype)
    kernel = sample.kernel.to(device=dev, dtype=dtype)
    sigma = torch.tensor([sample.sigma], dtype=dtype, device=dev)
    problem = Deconvolution.circular(y, kernel, g)
    study_owned = ("_target_", "prior", "tol", "max_iterations", "precision", "denoiser", "bank", "weights",
                   "data_root", "mode", "boundary", "edgetaper_iterations")
    podm_kw = {k: v for k, v in dict(podm or {}).items() if k not in study_owned}
    ircnn_kw = {k: v for k, v in dict(ircnn or {}).items() if k not in ("_target_",)}
    fista_kw = dict(fista or {})
    log = log or (lambda line: None)

    needs_net = any(m in ("ircnn", "podm") for m in methods)
    den = denoiser
    if needs_net and den is None:
        if bank is None:
            from podm_cli.data.locator import data_root as locate
            from podm_cli.errors import DataNotFoundError
            from podm_cli.methods.ircnn import IRCNN

            loader = IRCNN(weights=weights, data_root=data_root)
            missing = loader.missing(locate(data_root))
            if missing:
                raise DataNotFoundError(missing)
            bank = loader.bank
        from podm_cli.methods.ircnn import bank_denoiser

        den = bank_denoiser(bank.to(dev))

    runs: dict[str, MethodRun] = {}
    for m in methods:
        t0 = time.perf_counter()
        if m in ("fista", "mfista"):
            res = fista_solve(
                problem,
                L=float(fista_kw.get("L", 1.0)),
                tol=tolerance,
                max_iterations=max_iterations,
                monotone=(m == "mfista") or bool(fista_kw.get("monotone", False)),
                truth=truth,
            )
        elif m == "ircnn":
            keys = {"stages": "stages", "denoiser_first": "first", "denoiser_last": "last",
                    "rho_divisor": "rho_divisor"}
            sched_kw = {arg: ircnn_kw[k] for k, arg in keys.items() if k in ircnn_kw}
            scale = float(ircnn_kw.get("sigma_scale", IRCNN_SIGMA_SCALE))  # as the ircnn method scales sigma
            levels, rho = ircnn_schedule(sigma.cpu() * scale, **sched_kw)
            budget = max_iterations if ircnn_hold_last else min(max_iterations, int(rho.shape[1]))
            res = hqs_solve(problem.data, den, levels.tolist(), rho.to(device=dev, dtype=dtype),
                            objective=problem, tol=tolerance, max_iterations=budget, truth=truth)
        else:
            from podm_cli.methods.podm import PODM

            method = PODM(
                **podm_kw, prior=g, tol=tolerance, max_iterations=max_iterations, precision=precision,
                denoiser=den,
            )
            res = method.solve(problem.data, sigma, truth=truth)
        res.trace.method = m
        runs[m] = MethodRun(m, res, time.perf_counter() - t0)
        log(f"{m}: {int(res.iterations[0])} iterations in {runs[m].seconds:.1f} s")
    settings = {
        "methods": methods,
        "prior": {k: v for k, v in vars(g).items() if not k.startswith("_")} | {"name": g.name},
        "podm": podm_kw,
        "ircnn": ircnn_kw | {"hold_last": ircnn_hold_last},
        "fista": fista_kw,
        "device": str(dev),
        "precision": precision,
    }
    return StudyReport(sample, runs, float(tolerance), int(max_iterations), settings)
