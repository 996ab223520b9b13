"""``podm data fetch``: checksummed copies from a mirror, downloads over HTTP (base URL and archives),
safe extraction, no half-written files, and the ``podm data`` command line."""

from __future__ import annotations

import dataclasses
import functools
import hashlib
import importlib.resources
import io
import json
import random
import socket
import tarfile
import threading
import zipfile
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import ClassVar

import pytest
from rich.console import Console

from podm_cli.apps import data as data_app
from podm_cli.apps.data import main
from podm_cli.data import fetch as fetch_mod
from podm_cli.data.fetch import fetch
from podm_cli.data.locator import find_sun_layout
from podm_cli.data.manifest import Manifest, load_manifest, manifest_from_dict
from podm_cli.data.transfer import safe_extract, sha256_file
from podm_cli.errors import DataNotFoundError, PodmError

# ------------------------------------------------------------------------------------------- helpers
rng = random.Random(1234)
TINY = {
    "tiny/a.bin": bytes(rng.getrandbits(8) for _ in range(3000)),
    "tiny/sub/b.txt": b"hello podm\n" * 7,
}


def tiny_manifest(base_url: str | None = None) -> Manifest:
    files = {rel[len("tiny/"):]: [hashlib.sha256(data).hexdigest(), len(data)] for rel, data in TINY.items()}
    group = {"prefix": "tiny/", "origin": "test origin", "licence": "test", "base_url": base_url, "files": files}
    return manifest_from_dict({"targets": {"tiny": {"description": "test target", "groups": [group]}}})


def write_tree(folder: Path, files: dict[str, bytes]) -> Path:
    for rel, data in files.items():
        (folder / rel).parent.mkdir(parents=True, exist_ok=True)
        (folder / rel).write_bytes(data)
    return folder


def quiet() -> Console:
    return Console(file=io.StringIO(), width=200, highlight=False)


def all_files(folder: Path) -> list[str]:
    return sorted(str(p.relative_to(folder)) for p in folder.rglob("*") if p.is_file() or p.is_symlink())


def make_tar(path: Path, files: dict[str, bytes], prefix: str = "") -> Path:
    with tarfile.open(path, "w:gz" if path.name.endswith("gz") else "w") as tar:
        for rel, data in files.items():
            info = tarfile.TarInfo(prefix + rel)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return path


def make_zip(path: Path, files: dict[str, bytes], prefix: str = "") -> Path:
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED) as zf:
        for rel, data in files.items():
            zf.writestr(prefix + rel, data)
    return path


class _QuietHandler(SimpleHTTPRequestHandler):
    requests: ClassVar[list[str]] = []

    def do_GET(self) -> None:
        _QuietHandler.requests.append(self.path)
        super().do_GET()

    def log_message(self, *args) -> None:  # keep pytest output clean
        pass


@pytest.fixture
def http_server(tmp_path):
    """A local HTTP server (127.0.0.1, free port) serving ``tmp_path/serve``; yields (folder, base URL)."""
    serve = tmp_path / "serve"
    serve.mkdir()
    server = ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(_QuietHandler, directory=str(serve)))
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    try:
        yield serve, f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)


# ------------------------------------------------------------------------------------- local mirror
def test_fetch_from_local_mirror_verifies_then_skips(tmp_path):
    mirror, root = write_tree(tmp_path / "mirror", TINY), tmp_path / "root"
    console = quiet()
    report = fetch("tiny", root, source=mirror, manifest=tiny_manifest(), console=console)
    assert sorted(report.fetched) == sorted(TINY)
    for rel, data in TINY.items():
        assert (root / rel).read_bytes() == data
    assert all_files(root) == sorted(TINY)  # no temp files left behind
    lines = console.file.getvalue().splitlines()
    assert sum("copied" in line for line in lines) == 2
    again = fetch("tiny", root, source=mirror, manifest=tiny_manifest(), console=quiet())
    assert again.fetched == [] and sorted(again.present) == sorted(TINY)


