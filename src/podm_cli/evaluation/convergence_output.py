"""Output of the convergence study (:mod:`podm_cli.evaluation.convergence`): files, plots, summary lines,
and curves averaged over several runs.

:func:`write_study` writes ``curves.csv`` (method, iteration, psi, rel_change, psnr, accepted, sigma, error,
bound), ``psi.png``, ``rel_change.png``, ``psnr.png`` and ``summary.json``; :func:`summary_lines` gives one
line per method plus the PODM-vs-FISTA objective comparison; :func:`average_curves` /
:func:`write_mean_curves` average a multirun's ``curves.csv`` files.
"""

from __future__ import annotations

import csv
import json
import math
import os
from collections.abc import Sequence
from pathlib import Path

from podm_cli.atomic import atomic_path, atomic_write_text
from podm_cli.errors import InputError
from podm_cli.evaluation.convergence import CURVE_COLUMNS, StudyReport

__all__ = ["MEAN_COLUMNS", "average_curves", "read_curves", "summary_lines", "write_mean_curves", "write_study"]

_LABELS = {"fista": "FISTA", "mfista": "MFISTA", "ircnn": "IRCNN (HQS)", "podm": "PODM"}
_COLORS = {"fista": "tab:blue", "mfista": "tab:cyan", "ircnn": "tab:orange", "podm": "tab:green"}


# --------------------------------------------------------------------------------------------- output
def _fmt(v, spec: str = ".4g") -> str:
    return "n/a" if v is None or (isinstance(v, float) and math.isnan(v)) else format(v, spec)


def _its(n: int) -> str:
    return f"{n} iteration" + ("" if n == 1 else "s")


def _summary_line(s: dict, tolerance: float) -> str:
    to_tol = s["iterations_to_tolerance"]
    reach = f"rel. change < {tolerance:g} at iteration {to_tol}" if to_tol is not None else (
        f"rel. change >= {tolerance:g} through {s['iterations']} iterations"
    )
    acc = "" if s["acceptance_rate"] is None else f", acceptance {100 * s['acceptance_rate']:.0f}%"
    return (
        f"{_LABELS.get(s['method'], s['method']):<12} {reach}; final Psi {_fmt(s['final_psi'], '.6g')}, "
        f"final PSNR {_fmt(s['final_psnr'], '.2f')} dB (best {_fmt(s['best_psnr'], '.2f')}){acc}, "
        f"{s['seconds']:.1f} s"
    )


def summary_lines(report: StudyReport) -> list[str]:
    """One line per method, then the PODM-vs-FISTA objective comparison (when both ran)."""
    head = (
        f"{report.sample.protocol} {report.sample.name}: {report.max_iterations} iterations max, "
        f"tolerance {report.tolerance:g}"
    )
    lines = [head]
    lines += [_summary_line(s, report.tolerance) for s in report.summaries().values()]
    c = report.comparison()
    if c is not None:
        if c["podm_iterations_to_fista_final_psi"] is not None:
            lines.append(
                f"PODM reaches FISTA's final Psi ({c['fista_final_psi']:.6g}) in "
                f"{_its(c['podm_iterations_to_fista_final_psi'])} vs FISTA's {c['fista_iterations']}"
            )
        else:
            gap = 100 * (c["podm_final_psi"] / c["fista_final_psi"] - 1) if c["fista_final_psi"] else math.nan
            lines.append(
                f"PODM does not reach FISTA's final Psi ({c['fista_final_psi']:.6g}, after {c['fista_iterations']} "
                f"iterations) within its {c['podm_iterations']} (its final Psi {c['podm_final_psi']:.6g}, "
                f"{gap:+.2f}%)"
            )
        f_reach = c["fista_iterations_to_podm_final_psi"]
        lines.append(
            f"FISTA reaches PODM's final Psi ({c['podm_final_psi']:.6g}) in "
            + (_its(f_reach) if f_reach is not None else f"none of its {c['fista_iterations']} iterations")
            + f" vs PODM's {c['podm_iterations']}"
        )
    return lines


def _csv_text(rows: list[dict], columns: Sequence[str] = CURVE_COLUMNS) -> str:
    import io

    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=list(columns), lineterminator="\n")
    writer.writeheader()
    for row in rows:
        writer.writerow({k: ("" if isinstance(row[k], float) and math.isnan(row[k]) else row[k]) for k in columns})
    return buf.getvalue()


def _axes():
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(6.0, 4.0), dpi=120)
    FigureCanvasAgg(fig)
    return fig, fig.add_subplot(1, 1, 1)


