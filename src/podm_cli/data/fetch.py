"""``podm data fetch``: obtain the reference data and weights, verified by sha256.

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

The manifest is :mod:`podm_cli.data.manifest`, the byte moving (checksummed installs, safe extraction)
:mod:`podm_cli.data.transfer`, the ``podm data`` command line :mod:`podm_cli.apps.data`. Files already
present with the right checksum are skipped.

Example:
    >>> import tempfile
    >>> report = fetch("levin", tempfile.mkdtemp(), source="../shared/data")  # doctest: +SKIP
"""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
import urllib.parse
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath

from rich.console import Console

from podm_cli.data.locator import describe_root, find_sun_layout, sun_role
from podm_cli.data.manifest import FileEntry, Manifest, Target, load_manifest
from podm_cli.data.transfer import (
    _download_archive,
    _install_file,
    _install_url,
    _is_archive,
    _is_archive_source,
    _is_url,
    _stream_to_temp,
    safe_extract,
    sha256_file,
)
from podm_cli.errors import DataNotFoundError

__all__ = ["FetchReport", "fetch", "target_status"]


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


#: Members accepted for a target without checksums (Sun's PNGs, a few MB each): at most this many bytes
#: each, and this many together.
LAYOUT_MEMBER_MAX = 64 * 2**20
LAYOUT_TOTAL_MAX = 8 * 2**30


@dataclass(frozen=True)
class ArchivePlan:
    """What an archive source may give for ``targets``: the manifest's files, at their listed sizes (at the
    archive's top level or under one top-level folder), and recognised Sun file names for layout targets.
    Anything else is not extracted; a member larger than expected rejects the archive before extraction.

    >>> plan = ArchivePlan.for_targets([Target("t", "", files=[FileEntry("a/b.png", "0" * 64, 5, None, "", "")])])
    >>> plan.select("top/a/b.png"), plan.select("README"), plan.max_size("a/b.png"), plan.max_total
    (True, False, 5, 5)
    """

    expected: dict
    layout: bool

    @classmethod
    def for_targets(cls, targets: Iterable[Target]) -> ArchivePlan:
        targets = list(targets)
        expected = {e.path: e.size for t in targets if t.layout is None for e in t.files}
        return cls(expected, any(t.layout is not None for t in targets))

    def _listed(self, name: str) -> int | None:
        parts = [p for p in name.replace("\\", "/").split("/") if p not in ("", ".")]
        for key in ("/".join(parts), "/".join(parts[1:])):
            if key in self.expected:
                return self.expected[key]
        return None

    def select(self, name: str) -> bool:
        return self._listed(name) is not None or (self.layout and _sun_wanted(name))

    def max_size(self, name: str) -> int:
        listed = self._listed(name)
        return LAYOUT_MEMBER_MAX if listed is None else listed

    @property
    def max_total(self) -> int:
        return sum(self.expected.values()) + (LAYOUT_TOTAL_MAX if self.layout else 0)


@contextlib.contextmanager
def _extracted(source: str, root: Path, plan: ArchivePlan) -> Iterator[Path]:
    """Download (if a URL) and safely extract an archive into a staging folder under ``root``; both the
    download and the staging folder are removed afterwards, whatever happens."""
    root.mkdir(parents=True, exist_ok=True)
    download: Path | None = None
    staging = Path(tempfile.mkdtemp(prefix=".podm-staging-", dir=root))
    try:
        if _is_url(source):
            download = _download_archive(source, root)
        safe_extract(download or Path(source), staging, label=source, select=plan.select,
                     max_size=plan.max_size, max_total=plan.max_total)
        yield staging
    finally:
        shutil.rmtree(staging, ignore_errors=True)
        if download is not None:
            download.unlink(missing_ok=True)


class _Staged:
    """An archive source shared by all targets of one fetch: downloaded and extracted once, on first use,
    and cleaned up when ``stack`` closes."""

    def __init__(self, source: str, root: Path, plan: ArchivePlan, stack: contextlib.ExitStack):
        self.source, self.root, self.plan, self.stack = source, root, plan, stack
        self._path: Path | None = None

    def path(self) -> Path:
        if self._path is None:
            self._path = self.stack.enter_context(_extracted(self.source, self.root, self.plan))
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
        archive = _Staged(source, root, ArchivePlan.for_targets([target]), own_stack) if _is_archive(source) else None
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
            archive = _Staged(source_str, root_path, ArchivePlan.for_targets(targets), stack)
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


def target_status(target: Target, root: Path, verify: bool = False) -> str:
    """One line: how much of ``target`` is present under ``root`` (``verify``: check sha256 too).

    >>> t = Target("demo", "", files=[FileEntry("a.png", "0" * 64, 3, None, "", "")])
    >>> target_status(t, Path("/nowhere"))
    'present 0/1 files (absent; podm data fetch demo)'
    """
    if target.layout is not None:
        layout = find_sun_layout(root)
        state = "complete" if layout.complete else ("partial" if layout.blurred or layout.gt else "absent")
        return f"present {layout.summary()} ({state})"
    if verify:
        ok = sum(_is_present(e, root) for e in target.files)
    else:
        ok = sum((root / e.path).is_file() for e in target.files)
    n = len(target.files)
    state = "complete" if ok == n else ("partial" if ok else "absent")
    if ok < n:
        state += f"; podm data fetch {target.name}"
    return f"present {ok}/{n} files ({state}" + (", sha256 verified)" if verify else ")")