def test_corrupted_source_file_is_rejected_and_not_written(tmp_path):
    files = dict(TINY)
    files["tiny/sub/b.txt"] = b"tampered" + TINY["tiny/sub/b.txt"][8:]  # same size, wrong content
    mirror, root = write_tree(tmp_path / "mirror", files), tmp_path / "root"
    with pytest.raises(PodmError, match="checksum mismatch for tiny/sub/b.txt") as err:
        fetch("tiny", root, source=mirror, manifest=tiny_manifest(), console=quiet())
    assert "\n" not in str(err.value)
    assert not (root / "tiny" / "sub" / "b.txt").exists()
    assert not list(root.rglob("*.part")) and not list(root.rglob(".podm-*"))


def test_damaged_file_in_root_is_replaced(tmp_path):
    mirror, root = write_tree(tmp_path / "mirror", TINY), tmp_path / "root"
    write_tree(root, {"tiny/a.bin": b"truncated"})
    report = fetch("tiny", root, source=mirror, manifest=tiny_manifest(), console=quiet())
    assert "tiny/a.bin" in report.fetched
    assert (root / "tiny/a.bin").read_bytes() == TINY["tiny/a.bin"]


def test_missing_source_folder_and_file(tmp_path):
    with pytest.raises(DataNotFoundError, match="source not found"):
        fetch("tiny", tmp_path / "root", source=tmp_path / "nope", manifest=tiny_manifest(), console=quiet())
    mirror = write_tree(tmp_path / "mirror", {"tiny/a.bin": TINY["tiny/a.bin"]})
    with pytest.raises(DataNotFoundError, match="has no tiny/sub/b.txt"):
        fetch("tiny", tmp_path / "root", source=mirror, manifest=tiny_manifest(), console=quiet())


def test_unknown_target(tmp_path):
    with pytest.raises(PodmError, match="unknown data target 'nope'"):
        fetch("nope", tmp_path, manifest=tiny_manifest(), console=quiet())


def test_files_without_url_are_reported(tmp_path):
    with pytest.raises(DataNotFoundError, match="2 file\\(s\\) have no public URL.*--source"):
        fetch("tiny", tmp_path / "root", manifest=tiny_manifest(base_url=None), console=quiet())


# -------------------------------------------------------------------------------------------- HTTP
@pytest.mark.parametrize(
    ("archive", "prefix"),
    [("bundle.tar.gz", ""), ("bundle.tgz", "podm-data/"), ("bundle.tar", ""), ("bundle.zip", "podm-data/")],
)
def test_fetch_archive_over_http(tmp_path, http_server, archive, prefix):
    serve, url = http_server
    maker = make_zip if archive.endswith(".zip") else make_tar
    maker(serve / archive, {**TINY, "unrelated/extra.txt": b"ignored"}, prefix=prefix)
    root = tmp_path / "root"
    report = fetch("tiny", root, source=f"{url}/{archive}", manifest=tiny_manifest(), console=quiet())
    assert sorted(report.fetched) == sorted(TINY)
    assert all_files(root) == sorted(TINY)  # archive, staging folder and extra member are gone
    for rel, data in TINY.items():
        assert (root / rel).read_bytes() == data


def test_fetch_all_downloads_an_archive_once(tmp_path, http_server):
    """Several targets from one archive: one download; a layout target (Sun) without files is a note."""
    serve, url = http_server
    files = {**TINY, "more/c.bin": b"c" * 99}
    make_tar(serve / "all.tar.gz", files)
    raw = {"targets": {
        "tiny": {"description": "t", "groups": [{"prefix": "tiny/", "origin": "o", "licence": "l", "base_url": None,
                  "files": {k[5:]: [hashlib.sha256(v).hexdigest(), len(v)] for k, v in TINY.items()}}]},
        "sun": json.loads(importlib.resources.files("podm_cli.data").joinpath("manifest.json").read_text())[
            "targets"]["sun"],
        "more": {"description": "m", "groups": [{"prefix": "more/", "origin": "o", "licence": "l", "base_url": None,
                  "files": {"c.bin": [hashlib.sha256(b"c" * 99).hexdigest(), 99]}}]},
    }}
    _QuietHandler.requests.clear()
    report = fetch("all", tmp_path / "root", source=f"{url}/all.tar.gz", manifest=manifest_from_dict(raw),
                   console=quiet())
    assert _QuietHandler.requests == ["/all.tar.gz"]
    assert sorted(report.fetched) == sorted(files) and all_files(tmp_path / "root") == sorted(files)
    assert any(note.startswith("sun: not in") for note in report.notes)
    # a base URL cannot serve the Sun layout: a note for `all`, an error for `sun` itself
    write_tree(serve / "mirror", files)
    report = fetch("all", tmp_path / "r2", source=f"{url}/mirror", manifest=manifest_from_dict(raw), console=quiet())
    assert any("must be a folder or an archive" in note for note in report.notes)
    with pytest.raises(DataNotFoundError, match="must be a folder or an archive"):
        fetch("sun", tmp_path / "r2", source=f"{url}/mirror", manifest=manifest_from_dict(raw), console=quiet())


