"""``podm data fetch|list|where``: obtain the reference data and weights, verified by sha256.

Targets (``manifest.json`` beside this file lists every file, its sha256, size and public origin):

* ``levin``   Levin et al. 2009 ground truth, kernels, the 32 captured blurs, Xu & Jia kernel estimates
* ``sun``     Sun et al. 2013 (not redistributable here: no checksums; the layout is detected instead)
* ``weights`` IRCNN grey denoisers (Keras), CSF, FDN, DnCNN
* ``train``   BSDS500, Train400, BSD68, Set12, Schelten 2015 kernels
* ``real``    real blurry photographs with estimated kernels
* ``all``     everything above

Sources (``--source``):

* nothing: every file's public URL from the manifest (files without a known URL are reported);
* a local folder laid out like the data root (a mirror, e.g. ``../shared/data``);
* an ``http(s)://`` or ``file://`` URL that is either a base URL under which the relative paths live, or
  an archive (``.zip``, ``.tar``, ``.tar.gz``/``.tgz``, ``.tar.bz2``, ``.tar.xz``); a local archive path
  works too. Archives are checked member by member before anything is extracted (no absolute paths,
  no ``..``, no links leaving the destination, no device files) and extracted into a private staging
  folder; only files whose checksum matches the manifest are moved into the data root.

Every file is written to a temporary name in its destination folder and renamed only after its size and
sha256 match, so an interrupted or corrupted transfer never leaves a file that looks complete. Files
already present with the right checksum are skipped.

Example:
    >>> import tempfile
    >>> report = fetch("levin", tempfile.mkdtemp(), source="../shared/data")  # doctest: +SKIP
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import http.client
import json
import os
import re
import shutil
import stat
import sys
import tarfile
import tempfile
import urllib.error
import urllib.parse
import urllib.request
import zipfile
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path, PurePosixPath, PureWindowsPath

from rich.console import Console

from podm_cli.data.locator import describe_root, find_sun_layout, sun_role
from podm_cli.errors import DataNotFoundError, PodmError

__all__ = [
    "ARCHIVE_SUFFIXES",
    "TARGETS",
    "FetchReport",
    "FileEntry",
    "Manifest",
    "Target",
    "fetch",
    "load_manifest",
    "main",
    "safe_extract",
    "target_status",
]

#: Fetch targets in display order; ``all`` is their union.
TARGETS = ("levin", "sun", "weights", "train", "real")
ARCHIVE_SUFFIXES = (".zip", ".tar", ".tar.gz", ".tgz", ".tar.bz2", ".tbz2", ".tar.xz", ".txz")
_CHUNK = 1 << 20
_TIMEOUT_S = 60


# ----------------------------------------------------------------------------------------------- manifest
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


# ------------------------------------------------------------------------------------------ low level I/O
def sha256_file(path: str | os.PathLike) -> str:
    """Hex sha256 of a file, read in chunks."""
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(_CHUNK), b""):
            digest.update(chunk)
    return digest.hexdigest()


def _short(sha: str) -> str:
    return sha[:12] + "..."


def _is_url(source: str) -> bool:
    return bool(re.match(r"^(https?|file)://", source, re.IGNORECASE))


def _is_archive(name: str) -> bool:
    return name.lower().endswith(ARCHIVE_SUFFIXES)


def _is_archive_source(source: str) -> bool:
    """An archive URL (by its suffix) or any local file (zip/tar is recognised from its content)."""
    if _is_url(source):
        return _is_archive(urllib.parse.urlparse(source).path)
    return Path(source).is_file()


def _open_url(url: str):
    """``urlopen`` with a timeout; every failure becomes a one-line :class:`DataNotFoundError`."""
    try:
        request = urllib.request.Request(url, headers={"User-Agent": "podm-data-fetch"})
        return urllib.request.urlopen(request, timeout=_TIMEOUT_S)  # http(s)/file only
    except urllib.error.HTTPError as err:
        raise DataNotFoundError(f"cannot download {url}: HTTP {err.code} {err.reason}") from err
    except (urllib.error.URLError, OSError, ValueError) as err:
        reason = getattr(err, "reason", err)
        raise DataNotFoundError(f"cannot download {url}: {reason}") from err


def _stream_to_temp(read: Callable[[int], bytes], folder: Path, label: str) -> tuple[Path, str, int]:
    """Copy a stream into a new hidden temporary file in ``folder``; return (path, sha256, size)."""
    folder.mkdir(parents=True, exist_ok=True)
    fd, name = tempfile.mkstemp(prefix=".podm-", suffix=".part", dir=folder)
    tmp = Path(name)
    digest, size = hashlib.sha256(), 0
    try:
        with os.fdopen(fd, "wb") as out:
            while True:
                chunk = read(_CHUNK)
                if not chunk:
                    break
                digest.update(chunk)
                size += len(chunk)
                out.write(chunk)
    except (OSError, http.client.HTTPException) as err:
        tmp.unlink(missing_ok=True)
        raise DataNotFoundError(f"cannot read {label}: {err!r}") from err
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return tmp, digest.hexdigest(), size


def _install(read: Callable[[int], bytes], entry: FileEntry, root: Path, label: str) -> None:
    """Stream ``entry`` from ``read`` to a temp file beside its destination, verify, then rename."""
    dest = root / entry.path
    tmp, sha, size = _stream_to_temp(read, dest.parent, label)
    if size != entry.size or sha != entry.sha256:
        tmp.unlink(missing_ok=True)
        raise PodmError(
            f"checksum mismatch for {entry.path} from {label}: expected {entry.size} bytes sha256 "
            f"{_short(entry.sha256)}, got {size} bytes sha256 {_short(sha)}; nothing was written"
        )
    os.replace(tmp, dest)


def _install_file(src: Path, entry: FileEntry, root: Path) -> None:
    with open(src, "rb") as fh:
        _install(fh.read, entry, root, str(src))


def _install_url(url: str, entry: FileEntry, root: Path) -> None:
    with _open_url(url) as response:
        _install(response.read, entry, root, url)


def _download_archive(url: str, folder: Path) -> Path:
    """Download ``url`` to a temporary file in ``folder`` (caller deletes it); keeps the suffix."""
    with _open_url(url) as response:
        tmp, _, size = _stream_to_temp(response.read, folder, url)
    suffix = next(s for s in sorted(ARCHIVE_SUFFIXES, key=len, reverse=True) if url.lower().endswith(s))
    final = tmp.with_name(tmp.stem + suffix)
    os.replace(tmp, final)
    if size == 0:
        final.unlink(missing_ok=True)
        raise DataNotFoundError(f"cannot download {url}: empty response")
    return final


# ------------------------------------------------------------------------------------- safe extraction
def _unsafe(archive: str, name: str, why: str) -> PodmError:
    return PodmError(f"unsafe archive {archive}: member '{name}' {why}; nothing was extracted")


def _member_path(dest: Path, name: str, archive: str) -> Path:
    """Where member ``name`` would land under ``dest``; raise if it is absolute or climbs out."""
    posix = name.replace("\\", "/")
    if not posix or "\x00" in posix:
        raise _unsafe(archive, name, "has an invalid name")
    if posix.startswith("/") or PureWindowsPath(name).drive or PurePosixPath(posix).is_absolute():
        raise _unsafe(archive, name, "has an absolute path")
    parts = [p for p in posix.split("/") if p not in ("", ".")]
    if ".." in parts:
        raise _unsafe(archive, name, "has a '..' component")
    target = dest.joinpath(*parts) if parts else dest
    if not target.resolve().is_relative_to(dest.resolve()):
        raise _unsafe(archive, name, "escapes the destination")
    return target


def _link_escapes(dest: Path, member_target: Path, link: str, hard: bool) -> bool:
    posix = link.replace("\\", "/")
    if posix.startswith("/") or PureWindowsPath(link).drive:
        return True
    base = dest if hard else member_target.parent
    resolved = Path(os.path.normpath(base / posix))
    return not resolved.is_relative_to(Path(os.path.normpath(dest)))


def _check_tar(tar: tarfile.TarFile, dest: Path, archive: str, select: Callable[[str], bool]):
    chosen = []
    for member in tar.getmembers():
        target = _member_path(dest, member.name, archive)
        if member.ischr() or member.isblk() or member.isfifo() or member.isdev():
            raise _unsafe(archive, member.name, "is a device or fifo")
        if member.issym() or member.islnk():
            if _link_escapes(dest, target, member.linkname, hard=member.islnk()):
                raise _unsafe(archive, member.name, f"links outside the destination ({member.linkname})")
            continue  # links are never extracted: podm's data are regular files
        if not (member.isfile() or member.isdir()):
            raise _unsafe(archive, member.name, "is not a regular file or folder")
        if member.isfile() and select(member.name):
            chosen.append(member)
    return chosen


def _extract_tar(path: Path, dest: Path, archive: str, select: Callable[[str], bool]) -> int:
    try:
        with tarfile.open(path, "r:*") as tar:
            chosen = _check_tar(tar, dest, archive, select)
            if hasattr(tarfile, "data_filter"):
                tar.extractall(dest, members=chosen, filter="data")
            else:  # pragma: no cover - Python without PEP 706; members were checked above
                tar.extractall(dest, members=chosen)
    except (tarfile.TarError, EOFError) as err:
        raise PodmError(f"cannot read archive {archive}: {err}") from err
    return len(chosen)


def _extract_zip(path: Path, dest: Path, archive: str, select: Callable[[str], bool]) -> int:
    try:
        with zipfile.ZipFile(path) as zf:
            chosen = []
            for info in zf.infolist():
                target = _member_path(dest, info.filename, archive)
                mode = info.external_attr >> 16
                if stat.S_ISLNK(mode):
                    link = zf.read(info).decode("utf-8", "replace")
                    if _link_escapes(dest, target, link, hard=False):
                        raise _unsafe(archive, info.filename, f"links outside the destination ({link})")
                    continue
                if stat.S_ISCHR(mode) or stat.S_ISBLK(mode) or stat.S_ISFIFO(mode) or stat.S_ISSOCK(mode):
                    raise _unsafe(archive, info.filename, "is a device or fifo")
                if not info.is_dir() and select(info.filename):
                    chosen.append((info, target))
            for info, target in chosen:
                target.parent.mkdir(parents=True, exist_ok=True)
                with zf.open(info) as src, open(target, "wb") as out:
                    shutil.copyfileobj(src, out, _CHUNK)
    except (zipfile.BadZipFile, zipfile.LargeZipFile, EOFError) as err:
        raise PodmError(f"cannot read archive {archive}: {err}") from err
    return len(chosen)


def safe_extract(
    path: str | os.PathLike, dest: str | os.PathLike, label: str | None = None,
    select: Callable[[str], bool] | None = None,
) -> int:
    """Extract the regular files of a zip/tar archive into ``dest`` after checking every member.

    The whole archive is rejected (:class:`PodmError`, nothing extracted) if any member has an absolute
    path or a ``..`` component, is a device/fifo, or is a link pointing outside ``dest``. Links inside
    ``dest`` are skipped. ``select(name)`` may restrict which files are extracted. Returns the number of
    files extracted.
    """
    path, dest = Path(path), Path(dest)
    archive = label or str(path)
    select = select or (lambda name: True)
    dest.mkdir(parents=True, exist_ok=True)
    if zipfile.is_zipfile(path):
        return _extract_zip(path, dest, archive, select)
    if tarfile.is_tarfile(path):
        return _extract_tar(path, dest, archive, select)
    raise PodmError(f"cannot read archive {archive}: not a zip or tar file")


# ------------------------------------------------------------------------------------------------ fetch
@dataclass
class FetchReport:
    """What :func:`fetch` did: files fetched, files already present, files with no known URL."""

    root: Path
    fetched: list[str] = field(default_factory=list)
    present: list[str] = field(default_factory=list)
    no_url: list[FileEntry] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)


class _Progress:
    """One line per file on stderr (rich)."""

    def __init__(self, console: Console, total: int | None):
        self.console, self.total, self.done = console, total, 0

    def line(self, status: str, path: str, size: int | None = None) -> None:
        self.done += 1
        count = f"{self.done:>{len(str(self.total))}}/{self.total}" if self.total else f"{self.done:>4}"
        extra = f" ({_human(size)})" if size is not None else ""
        self.console.print(f"[{count}] {status:<8} {path}{extra}", markup=False, soft_wrap=True)


def _human(size: int) -> str:
    value = float(size)
    for unit in ("B", "kB", "MB", "GB"):
        if value < 1000 or unit == "GB":
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1000
    return f"{size} B"  # pragma: no cover


def _is_present(entry: FileEntry, root: Path) -> bool:
    path = root / entry.path
    return path.is_file() and path.stat().st_size == entry.size and sha256_file(path) == entry.sha256


def _find_staged(staging: Path, relpath: str) -> Path | None:
    """``relpath`` inside an extracted archive: at its top level or under one top-level folder."""
    direct = staging / relpath
    if direct.is_file():
        return direct
    for top in sorted(p for p in staging.iterdir() if p.is_dir()):
        nested = top / relpath
        if nested.is_file():
            return nested
    return None


def _fetch_checked(target: Target, root: Path, source: str | None, progress: _Progress,
                   report: FetchReport, archive: _Staged | None) -> None:
    """Fetch a checksum-listed target from ``source`` (None: manifest URLs; archives via ``archive``)."""
    todo = []
    for entry in target.files:
        if _is_present(entry, root):
            report.present.append(entry.path)
            progress.line("present", entry.path)
        else:
            todo.append(entry)
    if not todo:
        return
    if source is None:
        for entry in todo:
            if entry.url is None:
                report.no_url.append(entry)
                progress.line("no-url", entry.path)
                continue
            _install_url(entry.url, entry, root)
            report.fetched.append(entry.path)
            progress.line("fetched", entry.path, entry.size)
        return
    if _is_url(source) and not _is_archive(urllib.parse.urlparse(source).path):
        base = source.rstrip("/") + "/"
        for entry in todo:
            _install_url(base + urllib.parse.quote(entry.path, safe="/"), entry, root)
            report.fetched.append(entry.path)
            progress.line("fetched", entry.path, entry.size)
        return
    if archive is not None:
        staging = archive.path()
        for entry in todo:
            staged = _find_staged(staging, entry.path)
            if staged is None:
                raise DataNotFoundError(f"archive {source} has no {entry.path} (needed by '{target.name}')")
            _install_file(staged, entry, root)
            report.fetched.append(entry.path)
            progress.line("fetched", entry.path, entry.size)
        return
    folder = Path(source)
    for entry in todo:
        src = folder / entry.path
        if not src.is_file():
            raise DataNotFoundError(
                f"source {folder} has no {entry.path} (expected the data-root layout, e.g. {folder}/levin/gt/)"
            )
        _install_file(src, entry, root)
        report.fetched.append(entry.path)
        progress.line("copied", entry.path, entry.size)


@contextlib.contextmanager
def _extracted(source: str, root: Path, select: Callable[[str], bool] | None) -> Iterator[Path]:
    """Download (if a URL) and safely extract an archive into a staging folder under ``root``; both the
    download and the staging folder are removed afterwards, whatever happens."""
    root.mkdir(parents=True, exist_ok=True)
    download: Path | None = None
    staging = Path(tempfile.mkdtemp(prefix=".podm-staging-", dir=root))
    try:
        if _is_url(source):
            download = _download_archive(source, root)
        safe_extract(download or Path(source), staging, label=source, select=select)
        yield staging
    finally:
        shutil.rmtree(staging, ignore_errors=True)
        if download is not None:
            download.unlink(missing_ok=True)


class _Staged:
    """An archive source shared by all targets of one fetch: downloaded and extracted once, on first use,
    and cleaned up when ``stack`` closes."""

    def __init__(self, source: str, root: Path, select: Callable[[str], bool] | None,
                 stack: contextlib.ExitStack):
        self.source, self.root, self.select, self.stack = source, root, select, stack
        self._path: Path | None = None

    def path(self) -> Path:
        if self._path is None:
            self._path = self.stack.enter_context(_extracted(self.source, self.root, self.select))
        return self._path


def _sun_wanted(name: str) -> bool:
    """Archive members worth extracting for the Sun target: its released file names only."""
    return sun_role(PurePosixPath(name.replace("\\", "/")).name) is not None


def _sun_dest(role: str) -> str:
    return "input80imgs8kernels" if role == "blurred" else "groundtruth"


def _fetch_layout(target: Target, root: Path, source: str | None, progress: _Progress,
                  report: FetchReport, explicit: bool, archive: _Staged | None) -> None:
    """Fetch the Sun et al. 2013 files (no checksums): copy only recognised file names, then detect."""
    before = find_sun_layout(root)
    own_stack = contextlib.ExitStack()  # only for an archive URL listed in the manifest
    if source is None and target.url is not None:
        source = target.url
        archive = _Staged(source, root, _sun_wanted, own_stack) if _is_archive(source) else None
    if source is None or (archive is None and _is_url(source)):
        if source is None:
            message = (
                f"{target.name}: no public archive URL is known; download it from {target.origin_url} "
                f"and run `podm data fetch {target.name} --source <folder or archive>`"
            )
        else:
            message = f"{target.name}: --source must be a folder or an archive for this target, not {source}"
        if explicit and not before.complete:
            raise DataNotFoundError(message)
        report.notes.append(message if not before.complete else f"{target.name}: {before.summary()}")
        return
    dest_root = root / target.extract_to

    def install(files: Iterable[Path]) -> int:
        count = 0
        for src in files:
            role = sun_role(src.name)
            if role is None or src.is_symlink() or not src.is_file():
                continue
            dest = dest_root / _sun_dest(role[0]) / src.name
            rel = str(dest.relative_to(root))
            if dest.is_file() and dest.stat().st_size == src.stat().st_size:
                report.present.append(rel)
                progress.line("present", rel)
            else:
                with open(src, "rb") as fh:
                    tmp, _, size = _stream_to_temp(fh.read, dest.parent, str(src))
                os.replace(tmp, dest)
                report.fetched.append(rel)
                progress.line("copied", rel, size)
            count += 1
        return count

    if archive is not None:
        with own_stack:
            found = install(sorted(archive.path().rglob("*")))
    else:
        folder = Path(source)
        sub = folder / target.extract_to
        folder = sub if sub.is_dir() else folder
        found = install(sorted(folder.rglob("*"))) if folder.is_dir() else 0
    layout = find_sun_layout(root)
    if found == 0 and explicit:
        raise DataNotFoundError(
            f"{target.name}: no Sun et al. 2013 files (*_blurred.png, img*_groundtruth_img.png) in {source}"
        )
    if found:
        report.notes.append(f"{target.name}: {layout.summary()}" + ("" if layout.complete else " (incomplete)"))
    elif not layout.complete:
        report.notes.append(f"{target.name}: not in {source}; the sun_substitute protocol needs only `train`")


def fetch(
    target: str = "all",
    root: str | os.PathLike | None = None,
    source: str | os.PathLike | None = None,
    manifest: Manifest | None = None,
    console: Console | None = None,
) -> FetchReport:
    """Fetch ``target`` into ``root`` (default: :func:`~podm_cli.data.locator.data_root`).

    Args:
        target: ``levin``, ``sun``, ``weights``, ``train``, ``real`` or ``all``.
        root: the data root to fill.
        source: ``None`` (the manifest's public URLs), a local mirror folder, a local archive, a base URL
            or an archive URL (http, https, file).
        manifest: the file list to use (default: podm's ``manifest.json``); tests pass their own.
        console: where progress lines go (default: stderr).

    Raises:
        DataNotFoundError: a source folder, file or URL is missing or unreachable, or files have no URL.
        PodmError: a checksum mismatch or an unsafe/unreadable archive (nothing half-written is left).
    """
    manifest = manifest or load_manifest()
    root_path, _ = describe_root(root)
    console = console or Console(stderr=True, highlight=False)
    targets = manifest.resolve(target)
    source_str = None if source is None else os.fspath(source)
    if source_str is not None and not _is_url(source_str) and not Path(source_str).exists():
        raise DataNotFoundError(f"source not found: {source_str} (give a folder, an archive or a URL)")
    root_path.mkdir(parents=True, exist_ok=True)
    report = FetchReport(root_path)
    progress = _Progress(console, sum(len(t.files) for t in targets if t.layout is None))
    with contextlib.ExitStack() as stack:
        archive = None
        if source_str is not None and _is_archive_source(source_str):
            only_layout = all(t.layout is not None for t in targets)
            archive = _Staged(source_str, root_path, _sun_wanted if only_layout else None, stack)
        for t in targets:
            if t.layout is not None:
                _fetch_layout(t, root_path, source_str, _Progress(console, None), report,
                              explicit=(target == t.name), archive=archive)
            else:
                _fetch_checked(t, root_path, source_str, progress, report, archive=archive)
    for note in report.notes:
        console.print(note, markup=False, soft_wrap=True)
    console.print(
        f"{target}: {len(report.fetched)} fetched, {len(report.present)} already present in {root_path}",
        markup=False,
        soft_wrap=True,
    )
    if report.no_url:
        origins = sorted({f"{e.path.rsplit('/', 1)[0]}/ ({e.origin})" for e in report.no_url})
        raise DataNotFoundError(
            f"{len(report.no_url)} file(s) have no public URL known to podm: {'; '.join(origins)}; "
            f"get them from their origin (see data/README.md) and rerun with --source <folder>"
        )
    return report


# -------------------------------------------------------------------------------------------- status/CLI
def target_status(target: Target, root: Path, verify: bool = False) -> str:
    """One line: how much of ``target`` is present under ``root`` (``verify``: check sha256 too)."""
    if target.layout is not None:
        layout = find_sun_layout(root)
        state = "present" if layout.complete else ("partial" if layout.blurred or layout.gt else "missing")
        return f"{state}: {layout.summary()}"
    if verify:
        ok = sum(_is_present(e, root) for e in target.files)
    else:
        ok = sum((root / e.path).is_file() for e in target.files)
    n = len(target.files)
    state = "present" if ok == n else ("partial" if ok else "missing")
    return f"{state}: {ok}/{n} files" + (" (sha256 verified)" if verify else "")


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
