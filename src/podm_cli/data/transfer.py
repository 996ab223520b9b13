"""Moving bytes safely: checksummed installs from files and URLs, downloads, and archive extraction that
checks every member (path, type, size) before it writes a byte.

Every file is written to a temporary name in its destination folder and renamed only after its size and
sha256 match, so an interrupted or corrupted transfer never leaves a file that looks complete.
"""

from __future__ import annotations

import hashlib
import http.client
import os
import re
import stat
import tarfile
import tempfile
import urllib.error
import urllib.parse
import urllib.request
import zipfile
from collections.abc import Callable
from pathlib import Path, PurePosixPath, PureWindowsPath

from podm_cli.data.manifest import FileEntry
from podm_cli.errors import DataNotFoundError, PodmError

__all__ = ["ARCHIVE_SUFFIXES", "safe_extract", "sha256_file"]

ARCHIVE_SUFFIXES = (".zip", ".tar", ".tar.gz", ".tgz", ".tar.bz2", ".tbz2", ".tar.xz", ".txz")
_CHUNK = 1 << 20
_TIMEOUT_S = 60
#: ``max_size(member name)``: the most bytes a member may hold (``None``: no limit).
SizeLimit = Callable[[str], "int | None"]


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


def _too_big(archive: str, name: str, size: int, limit: int) -> PodmError:
    return PodmError(f"unsafe archive {archive}: member '{name}' holds {size} bytes, more than the {limit} "
                     f"expected; nothing was extracted")


def _check_sizes(chosen: list[tuple[str, int]], archive: str, max_size: SizeLimit | None,
                 max_total: int | None) -> None:
    """Refuse the archive when a chosen member or all of them together exceed what is expected."""
    total = 0
    for name, size in chosen:
        limit = None if max_size is None else max_size(name)
        if limit is not None and size > limit:
            raise _too_big(archive, name, size, limit)
        total += size
    if max_total is not None and total > max_total:
        raise PodmError(f"unsafe archive {archive}: its files hold {total} bytes, more than the {max_total} "
                        f"expected; nothing was extracted")


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


def _extract_tar(path: Path, dest: Path, archive: str, select: Callable[[str], bool],
                 max_size: SizeLimit | None, max_total: int | None) -> int:
    try:
        with tarfile.open(path, "r:*") as tar:
            chosen = _check_tar(tar, dest, archive, select)
            _check_sizes([(m.name, m.size) for m in chosen], archive, max_size, max_total)
            if hasattr(tarfile, "data_filter"):
                tar.extractall(dest, members=chosen, filter="data")
            else:  # pragma: no cover - Python without PEP 706; members were checked above
                tar.extractall(dest, members=chosen)
    except (tarfile.TarError, EOFError) as err:
        raise PodmError(f"cannot read archive {archive}: {err}") from err
    return len(chosen)


def _extract_zip(path: Path, dest: Path, archive: str, select: Callable[[str], bool],
                 max_size: SizeLimit | None, max_total: int | None) -> int:
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
            _check_sizes([(info.filename, info.file_size) for info, _ in chosen], archive, max_size, max_total)
            for info, target in chosen:
                target.parent.mkdir(parents=True, exist_ok=True)
                with zf.open(info) as src, open(target, "wb") as out:
                    _copy_at_most(src, out, info.file_size, archive, info.filename)
    except (zipfile.BadZipFile, zipfile.LargeZipFile, EOFError) as err:
        raise PodmError(f"cannot read archive {archive}: {err}") from err
    return len(chosen)


def _copy_at_most(src, out, size: int, archive: str, name: str) -> None:
    """Copy a zip member, never more bytes than its header declared (a lying header cannot inflate it)."""
    left = size
    while chunk := src.read(min(_CHUNK, left + 1)):
        left -= len(chunk)
        if left < 0:
            raise _too_big(archive, name, size - left, size)
        out.write(chunk)


def safe_extract(
    path: str | os.PathLike, dest: str | os.PathLike, label: str | None = None,
    select: Callable[[str], bool] | None = None,
    max_size: SizeLimit | None = None, max_total: int | None = None,
) -> int:
    """Extract the regular files of a zip/tar archive into ``dest`` after checking every member.

    The whole archive is rejected (:class:`PodmError`, nothing extracted) if any member has an absolute
    path or a ``..`` component, is a device/fifo, or is a link pointing outside ``dest``. Links inside
    ``dest`` are skipped. ``select(name)`` may restrict which files are extracted. Sizes are checked from
    the archive's directory before a byte is written: a selected member larger than ``max_size(name)``
    (``None``: no limit for it) or selected members larger than ``max_total`` together reject the archive.
    Returns the number of files extracted.
    """
    path, dest = Path(path), Path(dest)
    archive = label or str(path)
    select = select or (lambda name: True)
    dest.mkdir(parents=True, exist_ok=True)
    if zipfile.is_zipfile(path):
        return _extract_zip(path, dest, archive, select, max_size, max_total)
    if tarfile.is_tarfile(path):
        return _extract_tar(path, dest, archive, select, max_size, max_total)
    raise PodmError(f"cannot read archive {archive}: not a zip or tar file")