def test_fetch_local_and_file_url_archives(tmp_path):
    archive = make_tar(tmp_path / "bundle.data", TINY)  # a local file is read as an archive whatever its name
    fetch("tiny", tmp_path / "r1", source=archive, manifest=tiny_manifest(), console=quiet())
    archive = make_tar(tmp_path / "bundle.tar.gz", TINY)
    fetch("tiny", tmp_path / "r2", source=archive.as_uri(), manifest=tiny_manifest(), console=quiet())
    assert all_files(tmp_path / "r1") == all_files(tmp_path / "r2") == sorted(TINY)


def test_archive_missing_a_file(tmp_path, http_server):
    serve, url = http_server
    make_zip(serve / "part.zip", {"tiny/a.bin": TINY["tiny/a.bin"]})
    with pytest.raises(DataNotFoundError, match="has no tiny/sub/b.txt"):
        fetch("tiny", tmp_path / "root", source=f"{url}/part.zip", manifest=tiny_manifest(), console=quiet())
    assert not (tmp_path / "root" / "tiny" / "sub").exists()
    assert not [p for p in (tmp_path / "root").iterdir() if p.name.startswith(".podm-")]


def test_fetch_from_base_url_and_manifest_urls(tmp_path, http_server):
    serve, url = http_server
    write_tree(serve / "mirror", TINY)
    fetch("tiny", tmp_path / "r1", source=f"{url}/mirror/", manifest=tiny_manifest(), console=quiet())
    assert all_files(tmp_path / "r1") == sorted(TINY)
    # no --source: the manifest's own URLs (base_url + name)
    manifest = tiny_manifest(base_url=f"{url}/mirror/tiny/")
    report = fetch("tiny", tmp_path / "r2", manifest=manifest, console=quiet())
    assert sorted(report.fetched) == sorted(TINY)
    assert (tmp_path / "r2/tiny/sub/b.txt").read_bytes() == TINY["tiny/sub/b.txt"]


def test_http_errors_are_one_line_and_leave_nothing(tmp_path, http_server):
    serve, url = http_server
    write_tree(serve / "mirror", {"tiny/a.bin": b"wrong bytes"})
    root = tmp_path / "root"
    with pytest.raises(PodmError, match="checksum mismatch for tiny/a.bin"):
        fetch("tiny", root, source=f"{url}/mirror", manifest=tiny_manifest(), console=quiet())
    with pytest.raises(DataNotFoundError, match="HTTP 404") as err:
        fetch("tiny", root, source=f"{url}/missing.tar.gz", manifest=tiny_manifest(), console=quiet())
    assert "\n" not in str(err.value)
    assert all_files(root) == []


def test_unreachable_url(tmp_path):
    with socket.socket() as sock:  # a port nobody listens on
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    with pytest.raises(DataNotFoundError, match=f"cannot download http://127.0.0.1:{port}/x.tar.gz"):
        fetch("tiny", tmp_path, source=f"http://127.0.0.1:{port}/x.tar.gz", manifest=tiny_manifest(),
              console=quiet())


# ------------------------------------------------------------------------------------ unsafe archives
def _evil_tar(path: Path, kind: str, outside: Path) -> Path:
    with tarfile.open(path, "w:gz") as tar:
        good = tarfile.TarInfo("tiny/a.bin")
        good.size = len(TINY["tiny/a.bin"])
        tar.addfile(good, io.BytesIO(TINY["tiny/a.bin"]))
        payload = b"pwned"
        if kind == "parent":
            info = tarfile.TarInfo("tiny/../../evil.txt")
        elif kind == "absolute":
            info = tarfile.TarInfo(str(outside / "abs_evil.txt"))
        elif kind == "symlink":
            info = tarfile.TarInfo("tiny/link")
            info.type, info.linkname = tarfile.SYMTYPE, "../../outside"
        elif kind == "hardlink":
            info = tarfile.TarInfo("tiny/hard")
            info.type, info.linkname = tarfile.LNKTYPE, "/etc/passwd"
        else:  # device
            info = tarfile.TarInfo("tiny/dev")
            info.type = tarfile.CHRTYPE
        if info.isfile():
            info.size = len(payload)
            tar.addfile(info, io.BytesIO(payload))
        else:
            tar.addfile(info)
    with tarfile.open(path) as tar:  # the hostile name really is in the archive
        names = tar.getnames()
        if kind == "absolute":
            assert any(name.startswith("/") for name in names)
    return path


