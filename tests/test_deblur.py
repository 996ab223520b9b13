"""`podm deblur` on files: outputs written atomically, and one clear line + exit 2 for bad input."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

from conftest import IdentityMethod, error_lines, run_podm
from podm_cli.errors import InputError
from podm_cli.restore import (
    DeblurOptions,
    expand_inputs,
    find_kernel,
    plan_jobs,
    restore_image,
    run_job,
)
from podm_cli.tiling import StageBlender

FAST = ["method=tv", "method.max_iter=15"]


@pytest.fixture
def photo(tmp_path):
    g = np.random.default_rng(0)
    img = (g.random((64, 72, 3)) * 255).astype(np.uint8)
    Image.fromarray(img).save(tmp_path / "photo.png")
    k = np.zeros((9, 9), np.uint8)
    k[4, 1:8] = 255
    Image.fromarray(k).save(tmp_path / "photo_kernel.png")
    return tmp_path / "photo.png"


def _deblur(tmp_path, *args):
    return run_podm(["deblur", *args, *FAST, f"hydra.run.dir={tmp_path / 'run'}"], tmp_path)


def _deblur_in_process(tmp_path, capfd, monkeypatch, *args):
    """As :func:`_deblur`, in this interpreter (a fresh one costs seconds of imports per call)."""
    from types import SimpleNamespace

    from podm_cli.cli import main

    monkeypatch.chdir(tmp_path)
    capfd.readouterr()
    code = main(["deblur", *args, *FAST, f"hydra.run.dir={tmp_path / 'run'}"])
    out, err = capfd.readouterr()
    return SimpleNamespace(returncode=code, stdout=out, stderr=err)


def test_deblur_writes_output_beside_input_with_companion_kernel(tmp_path, photo, capfd, monkeypatch):
    proc = _deblur(tmp_path, str(photo), "sigma=0.01")
    assert proc.returncode == 0, proc.stderr
    out = tmp_path / "photo_tv.png"
    restored = np.asarray(Image.open(out))
    assert restored.shape == (64, 72, 3) and restored.dtype == np.uint8
    summary = [line for line in proc.stdout.splitlines() if "->" in line]
    assert len(summary) == 1 and "72x64x3 8-bit" in summary[0] and "sigma 2.55/255" in summary[0]
    again = _deblur_in_process(tmp_path, capfd, monkeypatch, str(photo), "sigma=0.01")
    assert again.returncode == 2 and "overwrite=true" in error_lines(again)[0]
    assert _deblur_in_process(tmp_path, capfd, monkeypatch, str(photo), "sigma=0.01", "overwrite=true").returncode == 0


def _expect_one_line_error(proc, fragment, folder):
    assert proc.returncode == 2, proc.stderr
    lines = error_lines(proc)
    assert len(lines) == 1 and fragment in lines[0], proc.stderr
    assert not list(folder.glob("*_tv*")), "a failed run left an output behind"


def test_bad_inputs_get_one_line_and_no_output(tmp_path, photo, capfd, monkeypatch):
    (tmp_path / "notes.png").write_text("not an image")
    truncated = tmp_path / "cut.png"
    truncated.write_bytes(photo.read_bytes()[:200])
    np.save(tmp_path / "zero.npy", np.zeros((5, 5)))
    np.save(tmp_path / "nan.npy", np.full((5, 5), np.nan))
    np.save(tmp_path / "huge.npy", np.ones((80, 80)))
    (tmp_path / "empty.txt").write_text("")
    cases = [
        ([str(tmp_path / "missing.png"), "kernel=photo_kernel.png"], "not found"),
        ([str(tmp_path / "notes.png"), "kernel=photo_kernel.png"], "notes.png"),
        ([str(truncated), "kernel=photo_kernel.png"], "cut.png"),
        ([str(photo), f"kernel={tmp_path / 'zero.npy'}"], "zero"),
        ([str(photo), f"kernel={tmp_path / 'nan.npy'}"], "NaN"),
        ([str(photo), f"kernel={tmp_path / 'huge.npy'}"], "smaller than the image"),
        ([str(photo), f"kernel={tmp_path / 'empty.txt'}"], "empty.txt"),
        ([str(photo), "sigma=-1"], "sigma"),
        ([str(photo), "out=/proc/podm-cannot-write"], "/proc/podm-cannot-write"),
    ]
    _expect_one_line_error(_deblur(tmp_path, *cases[-1][0]), cases[-1][1], tmp_path)  # a real process
    for args, fragment in cases:
        _expect_one_line_error(_deblur_in_process(tmp_path, capfd, monkeypatch, *args), fragment, tmp_path)


# ---------------------------------------------------------------------------------------------------------
# Library-level tests (in process: fast). The CLI itself is exercised above and by one in-process run below.


def _method(name, **overrides):
    from podm_cli.apps.methods import build_method

    return build_method(name, overrides)


def _stand_in_podm(**kw):
    from podm_cli.methods.podm import PODM

    return PODM(denoiser=lambda x, s: x.clamp(0, 1), stages=4, tol=0.0, **kw)


@pytest.mark.parametrize("tile", [0, 120])
def test_save_stages_writes_each_stage_atomically(tmp_path, tile):
    g = np.random.default_rng(1)
    Image.fromarray((g.random((90, 160, 3)) * 255).astype(np.uint8)).save(tmp_path / "shot.png")
    np.savetxt(tmp_path / "k.txt", np.ones((3, 5)))
    job = plan_jobs([tmp_path / "shot.png"], str(tmp_path / "k.txt"), None, False, save_stages=True)[0]
    options = DeblurOptions(sigma=0.01, tile=tile, overlap=16, save_stages=True)
    result = run_job(job, _stand_in_podm(), options)
    names = sorted(p.name for p in tmp_path.glob("shot_podm*"))
    assert names == ["shot_podm.png"] + [f"shot_podm_stage{i:02d}.png" for i in range(1, 5)]
    assert len(result.stage_files) == 4 and (result.tiles == 1) == (tile == 0)
    last = np.asarray(Image.open(tmp_path / "shot_podm_stage04.png")).astype(int)
    final = np.asarray(Image.open(tmp_path / "shot_podm.png")).astype(int)
    assert np.abs(last - final).max() <= 1  # the last stage is the result (blended alike when tiled)
    assert not list(tmp_path.glob(".*"))  # no temporary files left
    with pytest.raises(InputError, match="stage"):  # stage files are never overwritten silently
        (tmp_path / "shot_podm.png").unlink()
        plan_jobs([tmp_path / "shot.png"], str(tmp_path / "k.txt"), None, False, save_stages=True)


def test_stage_hook_costs_nothing_when_unused_and_ircnn_reports_each_iteration():
    podm = _stand_in_podm()
    seen = []
    hook = lambda i, x: seen.append((i, tuple(x.shape)))
    podm(torch.rand(2, 1, 30, 40), torch.ones(3, 3) / 9, 0.01, mode="valid", on_stage=hook)
    assert [i for i, _ in seen] == [1, 2, 3, 4] and seen[0][1] == (2, 1, 30, 40)  # cropped like the result
    from podm_cli.methods.ircnn import IRCNN

    class Bank:
        def denoise(self, x, sigma):
            return x

    ircnn = IRCNN(stages=3, bank=Bank())
    seen.clear()
    ircnn(torch.rand(1, 1, 30, 40), torch.ones(3, 3) / 9, 0.01, mode="valid", on_stage=hook)
    assert seen == [(0, (1, 1, 30, 40)), (1, (1, 1, 30, 40)), (2, (1, 1, 30, 40))]
    seen.clear()
    ircnn(torch.rand(1, 1, 30, 40), torch.ones(3, 3) / 9, 0.01, mode="valid")
    assert seen == []
    blender = StageBlender(ram_bytes=0, spill_dir=None)  # everything spills to memory-mapped files
    blender.start_tile((1, 8, 8))
    blender.collect(0, torch.ones(1, 1, 8, 8))
    blender.add_tile(None, None, None, torch.zeros(1, 8, 8))
    assert float(next(blender.stages()).mean()) == 1.0
    blender.close()


def test_colour_per_channel_and_luminance_only():
    g = torch.Generator().manual_seed(0)
    image = 0.25 + 0.5 * torch.nn.functional.avg_pool2d(torch.rand(1, 3, 64, 80, generator=g), 5, 1, 2)[0]
    kernel = torch.ones(1, 7) / 7
    hl = _method("hl")
    rgb, _ = restore_image(image, kernel, hl, 0.01, color="rgb")
    grey, _ = restore_image(image[1:2], kernel, hl, 0.01)
    assert torch.allclose(rgb[1:2], grey, atol=1e-5)  # each channel alone, with the same kernel
    ycc, _ = restore_image(image, kernel, hl, 0.01, color="ycbcr")
    from podm_cli.restore import _rgb_to_ycbcr

    before, after = _rgb_to_ycbcr(image), _rgb_to_ycbcr(ycc)
    chroma_change = (before[1:] - after[1:]).abs()
    assert float(chroma_change.median()) < 1e-5 and float(chroma_change.mean()) < 1e-3  # kept (up to clipping)
    assert not torch.allclose(before[0], after[0], atol=1e-2)  # luminance restored
    with pytest.raises(InputError, match="color"):
        restore_image(image, kernel, hl, 0.01, color="lab")


def test_kernel_lookup_companion_folder_and_lai_layout(tmp_path):
    photos, kernels = tmp_path / "blurry", tmp_path / "kernels"
    photos.mkdir(), kernels.mkdir()
    for name in ("boat1.jpg", "car1.jpg", "car_house.jpg"):
        (photos / name).write_bytes(b"")
    np.save(photos / "boat1_kernel.npy", np.ones((3, 3)))
    (kernels / "boat1_09_cho_psf.png").write_bytes(b"")
    (kernels / "car1_11_krishnan_psf.png").write_bytes(b"")
    (kernels / "car1_13_sun_psf.png").write_bytes(b"")
    assert find_kernel(photos / "boat1.jpg", None) == photos / "boat1_kernel.npy"
    assert find_kernel(photos / "boat1.jpg", str(kernels)) == kernels / "boat1_09_cho_psf.png"
    with pytest.raises(InputError, match="several kernels"):
        find_kernel(photos / "car1.jpg", str(kernels))
    with pytest.raises(InputError, match="no kernel for"):
        find_kernel(photos / "car_house.jpg", str(kernels))


def test_inputs_from_folders_and_globs_skip_kernels_and_outputs(tmp_path):
    for name in ("a.png", "b.jpg", "a_kernel.png", "a_tv.png", "a_podm_stage03.png", "x_psf.png", "n.txt",
                 "c_tv.png", "b_2.jpg"):
        (tmp_path / name).write_bytes(b"")
    tags = ("tv", "hl", "podm")
    # a_tv.png is tv's output for a.png; c_tv.png (no c.png) and b_2.jpg are photos
    assert [p.name for p in expand_inputs([str(tmp_path)], tags)] == ["a.png", "b.jpg", "b_2.jpg", "c_tv.png"]
    assert [p.name for p in expand_inputs([str(tmp_path / "*.png")], tags)] == ["a.png", "c_tv.png"]
    assert [p.name for p in expand_inputs([str(tmp_path / "a_tv.png")])] == ["a_tv.png"]  # named: taken
    with pytest.raises(InputError, match="no file matches"):
        expand_inputs([str(tmp_path / "*.tif")])


def test_cli_folder_glob_out_dir_and_bit_depths(tmp_path, monkeypatch, capsys):
    """One in-process `podm deblur` run: a folder + a glob, out=DIR, 8/16-bit PNG, 16-bit TIFF, JPEG, grey."""
    import cv2
    import tifffile

    from podm_cli.cli import main

    src = tmp_path / "in"
    src.mkdir()
    g = np.random.default_rng(2)
    smooth = lambda a: cv2.GaussianBlur(a, (0, 0), 2)  # noqa: E731
    cv2.imwrite(str(src / "deep.png"), smooth((g.random((60, 70, 3)) * 65535).astype(np.uint16)))
    Image.fromarray(smooth((g.random((50, 40)) * 255).astype(np.uint8))).save(src / "grey.png")
    Image.fromarray(smooth((g.random((48, 64, 3)) * 255).astype(np.uint8))).save(src / "snap.jpg", quality=95)
    tifffile.imwrite(tmp_path / "scan.tif", smooth((g.random((40, 52)) * 65535).astype(np.uint16)))
    np.save(tmp_path / "k.npy", np.outer([1, 2, 1], [1, 2, 3, 2, 1]))
    monkeypatch.chdir(tmp_path)
    code = main(["deblur", str(src), str(tmp_path / "sc*.tif"), "kernel=k.npy", "out=restored", "method=hl",
                 "sigma=0.004", f"hydra.run.dir={tmp_path / 'run'}"])
    captured = capsys.readouterr()
    assert code == 0, captured.err
    out = tmp_path / "restored"
    assert sorted(p.name for p in out.iterdir()) == ["deep_hl.png", "grey_hl.png", "scan_hl.tif", "snap_hl.jpg"]
    deep = cv2.imread(str(out / "deep_hl.png"), cv2.IMREAD_UNCHANGED)
    assert deep.dtype == np.uint16 and deep.shape == (60, 70, 3)
    assert len(np.unique(deep)) > 1000  # really 16-bit levels, not 8-bit ones scaled
    assert tifffile.imread(out / "scan_hl.tif").dtype == np.uint16
    assert np.asarray(Image.open(out / "grey_hl.png")).dtype == np.uint8
    assert Image.open(out / "snap_hl.jpg").format == "JPEG"
    lines = [line for line in captured.out.splitlines() if "->" in line]
    assert len(lines) == 4 and "70x60x3 16-bit" in next(line for line in lines if "deep" in line)
    assert all("sigma 1.02/255" in line and " s  " in line for line in lines)


def test_auto_sigma_is_estimated_once_and_floored_by_noise_floor():
    g = torch.Generator().manual_seed(0)
    image = (0.5 + 0.02 * torch.randn(1, 96, 96, generator=g)).clamp(0, 1)
    info = {}
    _, sigma = restore_image(image, torch.ones(3, 3) / 9, IdentityMethod(), "auto", info=info)
    assert abs(sigma - 0.02) < 0.004 and info["sigma_estimate"] == sigma
    _, floored = restore_image(image, torch.ones(3, 3) / 9, IdentityMethod(), "auto", noise_floor=0.05, info=info)
    assert floored == 0.05 and info["sigma_estimate"] < 0.05
    _, given = restore_image(image, torch.ones(3, 3) / 9, IdentityMethod(), 0.001, noise_floor=0.05)
    assert given == 0.001  # a number given is used as it is


def test_batch_is_all_or_nothing_a_broken_image_stops_it_before_any_output(tmp_path, photo, capfd, monkeypatch):
    batch = tmp_path / "batch"
    batch.mkdir()
    (batch / "a.png").write_bytes(photo.read_bytes())
    (batch / "b.png").write_bytes(photo.read_bytes()[:300])  # header fine, pixel data cut short
    proc = _deblur_in_process(tmp_path, capfd, monkeypatch, str(batch), f"kernel={tmp_path / 'photo_kernel.png'}",
                              "sigma=0.01")
    assert proc.returncode == 2 and "b.png" in error_lines(proc)[0], proc.stderr
    assert sorted(p.name for p in batch.iterdir()) == ["a.png", "b.png"]  # a_tv.png was never written


def _main(tmp_path, capfd, monkeypatch, *args):
    """``podm deblur ARGS`` in this interpreter, without the FAST method settings."""
    from types import SimpleNamespace

    from podm_cli.cli import main

    monkeypatch.chdir(tmp_path)
    capfd.readouterr()
    code = main(["deblur", *args, f"hydra.run.dir={tmp_path / 'run'}"])
    out, err = capfd.readouterr()
    return SimpleNamespace(returncode=code, stdout=out, stderr=err)


def test_outputs_named_by_method_and_skip_existing(tmp_path, photo, capfd, monkeypatch):
    for method in ("hl", "tv"):
        proc = _main(tmp_path, capfd, monkeypatch, str(photo), "sigma=0.01", f"method={method}", "method.max_iter=5"
                     if method == "tv" else "method.beta_max=8")
        assert proc.returncode == 0, proc.stderr
    assert (tmp_path / "photo_hl.png").is_file() and (tmp_path / "photo_tv.png").is_file()  # no collision
    # a re-run over the folder: hl's and tv's outputs are not inputs, the existing output is skipped
    before = (tmp_path / "photo_hl.png").stat().st_mtime_ns
    proc = _main(tmp_path, capfd, monkeypatch, str(tmp_path), "sigma=0.01", "method=hl", "skip_existing=true")
    assert proc.returncode == 0, proc.stderr
    assert "skipped" in proc.stdout and "photo_hl.png exists" in proc.stdout
    assert (tmp_path / "photo_hl.png").stat().st_mtime_ns == before
    refused = _main(tmp_path, capfd, monkeypatch, str(tmp_path), "sigma=0.01", "method=hl")
    assert refused.returncode == 2 and "skip_existing=true" in error_lines(refused)[0]


def test_one_kernel_of_a_multi_kernel_file(tmp_path, photo, capfd, monkeypatch):
    g = np.random.default_rng(3)
    stack = g.random((3, 7, 7))
    np.save(tmp_path / "stack.npy", stack)
    np.save(tmp_path / "second.npy", stack[1])
    fast = ["sigma=0.01", "method=hl", "method.beta_max=8"]
    runs = {"single": ["kernel=second.npy", "out=single"], "colon": ["kernel=stack.npy:1", "out=colon"],
            "index": ["kernel=stack.npy", "kernel_index=1", "out=index"]}
    for name, args in runs.items():
        proc = _main(tmp_path, capfd, monkeypatch, str(photo), *args, *fast)
        assert proc.returncode == 0, (name, proc.stderr)
    single = np.asarray(Image.open(tmp_path / "single" / "photo_hl.png"))
    for name in ("colon", "index"):
        assert np.array_equal(np.asarray(Image.open(tmp_path / name / "photo_hl.png")), single), name
    proc = _main(tmp_path, capfd, monkeypatch, str(photo), "kernel=stack.npy", "out=none", *fast)
    assert proc.returncode == 2 and "kernel_index=INDEX" in error_lines(proc)[0], proc.stderr
    proc = _main(tmp_path, capfd, monkeypatch, str(photo), "kernel=stack.npy:7", "out=none", *fast)
    assert proc.returncode == 2 and "out of range" in error_lines(proc)[0], proc.stderr


def test_memory_budget_is_kept_or_refused_in_one_line(tmp_path, capfd, monkeypatch):
    g = np.random.default_rng(4)
    Image.fromarray((g.random((1200, 1500)) * 255).astype(np.uint8)).save(tmp_path / "big.png")
    np.save(tmp_path / "big_kernel.npy", np.ones((9, 9)))
    proc = _main(tmp_path, capfd, monkeypatch, str(tmp_path / "big.png"), "method=hl", "sigma=0.01",
                 "memory_budget_mb=20")
    assert proc.returncode == 2, proc.stderr
    lines = error_lines(proc)
    assert len(lines) == 1 and "needs about" in lines[0] and "memory_budget_mb=20" in lines[0], lines
    need = int(lines[0].split("needs about ")[1].split()[0])
    assert 48 < need < 1000  # 1.8 Mpx: 28 B/px of whole-image buffers alone are 48 MB
    assert not (tmp_path / "big_hl.png").exists()


def test_decompression_bomb_warning_is_not_shown(tmp_path, monkeypatch):
    import warnings

    from podm_cli.imageio import image_size, read_image

    Image.fromarray(np.zeros((60, 50), np.uint8)).save(tmp_path / "x.png")
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 2000)  # 3000 px: over Pillow's warning limit, under 2x
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        assert image_size(tmp_path / "x.png") == (1, 60, 50, 1)
        assert tuple(read_image(tmp_path / "x.png", mode="keep")[0].shape) == (1, 60, 50)
    assert not [w for w in caught if "Decompression" in type(w.message).__name__], caught
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 1000)  # over 2x: Pillow refuses, podm says so in one line
    with pytest.raises(InputError, match="too large to decode safely"):
        read_image(tmp_path / "x.png")
