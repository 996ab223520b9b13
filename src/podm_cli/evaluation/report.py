"""Write an evaluation's outputs: results.json, table.md, report.html (+ strip PNGs) and the console table."""

from __future__ import annotations

import html
import json
import subprocess
from pathlib import Path

from podm_cli.atomic import atomic_path, atomic_write_text
from podm_cli.evaluation.paper import PAPER_COLUMN, PUBLISHED_OTHERS, PUBLISHED_REFERENCE, PUBLISHED_SOURCE


def _fmt(value, digits: int) -> str:
    return "-" if value is None else f"{value:.{digits}f}"


def table_blocks(rows: list[dict]) -> tuple[list[str], list[list[tuple[str, list[str]]]]]:
    """Paper-shaped table: rows metric x dataset, columns methods; each cell 'ours (paper value)'.

    One block of rows per protocol, in the run's order (a noise sweep: one block per level, since each
    level is its own protocol name). Where a row has a published number (Kruse et al. 2017: ``levin_real``,
    ``sun``), a row labelled ``published: Kruse et al. 2017`` follows the dataset's PSNR row with those
    numbers under each method.
    """
    methods = list(dict.fromkeys(r["method"] for r in rows))
    datasets = list(dict.fromkeys(r["dataset"] for r in rows))
    by_key = {(r["method"], r["dataset"]): r for r in rows}
    blocks = []
    for dataset in datasets:
        body = []
        for metric, digits in (("psnr", 2), ("ssim", 3)):
            cells = []
            for method in methods:
                row = by_key.get((method, dataset))
                if row is None:
                    cells.append("-")
                    continue
                paper = row[f"paper_{metric}"]
                cells.append(f"{_fmt(row[metric], digits)} (paper {_fmt(paper, digits)})" if paper is not None
                             else _fmt(row[metric], digits))
            body.append((f"{metric.upper()} {dataset}", cells))
            published = [(by_key.get((m, dataset)) or {}).get("published") for m in methods]
            if metric == "psnr" and any(published):
                cells = [_fmt(p["psnr"] if p else None, digits) for p in published]
                body.append((f"PSNR {dataset} published: {PUBLISHED_SOURCE}", cells))
        blocks.append(body)
    return methods, blocks


def table_cells(rows: list[dict]) -> tuple[list[str], list[tuple[str, list[str]]]]:
    """:func:`table_blocks` as one list of (label, cells) rows."""
    methods, blocks = table_blocks(rows)
    return methods, [line for block in blocks for line in block]


def table_legend(rows: list[dict]) -> list[str]:
    """Lines under the table naming the sources of the numbers beside ours."""
    lines = []
    if any(r.get("paper_psnr") is not None for r in rows):
        lines.append("paper = Liu et al. 2018 (NeurIPS), Table 1 (synthetic Levin / Sun columns)")
    if any("sigma=" in r["dataset"] for r in rows):
        lines.append("no paper or published number beside a protocol at another noise level ([sigma=...]): "
                     "they were measured at the protocol's own level only")
    published = [r for r in rows if r.get("published")]
    if published:
        lines.append(f"published: {PUBLISHED_SOURCE} = {PUBLISHED_REFERENCE}; "
                     + "; ".join(f"{r['method']} ({r['dataset']}): {r['published']['what']}" for r in published))
    for dataset in dict.fromkeys(r["dataset"] for r in rows):
        for name, value in PUBLISHED_OTHERS.get(dataset, []):
            lines.append(f"published: {PUBLISHED_SOURCE}, {dataset}, no podm counterpart: {name} {value:.2f}")
    return lines


