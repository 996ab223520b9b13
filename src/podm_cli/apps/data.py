"""``podm data fetch|list|where|prepare`` (argparse, not Hydra): obtain, list and locate podm's data.

The work is done by :mod:`podm_cli.data.fetch` (fetch, status) and :func:`podm_cli.training.cache.prepare_cache`.
"""

from __future__ import annotations

import argparse
import sys

from rich.console import Console

from podm_cli.data.fetch import _human, fetch, target_status
from podm_cli.data.locator import describe_root
from podm_cli.data.manifest import TARGETS, Manifest, load_manifest
from podm_cli.errors import PodmError

__all__ = ["build_parser", "main"]


def _cmd_list(manifest: Manifest, console: Console) -> int:
    for t in manifest.targets.values():
        size = sum(e.size for e in t.files)
        count = f"{len(t.files)} files, {_human(size)}" if t.layout is None else "layout detected"
        console.print(f"{t.name:<8} {count}: {t.description}", markup=False, soft_wrap=True)
        for g in t.groups:
            url = "url" if g.get("base_url") or g.get("urls") else "no url (--source)"
            console.print(
                f"    {g['prefix']:<40} {g['count']:>4} files  {g.get('licence', '')}  [{url}] {g.get('origin', '')}",
                markup=False,
                soft_wrap=True,
            )
        if t.layout is not None:
            console.print(f"    origin: {t.origin_url}  licence: {t.licence}", markup=False, soft_wrap=True)
    console.print("all      every target above", markup=False, soft_wrap=True)
    return 0


def _cmd_where(manifest: Manifest, root: str | None, verify: bool, console: Console) -> int:
    path, why = describe_root(root)
    console.print(f"data root: {path}  (from {why}; exists: {'yes' if path.is_dir() else 'no'})", markup=False, soft_wrap=True)
    for t in manifest.targets.values():
        console.print(f"  {t.name:<8} {target_status(t, path, verify)}", markup=False, soft_wrap=True)
    return 0


def build_parser() -> argparse.ArgumentParser:
    """The ``podm data`` argument parser."""
    parser = argparse.ArgumentParser(prog="podm data", description="obtain and locate podm's data and weights")
    sub = parser.add_subparsers(dest="command", required=True)
    p_fetch = sub.add_parser("fetch", help="download or copy a target into the data root (sha256-verified)")
    p_fetch.add_argument("target", nargs="?", default="all", choices=[*TARGETS, "all"])
    p_fetch.add_argument("--source", help="local mirror folder, archive, base URL or archive URL")
    p_fetch.add_argument("--root", help="data root to fill (default: $PODM_DATA or the project's data/)")
    p_fetch.add_argument("--quiet", action="store_true", help="no per-file progress lines")
    sub.add_parser("list", help="list targets, their files, origins and licences")
    p_where = sub.add_parser("where", help="show the data root and which targets are present")
    p_where.add_argument("--root", help="data root to inspect")
    p_where.add_argument("--verify", action="store_true", help="check sha256 of every file")
    p_prep = sub.add_parser("prepare", help="decode RPODM's training/validation images once into an HDF5 cache")
    p_prep.add_argument("--root", help="data root to read (default: $PODM_DATA or the project's data/)")
    p_prep.add_argument("--out", help="cache file (default: $PODM_CACHE/rpodm_train_images.h5, ~/.cache/podm)")
    return parser


def main(argv: list[str] | None = None) -> int:
    """``podm data fetch [target] [--source DIR|URL] [--root DIR]``, ``podm data list``, ``podm data where``,
    ``podm data prepare [--root DIR] [--out FILE]``.

    User errors raise :class:`PodmError` (the ``podm`` CLI prints them as one line, exit code 2).
    """
    args = build_parser().parse_args(sys.argv[1:] if argv is None else argv)
    manifest = load_manifest()
    out = Console(highlight=False)
    if args.command == "list":
        return _cmd_list(manifest, out)
    if args.command == "where":
        return _cmd_where(manifest, args.root, args.verify, out)
    if args.command == "prepare":
        from podm_cli.training.cache import prepare_cache

        path = prepare_cache(args.root, args.out)
        out.print(f"training-image cache written: {path} ({path.stat().st_size / 1e6:.1f} MB)")
        return 0
    console = Console(stderr=True, highlight=False, quiet=args.quiet)
    fetch(args.target, root=args.root, source=args.source, manifest=manifest, console=console)
    return 0


if __name__ == "__main__":  # pragma: no cover
    try:
        sys.exit(main())
    except PodmError as err:
        print(f"podm data: error: {err}", file=sys.stderr)
        sys.exit(2)
