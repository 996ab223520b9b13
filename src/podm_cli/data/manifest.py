"""The data manifest (``manifest.json`` beside this file): every file of every ``podm data fetch`` target,
with its sha256, size and public origin.

>>> m = load_manifest()
>>> list(m.targets) == list(TARGETS)
True
>>> [t.name for t in m.resolve("levin")]
['levin']
"""

from __future__ import annotations

import json
import os
import urllib.parse
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path

from podm_cli.errors import PodmError

__all__ = ["TARGETS", "FileEntry", "Manifest", "Target", "load_manifest", "manifest_from_dict"]

#: Fetch targets in display order; ``all`` is their union.
TARGETS = ("levin", "sun", "weights", "train", "real")


@dataclass(frozen=True)
class FileEntry:
    """One file of a target: ``path`` under the data root, its sha256 and size, and where it comes from."""

    path: str
    sha256: str
    size: int
    url: str | None
    origin: str
    licence: str
    note: str = ""


@dataclass
class Target:
    """A named set of files (``levin``, ``weights``, ...) or, for ``sun``, a detected layout."""

    name: str
    description: str
    files: list[FileEntry] = field(default_factory=list)
    layout: str | None = None  # "sun": no checksums, the layout is detected instead
    extract_to: str = ""  # layout targets: folder under the root that receives their files
    url: str | None = None  # layout targets: an archive URL, when one is known
    origin: str = ""
    origin_url: str = ""
    licence: str = ""
    note: str = ""
    groups: list[dict] = field(default_factory=list)


@dataclass
class Manifest:
    """Parsed ``manifest.json``: targets by name."""

    targets: dict[str, Target]

    def resolve(self, name: str) -> list[Target]:
        """The targets ``name`` stands for (``all`` = every target)."""
        if name == "all":
            return list(self.targets.values())
        if name not in self.targets:
            choices = ", ".join([*self.targets, "all"])
            raise PodmError(f"unknown data target '{name}' (choose from {choices})")
        return [self.targets[name]]


def _parse_target(name: str, raw: dict) -> Target:
    target = Target(
        name=name,
        description=raw.get("description", ""),
        layout=raw.get("layout"),
        extract_to=raw.get("extract_to", name),
        url=raw.get("url"),
        origin=raw.get("origin", ""),
        origin_url=raw.get("origin_url", ""),
        licence=raw.get("licence", ""),
        note=raw.get("note", ""),
    )
    for group in raw.get("groups", []):
        prefix = group["prefix"]
        base = group.get("base_url")
        urls = group.get("urls", {})
        meta = {k: v for k, v in group.items() if k != "files"}
        meta["count"] = len(group["files"])
        meta["bytes"] = sum(size for _, size in group["files"].values())
        target.groups.append(meta)
        for rel, (sha, size) in group["files"].items():
            if rel in urls:
                url = urls[rel]
            elif base:
                url = base + urllib.parse.quote(rel, safe="/")
            else:
                url = None
            target.files.append(
                FileEntry(
                    path=prefix + rel,
                    sha256=sha.lower(),
                    size=int(size),
                    url=url,
                    origin=group.get("origin", ""),
                    licence=group.get("licence", ""),
                    note=group.get("note", ""),
                )
            )
    return target


def load_manifest(path: str | os.PathLike | None = None) -> Manifest:
    """Load a manifest (default: the ``manifest.json`` shipped with podm)."""
    if path is None:
        text = resources.files("podm_cli.data").joinpath("manifest.json").read_text(encoding="utf-8")
    else:
        text = Path(path).read_text(encoding="utf-8")
    raw = json.loads(text)
    return Manifest({name: _parse_target(name, t) for name, t in raw["targets"].items()})


def manifest_from_dict(raw: dict) -> Manifest:
    """Build a :class:`Manifest` from an in-memory dict with the same schema as ``manifest.json``."""
    return Manifest({name: _parse_target(name, t) for name, t in raw["targets"].items()})