def print_table(rows: list[dict], skipped: list, notices: list[str]) -> None:
    from rich.console import Console
    from rich.markup import escape  # protocol names carry brackets (levin[sigma=0.02]): never markup
    from rich.table import Table

    console = Console()
    methods, blocks = table_blocks(rows)
    table = Table(title="podm eval — ours (paper) and published numbers, labelled", show_lines=False)
    table.add_column("metric / protocol")
    for method in methods:
        table.add_column(escape(method), justify="right")
    for block in blocks:  # one section per protocol (per noise level in a sweep)
        for i, (label, cells) in enumerate(block):
            table.add_row(escape(label), *cells, end_section=i == len(block) - 1)
    console.print(table)
    for line in table_legend(rows):
        console.print(f"  {escape(line)}", highlight=False)
    width = max((len(row["dataset"]) for row in rows), default=15)
    for row in rows:
        console.print(escape(
            f"  {row['method']:<8} {row['dataset']:<{width}} n={row['n_images']:<4} "
            f"{row['seconds_per_image']:.3f} s/image  source: {row['source']}"
        ))
    for item in skipped:
        console.print(f"[yellow]skipped {escape(item.method)}: {escape(item.reason)}[/yellow]")
    for notice in notices:
        console.print(f"[yellow]note: {escape(notice)}[/yellow]")


def markdown_table(rows: list[dict]) -> str:
    methods, body = table_cells(rows)
    lines = ["| metric / protocol | " + " | ".join(methods) + " |", "|---" * (len(methods) + 1) + "|"]
    lines += [f"| {label} | " + " | ".join(cells) + " |" for label, cells in body]
    legend = table_legend(rows)
    if legend:
        lines += [""] + [f"- {line}" for line in legend]
    return "\n".join(lines) + "\n"


def git_info() -> dict:
    """Commit and dirty flag of the checkout podm runs from (None outside a git checkout)."""
    here = Path(__file__).resolve().parent
    try:
        commit = subprocess.run(["git", "rev-parse", "HEAD"], cwd=here, capture_output=True, text=True,
                                timeout=10, check=True).stdout.strip()
        dirty = bool(subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=here,
                                    capture_output=True, text=True, timeout=10).stdout.strip())
        return {"commit": commit, "dirty": dirty}
    except (OSError, subprocess.SubprocessError):
        return {"commit": None, "dirty": None}


def results_document(outcome, config: dict) -> dict:
    return {
        "protocols": outcome.protocols,
        "rows": outcome.rows,
        "skipped": [{"method": s.method, "reason": s.reason} for s in outcome.skipped],
        "notices": outcome.notices,
        "git": git_info(),
        "config": config,
    }