@pytest.mark.parametrize("kind", ["parent", "absolute", "symlink", "hardlink", "device"])
def test_malicious_tar_is_rejected_before_extraction(tmp_path, http_server, kind):
    serve, url = http_server
    outside = tmp_path / "outside_dir"
    outside.mkdir()
    _evil_tar(serve / "evil.tar.gz", kind, outside)
    root = tmp_path / "work" / "root"
    with pytest.raises(PodmError, match="unsafe archive") as err:
        fetch("tiny", root, source=f"{url}/evil.tar.gz", manifest=tiny_manifest(), console=quiet())
    assert "\n" not in str(err.value)
    assert not (tmp_path / "work" / "evil.txt").exists() and not (tmp_path / "evil.txt").exists()
    assert not (outside / "abs_evil.txt").exists()
    assert all_files(root) == []  # not even the harmless member, no staging or download left


@pytest.mark.parametrize("name", ["../evil.txt", "/abs_evil.txt", "a/../../evil.txt", "C:/evil.txt"])
def test_malicious_zip_is_rejected(tmp_path, name):
    archive = tmp_path / "evil.zip"
    with zipfile.ZipFile(archive, "w") as zf:
        zf.writestr("tiny/a.bin", TINY["tiny/a.bin"])
        zf.writestr(zipfile.ZipInfo(name), b"pwned")
    root = tmp_path / "work" / "root"
    with pytest.raises(PodmError, match="unsafe archive"):
        fetch("tiny", root, source=archive, manifest=tiny_manifest(), console=quiet())
    assert not (tmp_path / "work" / "evil.txt").exists() and not (tmp_path / "evil.txt").exists()
    assert all_files(root) == []


def test_zip_symlink_escaping_is_rejected(tmp_path):
    archive = tmp_path / "link.zip"
    with zipfile.ZipFile(archive, "w") as zf:
        info = zipfile.ZipInfo("tiny/link")
        info.external_attr = (0o120777 << 16)  # S_IFLNK
        zf.writestr(info, "../../../etc")
    with pytest.raises(PodmError, match="links outside"):
        safe_extract(archive, tmp_path / "dest")
    assert all_files(tmp_path / "dest") == []


def test_safe_extract_skips_links_inside_and_extracts_files(tmp_path):
    archive = tmp_path / "ok.tar"
    with tarfile.open(archive, "w") as tar:
        for rel, data in TINY.items():
            info = tarfile.TarInfo(rel)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
        link = tarfile.TarInfo("tiny/alias.bin")
        link.type, link.linkname = tarfile.SYMTYPE, "a.bin"
        tar.addfile(link)
    assert safe_extract(archive, tmp_path / "dest", select=lambda n: n.endswith(".bin")) == 1
    assert all_files(tmp_path / "dest") == ["tiny/a.bin"]
    (tmp_path / "junk.tar.gz").write_bytes(b"not an archive")
    with pytest.raises(PodmError, match="not a zip or tar"):
        safe_extract(tmp_path / "junk.tar.gz", tmp_path / "dest2")


@pytest.mark.parametrize("kind", ["zip", "tar.gz"])
def test_oversized_member_is_rejected_before_a_byte_is_written(tmp_path, monkeypatch, kind):
    """A 4 MB run of zeros (a few kB compressed) named like a 77-byte manifest file: refused from the archive's
    directory, before any extraction starts; nothing lands in the data root."""
    from podm_cli.data import transfer

    def never(*args, **kwargs):
        raise AssertionError("extraction started")

    monkeypatch.setattr(transfer, "_copy_at_most", never)
    monkeypatch.setattr(tarfile.TarFile, "extractall", never)
    bomb = {"tiny/a.bin": TINY["tiny/a.bin"], "tiny/sub/b.txt": bytes(4 * 2**20)}
    make = make_zip if kind == "zip" else make_tar
    archive = make(tmp_path / f"bomb.{kind}", bomb)
    assert archive.stat().st_size < 64 * 2**10
    root = tmp_path / "root"
    with pytest.raises(PodmError, match=r"member 'tiny/sub/b.txt' holds 4194304 bytes, more than the 77 expected"):
        fetch("tiny", root, source=archive, manifest=tiny_manifest(), console=quiet())
    assert all_files(root) == []


