"""`podm deblur` on files: outputs written atomically, and one clear line + exit 2 for bad input."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

from conftest import error_lines, run_podm
from podm_cli.errors import InputError
from podm_cli.methods.base import Method
from podm_cli.restore import (
    DeblurOptions,
    expand_inputs,
    find_kernel,
    plan_jobs,
    restore_image,
    run_job,
    tile_plan,
)
from podm_cli.tiling import StageBlender, plan_tiles

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
    out = tmp_path / "photo_podm.png"
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
    assert not list(folder.glob("*_podm*")), "a failed run left an output behind"


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
    from hydra.utils import instantiate
    from omegaconf import OmegaConf

    from podm_cli.apps import config_dir

    cfg = OmegaConf.merge(OmegaConf.load(config_dir() / "method" / f"{name}.yaml"), overrides)
    return instantiate(cfg)


class _Identity(Method):
    name = "identity"

    def restore_circular(self, y, kernel, sigma):
        return y


def _psnr(a, b):
    return float(10 * torch.log10(1 / ((a - b) ** 2).mean()))


def test_tiled_and_untiled_agree_within_0p1_db_on_512():
    """skimage's 512 x 512 camera, a 19 px random shake, 1 % noise, hl: 9 tiles vs the whole image.

    Measured: whole 30.85 dB, tiled 30.84 dB (-0.017 dB); see podm_cli.tiling for other kernels.
    """
    from skimage.data import camera

    from podm_cli.kernels import random_motion_kernel
    from podm_cli.physics import Blur, add_gaussian_noise
    from podm_cli.physics.blur import valid_offset

    sharp = torch.from_numpy(camera()).float()[None] / 255  # (1, 512, 512)
    kernel = random_motion_kernel(19, length=24, generator=torch.Generator().manual_seed(3)).float()
    kh, kw = kernel.shape
    oy, ox = valid_offset(kh, kw)
    padded = torch.nn.functional.pad(sharp[None], (ox, kw - 1 - ox, oy, kh - 1 - oy), mode="reflect")
    blurry = add_gaussian_noise(Blur(kernel, "valid")(padded), 0.01, seed=0)[0]  # a 512 x 512 valid blur
    hl = _method("hl")
    plan = tile_plan(tuple(blurry.shape), kernel, hl, tile=362)
    assert plan.tiled and plan.n_tiles == 9 and plan.overlap >= 2 * kh
    whole, _ = restore_image(blurry, kernel, hl, 0.01, tile=0)
    tiled, _ = restore_image(blurry, kernel, hl, 0.01, plan=plan)
    gain_whole, gain_tiled = _psnr(whole, sharp), _psnr(tiled, sharp)
    assert gain_whole > _psnr(blurry, sharp) + 3  # it does deblur
    assert abs(gain_tiled - gain_whole) < 0.1, (gain_whole, gain_tiled)


def test_tile_geometry_blends_back_to_the_image():
    """With a method that changes nothing, blended tiles give the untiled result (weights normalised).

    Liu-Jia keeps the image's pixels, so that is the image itself; edgetaper tapers its borders.
    """
    image = torch.rand(3, 150, 230, generator=torch.Generator().manual_seed(0))
    kernel = torch.ones(5, 7) / 35
    for boundary in ("liu", "edgetaper"):
        method = _Identity(boundary=boundary)
        done = []
        out, _ = restore_image(image, kernel, method, 0.01, tile=100, overlap=24,
                               on_tile=lambda i, n: done.append((i, n)))
        whole, _ = restore_image(image, kernel, method, 0.01, tile=0)
        assert torch.allclose(out, whole, atol=1e-6)
        assert len(done) == 12 and done[-1] == (12, 12)
        if boundary == "liu":
            assert torch.allclose(out, image, atol=1e-6)


def test_auto_tiling_follows_the_memory_budget():
    kw = dict(channels=3, kernel_shape=(31, 31), bytes_per_pixel=800)
    assert not plan_tiles(1000, 1000, memory_budget_mb=10_000, **kw).tiled
    one_channel = plan_tiles(1000, 1000, memory_budget_mb=1500, **kw)
    assert not one_channel.tiled and one_channel.channel_batch == 1
    small = plan_tiles(4000, 3000, memory_budget_mb=1024, **kw)
    assert small.tiled and small.channel_batch == 1 and small.tile[0] >= 3 * small.overlap
    assert plan_tiles(4000, 3000, tile=0, **kw).n_tiles == 1
    with pytest.raises(InputError, match="overlap"):
        plan_tiles(1000, 1000, overlap=40, **kw)
    with pytest.raises(InputError, match="tile=100"):
        plan_tiles(1000, 1000, tile=100, **kw)


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
    for name in ("a.png", "b.jpg", "a_kernel.png", "a_podm.png", "a_podm_stage03.png", "x_psf.png", "n.txt"):
        (tmp_path / name).write_bytes(b"")
    assert [p.name for p in expand_inputs([str(tmp_path)])] == ["a.png", "b.jpg"]
    assert [p.name for p in expand_inputs([str(tmp_path / "*.png")])] == ["a.png"]
    assert [p.name for p in expand_inputs([str(tmp_path / "a_podm.png")])] == ["a_podm.png"]  # named: taken
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
    assert sorted(p.name for p in out.iterdir()) == ["deep_podm.png", "grey_podm.png", "scan_podm.tif",
                                                     "snap_podm.jpg"]
    deep = cv2.imread(str(out / "deep_podm.png"), cv2.IMREAD_UNCHANGED)
    assert deep.dtype == np.uint16 and deep.shape == (60, 70, 3)
    assert len(np.unique(deep)) > 1000  # really 16-bit levels, not 8-bit ones scaled
    assert tifffile.imread(out / "scan_podm.tif").dtype == np.uint16
    assert np.asarray(Image.open(out / "grey_podm.png")).dtype == np.uint8
    assert Image.open(out / "snap_podm.jpg").format == "JPEG"
    lines = [line for line in captured.out.splitlines() if "->" in line]
    assert len(lines) == 4 and "70x60x3 16-bit" in next(line for line in lines if "deep" in line)
    assert all("sigma 1.02/255" in line and " s  " in line for line in lines)


def test_auto_sigma_is_estimated_once_and_floored_by_sigma_min():
    g = torch.Generator().manual_seed(0)
    image = (0.5 + 0.02 * torch.randn(1, 96, 96, generator=g)).clamp(0, 1)
    info = {}
    _, sigma = restore_image(image, torch.ones(3, 3) / 9, _Identity(), "auto", info=info)
    assert abs(sigma - 0.02) < 0.004 and info["sigma_estimate"] == sigma
    _, floored = restore_image(image, torch.ones(3, 3) / 9, _Identity(), "auto", sigma_min=0.05, info=info)
    assert floored == 0.05 and info["sigma_estimate"] < 0.05
    _, given = restore_image(image, torch.ones(3, 3) / 9, _Identity(), 0.001, sigma_min=0.05)
    assert given == 0.001  # a number given is used as it is