def _save_plot(fig, ax, ylabel: str, title: str, log_y: bool, path: Path) -> None:
    """Shared styling of every convergence plot, written atomically."""
    if log_y:
        ax.set_yscale("log")
    ax.set_xlabel("iteration")
    ax.set_ylabel(ylabel)
    ax.set_title(title)
    ax.grid(True, alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png")


def _plot(report: StudyReport, key: str, ylabel: str, path: Path, log_y: bool) -> None:
    fig, ax = _axes()
    for m, run in report.runs.items():
        values = getattr(run, key).numpy()
        its = list(range(len(values)))
        ax.plot(its, values, label=_LABELS.get(m, m), color=_COLORS.get(m))
        if m == "podm" and key in ("psi", "rel_change"):
            acc = run.accepted.numpy()
            rej = [i for i in its if acc[i] == 0]
            if rej:
                ax.scatter(rej, values[rej], marker="x", s=14, color="tab:red", zorder=3, label="PODM fallback")
    if key == "rel_change":
        ax.axhline(report.tolerance, color="grey", lw=0.8, ls="--", label=f"tolerance {report.tolerance:g}")
    _save_plot(fig, ax, ylabel, f"{report.sample.protocol} {report.sample.name}", log_y, path)


def write_study(report: StudyReport, out_dir: str | os.PathLike, plots: bool = True) -> dict[str, Path]:
    """Write ``curves.csv``, ``summary.json`` and (``plots``) ``psi.png``, ``rel_change.png``, ``psnr.png``."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    paths = {"curves": out / "curves.csv", "summary": out / "summary.json"}
    atomic_write_text(paths["curves"], _csv_text(report.rows()))
    if plots:
        for key, ylabel, log_y, fname in (
            ("psi", "Psi(x)", True, "psi.png"),
            ("rel_change", "||x^l - x^{l-1}|| / ||x^{l-1}||", True, "rel_change.png"),
            ("psnr", "PSNR (dB)", False, "psnr.png"),
        ):
            paths[key] = out / fname
            _plot(report, key, ylabel, paths[key], log_y)
    summary = {
        "protocol": report.sample.protocol,
        "image": report.sample.name,
        "sigma": report.sample.sigma,
        "kernel_size": list(report.sample.kernel.shape),
        "max_iterations": report.max_iterations,
        "tolerance": report.tolerance,
        "methods": report.summaries(),
        "podm_vs_fista": report.comparison(),
        "settings": report.settings,
        "lines": summary_lines(report),
    }
    atomic_write_text(paths["summary"], json.dumps(summary, indent=2, default=str) + "\n")
    return paths


# --------------------------------------------------------------------------------------------- sweeps
_NUMERIC = ("psi", "rel_change", "psnr", "accepted")


def read_curves(path: str | os.PathLike) -> dict[str, list[dict]]:
    """One ``curves.csv`` as ``{method: [row, ...]}`` sorted by iteration (empty cells -> NaN)."""
    out: dict[str, list[dict]] = {}
    with open(path, newline="") as fh:
        for row in csv.DictReader(fh):
            rec = {"iteration": int(row["iteration"])}
            for key in _NUMERIC:
                cell = row.get(key, "")
                rec[key] = float(cell) if cell not in ("", None) else math.nan
            out.setdefault(row["method"], []).append(rec)
    for rows in out.values():
        rows.sort(key=lambda r: r["iteration"])
    return out


def average_curves(paths: Sequence[str | os.PathLike], fill: str = "last") -> list[dict]:
    """Average several ``curves.csv`` (e.g. a multirun over images/kernels) per method and iteration.

    Runs stop at different iterations. ``fill="last"`` carries each run's final row forward to the
    method's longest run (a stopped iterate no longer changes), so every average is over all runs;
    ``fill="none"`` averages only the runs still going (column ``n`` counts them). NaN cells (e.g.
    ``accepted`` where no network step was tried) are left out of their column's mean.
    Returns rows with ``method, iteration, n, psi, rel_change, psnr, accepted``.
    """
    if fill not in ("last", "none"):
        raise InputError(f"fill must be 'last' or 'none', got {fill!r}")
    if not paths:
        raise InputError("no curves.csv files to average")
    per_method: dict[str, list[list[dict]]] = {}
    for p in paths:
        for method, rows in read_curves(p).items():
            per_method.setdefault(method, []).append(rows)
    out = []
    for method, runs in per_method.items():
        length = max(r[-1]["iteration"] for r in runs) + 1
        for it in range(length):
            values = {k: [] for k in _NUMERIC}
            n = 0
            for rows in runs:
                by_it = rows[it] if it < len(rows) and rows[it]["iteration"] == it else None
                if by_it is None:
                    by_it = next((r for r in rows if r["iteration"] == it), None)
                if by_it is None and fill == "last" and it > rows[-1]["iteration"]:
                    by_it = dict(rows[-1])
                    by_it["accepted"] = math.nan  # nothing was tried after the run stopped
                if by_it is None:
                    continue
                n += 1
                for k in _NUMERIC:
                    if not math.isnan(by_it[k]):
                        values[k].append(by_it[k])
            if n == 0:
                continue
            row = {"method": method, "iteration": it, "n": n}
            for k in _NUMERIC:
                row[k] = sum(values[k]) / len(values[k]) if values[k] else math.nan
            out.append(row)
    return out


MEAN_COLUMNS = ("method", "iteration", "n", "psi", "rel_change", "psnr", "accepted")
_MEAN_PLOTS = (("psi", "mean Psi(x)", True), ("rel_change", "mean relative change", True),
               ("psnr", "mean PSNR (dB)", False))


def write_mean_curves(rows: list[dict], out_dir: str | os.PathLike, runs: int, plots: bool = True) -> list[Path]:
    """Write :func:`average_curves` rows as ``curves_mean.csv`` and (``plots``) ``<key>_mean.png``."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    written = [out / "curves_mean.csv"]
    atomic_write_text(written[0], _csv_text(rows, MEAN_COLUMNS))
    if not plots:
        return written
    methods = list(dict.fromkeys(r["method"] for r in rows))
    for key, ylabel, log_y in _MEAN_PLOTS:
        fig, ax = _axes()
        for m in methods:
            pts = [(r["iteration"], r[key]) for r in rows if r["method"] == m and not math.isnan(r[key])]
            if pts:
                ax.plot(*zip(*pts), label=_LABELS.get(m, m), color=_COLORS.get(m))
        path = out / f"{key}_mean.png"
        _save_plot(fig, ax, ylabel, f"average over {runs} run(s)", log_y, path)
        written.append(path)
    return written