def test_members_the_manifest_does_not_list_are_not_extracted(tmp_path):
    from podm_cli.data.fetch import ArchivePlan

    files = {**TINY, "tiny/junk.bin": bytes(2 * 2**20), "README": b"hi"}
    archive = make_zip(tmp_path / "extra.zip", files, prefix="top/")
    plan = ArchivePlan.for_targets(tiny_manifest().targets.values())
    dest = tmp_path / "dest"
    assert safe_extract(archive, dest, select=plan.select, max_size=plan.max_size, max_total=plan.max_total) == 2
    assert all_files(dest) == ["top/tiny/a.bin", "top/tiny/sub/b.txt"]
    report = fetch("tiny", tmp_path / "root", source=archive, manifest=tiny_manifest(), console=quiet())
    assert sorted(report.fetched) == sorted(TINY) and all_files(tmp_path / "root") == sorted(TINY)
    with pytest.raises(PodmError, match="files hold 3077 bytes, more than the 3000 expected"):
        safe_extract(archive, tmp_path / "d2", select=plan.select, max_total=3000)
    assert all_files(tmp_path / "d2") == []


# ----------------------------------------------------------------------------------------- Sun (layout)
def _fake_sun_files() -> dict[str, bytes]:
    files = {f"input80imgs8kernels/{i}_{j}_blurred.png": b"b" for i in range(1, 81) for j in range(1, 9)}
    files.update({f"all_deblur_results/img{i}_groundtruth_img.png": b"g" for i in range(1, 81)})
    files.update({f"all_deblur_results/kernel{j}_groundtruth_kernel.png": b"k" for j in range(1, 9)})
    files["all_deblur_results/1_1_xu_result.png"] = b"other methods' results are not copied"
    return files


def test_fetch_sun_from_archive_and_folder(tmp_path):
    archive = make_zip(tmp_path / "sun.zip", _fake_sun_files(), prefix="release/")
    fetch("sun", tmp_path / "r1", source=archive, console=Console(quiet=True))
    layout = find_sun_layout(tmp_path / "r1")
    assert layout.complete and len(layout.kernels) == 8
    assert layout.blurred[(3, 4)] == tmp_path / "r1/sun/input80imgs8kernels/3_4_blurred.png"
    assert not list((tmp_path / "r1").rglob("*xu_result*"))
    some = {f"sun/x/{i}_1_blurred.png": b"b" for i in range(1, 4)} | {"sun/x/img1_groundtruth_img.png": b"g"}
    mirror = write_tree(tmp_path / "mirror", {**some, "sun/x/notes.txt": b"not copied"})
    report = fetch("sun", tmp_path / "r2", source=mirror, console=Console(quiet=True))
    layout = find_sun_layout(tmp_path / "r2")
    assert len(report.fetched) == 4 and not layout.complete and "(incomplete)" in report.notes[0]
    assert sorted(layout.gt) == [1] and sorted(layout.blurred) == [(1, 1), (2, 1), (3, 1)]
    assert not list((tmp_path / "r2").rglob("notes.txt"))


def test_fetch_sun_without_source_or_files(tmp_path):
    with pytest.raises(DataNotFoundError, match="lbsun/deblur2013"):
        fetch("sun", tmp_path / "root", console=quiet())
    write_tree(tmp_path / "empty", {"readme.txt": b"nothing here"})
    with pytest.raises(DataNotFoundError, match="no Sun et al. 2013 files"):
        fetch("sun", tmp_path / "root", source=tmp_path / "empty", console=quiet())