def _strip_png(out_dir: Path, dataset: str, example: dict) -> str | None:
    """Blurred / each method / sharp: a row of centre crops, saved as a PNG; returns its file name."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    panels = [(k, v) for k, v in example.items() if not k.startswith("_") and k not in ("blurred", "sharp")]
    panels = [("blurred", example["blurred"])] + panels + [("sharp", example["sharp"])]
    if len(panels) <= 2:
        return None
    fig, axes = plt.subplots(1, len(panels), figsize=(2.4 * len(panels), 2.7))
    for ax, (label, image) in zip(axes, panels):
        img = image.detach().float().cpu()
        h, w = img.shape[-2:]
        size = min(h, w, 128)
        top, left = (h - size) // 2, (w - size) // 2
        crop = img[..., top:top + size, left:left + size]
        crop = crop[0] if crop.shape[0] == 1 else crop.permute(1, 2, 0)
        ax.imshow(crop.clamp(0, 1).numpy(), cmap="gray", vmin=0, vmax=1)
        ax.set_title(label, fontsize=9)
        ax.axis("off")
    fig.suptitle(f"{dataset}: {example.get('_name', '')} (centre crop)", fontsize=10)
    fig.tight_layout()
    name = f"strip_{file_stem(dataset)}.png"
    with atomic_path(out_dir / name) as tmp:
        fig.savefig(tmp, dpi=100, format="png")
    plt.close(fig)
    return name


def file_stem(protocol: str) -> str:
    """A protocol name as a plain file name part (no brackets, commas or ``=``).

    >>> file_stem("levin"), file_stem("levin_valid_whole[sigma=0.02,seed=1]")
    ('levin', 'levin_valid_whole_sigma-0.02_seed-1')
    """
    import re

    return re.sub(r"[^A-Za-z0-9._-]+", "_", protocol.replace("=", "-")).strip("_")


def inline_markdown(text: str) -> str:
    """HTML of one line of Markdown as podm's notes use it: `code`, **bold**, [text](link); the rest escaped.

    >>> inline_markdown("`levin`: **8 of 32** images, see [protocol](docs/protocol.md) & <more>")
    '<code>levin</code>: <strong>8 of 32</strong> images, see <a href="docs/protocol.md">protocol</a> &amp; &lt;more&gt;'
    """
    import re

    parts = re.split(r"(`[^`]+`)", text)
    out = []
    for part in parts:
        if len(part) > 1 and part.startswith("`") and part.endswith("`"):
            out.append(f"<code>{html.escape(part[1:-1])}</code>")
            continue
        part = html.escape(part, quote=False)
        part = re.sub(r"\*\*(.+?)\*\*", r"<strong>\1</strong>", part)
        part = re.sub(r"\[([^\]]+)\]\(([^)\s]+)\)", lambda m: f'<a href="{html.escape(m.group(2))}">{m.group(1)}</a>', part)
        out.append(part)
    return "".join(out)


def write_reports(outcome, out_dir: Path, config: dict, figures: bool = True) -> None:
    """results.json, table.md and (with ``figures``) report.html with per-dataset strips."""
    out_dir = Path(out_dir)
    atomic_write_text(out_dir / "results.json", json.dumps(results_document(outcome, config), indent=2) + "\n")
    notes = [f"- note: {n}" for n in outcome.notices]
    notes += [f"- skipped {s.method}: {s.reason}" for s in outcome.skipped]
    notes += [f"- `{name}`: {p['mode']} blur, {p['n_images']} images; {p['scoring']}. {p['note']}".rstrip()
              for name, p in outcome.protocols.items()]
    substitute = any(PAPER_COLUMN.get(r["dataset"]) == "sun" and r["dataset"] != "sun" for r in outcome.rows)
    if substitute:
        notes.append("- paper numbers beside sun_substitute are Sun's, shown for orientation only.")
    md = "# podm eval\n\nOurs, with the paper's number in brackets (labelled paper).\n\n"
    md += markdown_table(outcome.rows) + "\n" + "\n".join(notes) + "\n"
    atomic_write_text(out_dir / "table.md", md)
    if not figures:
        return
    strips = []
    for dataset, example in outcome.examples.items():
        if example:
            name = _strip_png(out_dir, dataset, example)
            if name:
                strips.append((dataset, name))
    methods, body = table_cells(outcome.rows)
    head = "".join(f"<th>{html.escape(m)}</th>" for m in methods)
    trs = "".join(
        f"<tr><td>{html.escape(label)}</td>" + "".join(f"<td>{html.escape(c)}</td>" for c in cells) + "</tr>"
        for label, cells in body
    )
    imgs = "".join(f"<h2>{html.escape(d)}</h2><img src='{html.escape(n)}' alt='{html.escape(d)} strip'>"
                   for d, n in strips)
    items = "".join(f"<li>{inline_markdown(n[2:])}</li>" for n in notes)
    page = (
        "<!doctype html><html><head><meta charset='utf-8'><title>podm eval</title>"
        "<style>body{font-family:sans-serif;margin:2em}td,th{padding:4px 10px;border-bottom:1px solid #ddd}"
        "td{text-align:right}td:first-child{text-align:left}img{max-width:100%}"
        "code{background:#f2f2f2;padding:0 3px}</style></head><body>"
        "<h1>podm eval</h1><p>Ours, with the paper's number in brackets (labelled paper).</p>"
        f"<table><tr><th>metric / protocol</th>{head}</tr>{trs}</table><ul>{items}</ul>{imgs}</body></html>\n"
    )
    atomic_write_text(out_dir / "report.html", page)
