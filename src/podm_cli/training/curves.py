"""Read a training run's TensorBoard scalars and draw its validation curve (docs/training.md)."""

from __future__ import annotations

import glob
import os
from pathlib import Path

__all__ = ["plot_curves", "read_scalars"]


def read_scalars(run_dir: str | os.PathLike) -> dict[str, list[tuple[int, float, float]]]:
    """``{tag: [(step, wall_time, value), ...]}`` from every event file under ``run_dir`` (resumed runs
    included, later files win on repeated steps)."""
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    out: dict[str, dict[int, tuple[int, float, float]]] = {}
    files = sorted(glob.glob(str(Path(run_dir) / "**" / "events.out.tfevents*"), recursive=True), key=os.path.getmtime)
    for f in files:
        acc = EventAccumulator(f, size_guidance={"scalars": 0})
        acc.Reload()
        for tag in acc.Tags()["scalars"]:
            for e in acc.Scalars(tag):
                out.setdefault(tag, {})[e.step] = (e.step, e.wall_time, e.value)
    return {tag: [v[s] for s in sorted(v)] for tag, v in out.items()}


def plot_curves(scalars: dict, path: str | os.PathLike, references: dict[str, float] | None = None) -> Path:
    """Validation PSNR against step (with horizontal ``references``, e.g. IRCNN on the same pairs) and the
    training loss (averaged over 5 logged points), side by side; written atomically as PNG."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from podm_cli.atomic import atomic_path

    fig, (a, b) = plt.subplots(1, 2, figsize=(9, 3.2))
    val = scalars.get("val/psnr", [])
    a.plot([s + 1 for s, _, _ in val], [v for _, _, v in val], "o-", label="RPODM (val)")
    for (name, value), color in zip((references or {}).items(), ("gray", "tab:red", "tab:green", "tab:purple")):
        a.axhline(value, ls="--", lw=1, color=color, label=f"{name} {value:.2f}")
    a.legend(fontsize=7)
    a.set_xlabel("step")
    a.set_ylabel("PSNR (dB)")
    a.set_title("validation PSNR")
    loss = scalars.get("train/loss", [])
    vals = [v for _, _, v in loss]
    smooth = [sum(vals[max(0, i - 4) : i + 1]) / len(vals[max(0, i - 4) : i + 1]) for i in range(len(vals))]
    b.plot([s + 1 for s, _, _ in loss], smooth)
    b.set_xlabel("step")
    b.set_title("training L1 loss (5-point mean)")
    fig.tight_layout()
    path = Path(path)
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=110)
    plt.close(fig)
    return path
