"""`podm deblur` on files: outputs written atomically, and one clear line + exit 2 for bad input."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from conftest import error_lines, run_podm

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


def test_deblur_writes_output_beside_input_with_companion_kernel(tmp_path, photo):
    proc = _deblur(tmp_path, str(photo), "sigma=0.01")
    assert proc.returncode == 0, proc.stderr
    out = tmp_path / "photo_podm.png"
    restored = np.asarray(Image.open(out))
    assert restored.shape == (64, 72, 3) and restored.dtype == np.uint8
    again = _deblur(tmp_path, str(photo), "sigma=0.01")
    assert again.returncode == 2 and "overwrite=true" in error_lines(again)[0]
    assert _deblur(tmp_path, str(photo), "sigma=0.01", "overwrite=true").returncode == 0


def _expect_one_line_error(proc, fragment, folder):
    assert proc.returncode == 2, proc.stderr
    lines = error_lines(proc)
    assert len(lines) == 1 and fragment in lines[0], proc.stderr
    assert not list(folder.glob("*_podm*")), "a failed run left an output behind"


def test_bad_inputs_get_one_line_and_no_output(tmp_path, photo):
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
    for args, fragment in cases:
        _expect_one_line_error(_deblur(tmp_path, *args), fragment, tmp_path)