# ---------------------------------------------------------------------------------- shipped manifest
def test_shipped_manifest_is_well_formed():
    manifest = load_manifest()
    assert list(manifest.targets) == ["levin", "sun", "weights", "train", "real"]
    assert len(manifest.resolve("all")) == 5
    entries = [e for t in manifest.targets.values() for e in t.files]
    assert len(entries) > 1000 and len({e.path for e in entries}) == len(entries)
    for e in entries:
        assert len(e.sha256) == 64 and e.size > 0 and e.origin and e.licence
        assert e.url is None or e.url.startswith("https://")
    urls = {e.path: e.url for e in entries}
    assert urls["levin/kernels/Levin09.mat"] == "https://raw.githubusercontent.com/cszn/KAIR/HEAD/kernels/Levin09.mat"
    assert urls["weights/ircnn_gray_keras/net7.hdf5"].endswith("dlut-dimt/PODM/HEAD/model/net7.hdf5")
    assert urls["levin/blurred_real/im02_ker05.png"].endswith("cszn/IRCNN/HEAD/testsets/Deblur_set2/im02_ker05.png")
    assert urls["levin/gt/im_1.png"] is None  # origin bytes unverified: --source only
    sun = manifest.targets["sun"]
    assert sun.layout == "sun" and sun.files == [] and sun.origin_url.startswith("http")


def _subset(manifest: Manifest, target: str, prefixes: tuple[str, ...]) -> Manifest:
    t = manifest.targets[target]
    return Manifest({target: dataclasses.replace(t, files=[e for e in t.files if e.path.startswith(prefixes)])})


@pytest.mark.data
def test_fetch_levin_subset_from_shared_mirror(tmp_path, data_dir):
    manifest = _subset(load_manifest(), "levin", ("levin/kernels/", "levin/gt/"))
    report = fetch("levin", tmp_path, source=data_dir, manifest=manifest, console=quiet())
    assert len(report.fetched) == 6
    assert (tmp_path / "levin/kernels/Levin09.mat").read_bytes() == (data_dir / "levin/kernels/Levin09.mat").read_bytes()
    assert fetch_mod.target_status(manifest.targets["levin"], tmp_path, verify=True).startswith("present 6/6 files (complete, sha256 verified)")


@pytest.mark.data
def test_manifest_matches_shared_mirror(data_dir):
    """Every mirror file is listed with its size and sha256 (catches a stale manifest)."""
    manifest = load_manifest()
    entries = {e.path: e for t in manifest.targets.values() for e in t.files}
    on_disk = {p for p in all_files(data_dir) if p != "README.md"}
    assert on_disk == set(entries)
    for path, entry in entries.items():
        assert (data_dir / path).stat().st_size == entry.size, path
        assert sha256_file(data_dir / path) == entry.sha256, path


# ---------------------------------------------------------------------------------------------- CLI
def test_cli_list_and_where(tmp_path, capsys):
    assert main(["list"]) == 0
    out = capsys.readouterr().out
    assert "levin" in out and "cszn/KAIR" in out and "lbsun" in out
    write_tree(tmp_path, {"levin/gt/im_1.png": b"x"})
    assert main(["where", "--root", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert f"data root: {tmp_path}" in out
    assert "levin    present 1/70 files (partial; podm data fetch levin)" in out
    assert "sun      present 0/640 blurred" in out and "(absent)" in out


def test_cli_fetch_errors_are_one_line(tmp_path, capsys):
    from podm_cli.cli import main as podm_main

    code = podm_main(["data", "fetch", "levin", "--root", str(tmp_path / "r"), "--source", str(tmp_path / "nope")])
    assert code == 2
    err = [line for line in capsys.readouterr().err.splitlines() if line.strip()]
    assert len(err) == 1 and "source not found" in err[0]
    with pytest.raises(SystemExit):
        main(["fetch", "bogus"])


@pytest.mark.data
def test_cli_fetch_from_mirror(tmp_path, data_dir, monkeypatch, capsys):
    small = _subset(load_manifest(), "levin", ("levin/kernels/",))
    monkeypatch.setattr(data_app, "load_manifest", lambda path=None: small)
    assert main(["fetch", "levin", "--root", str(tmp_path), "--source", str(data_dir)]) == 0
    err = capsys.readouterr().err
    assert "levin/kernels/Levin09.mat" in err and "2 fetched" in err
    assert main(["fetch", "levin", "--root", str(tmp_path), "--source", str(data_dir), "--quiet"]) == 0
    assert capsys.readouterr().err == ""
