"""Tests for podm_cli.kernels: loaders for every format, validation, random kernels, Levin orientation."""

from __future__ import annotations

from pathlib import Path

import h5py
import numpy as np
import pytest
import scipy.io
import torch
from PIL import Image

from podm_cli.errors import InputError
from podm_cli.kernels import (
    LEVIN09_SIZES,
    load_kernel,
    load_kernels,
    load_levin_kernels,
    random_motion_kernel,
    validate_kernel,
)

# An asymmetric kernel (true-convolution orientation): any flip or transpose changes it.
K = np.array([[4.0, 0, 0, 0, 1], [0, 2, 0, 0, 0], [0, 0, 0, 3, 0]])
K2 = np.array([[0.0, 1, 2], [5, 0, 0]])


def _norm(a) -> torch.Tensor:
    a = torch.as_tensor(np.ascontiguousarray(a, dtype=np.float64))
    return a / a.sum()


def _write_mat73(path: Path, variables: dict) -> Path:
    """Write ``variables`` the way MATLAB's ``save -v7.3`` lays them out.

    A value is a matrix (MATLAB orientation) or a list of matrices (a 1xN cell array).  MATLAB stores
    column-major data, so h5py sees every matrix transposed; cells are datasets of object references
    into ``#refs#``; a 512-byte user block carries the MAT-file header.
    """
    with h5py.File(path, "w", userblock_size=512) as f:
        refs = f.create_group("#refs#")
        for name, value in variables.items():
            if isinstance(value, list):
                cell = []
                for i, a in enumerate(value):
                    d = refs.create_dataset(f"{name}_{i}", data=np.asarray(a, np.float64).T)
                    d.attrs["MATLAB_class"] = np.bytes_("double")
                    cell.append(d.ref)
                ds = f.create_dataset(name, data=np.array(cell, dtype=h5py.ref_dtype).reshape(len(cell), 1))
                ds.attrs["MATLAB_class"] = np.bytes_("cell")
            else:
                ds = f.create_dataset(name, data=np.asarray(value, np.float64).T)
                ds.attrs["MATLAB_class"] = np.bytes_("double")
    with open(path, "r+b") as fh:
        fh.write(b"MATLAB 7.3 MAT-file, Platform: GLNXA64, Created by: podm tests".ljust(116))
    return path


def _cell(arrays) -> np.ndarray:
    cell = np.empty((1, len(arrays)), dtype=object)
    for i, a in enumerate(arrays):
        cell[0, i] = np.asarray(a, np.float64)
    return cell


# ------------------------------------------------------------------------------------------ loaders
def test_mat_v5_single_matrix_cell_and_stack(tmp_path):
    scipy.io.savemat(tmp_path / "one.mat", {"psf": K})
    torch.testing.assert_close(load_kernel(tmp_path / "one.mat"), _norm(K))
    scipy.io.savemat(tmp_path / "cell.mat", {"kernels": _cell([K, K2, K.T])})
    ks = load_kernels(tmp_path / "cell.mat")
    assert [tuple(k.shape) for k in ks] == [(3, 5), (2, 3), (5, 3)]
    torch.testing.assert_close(ks[1], _norm(K2))
    torch.testing.assert_close(load_kernel(tmp_path / "cell.mat", 2), _norm(K.T))
    scipy.io.savemat(tmp_path / "stack.mat", {"k": np.dstack([K, 2 * K[::-1]])})  # kh x kw x N
    ks = load_kernels(tmp_path / "stack.mat")
    assert len(ks) == 2 and torch.equal(ks[1], _norm(K[::-1]))


def test_mat_v5_variable_choice(tmp_path):
    scipy.io.savemat(tmp_path / "named.mat", {"kernels": _cell([K]), "sigma": np.array([[0.01]]),
                                              "note": "text"})
    torch.testing.assert_close(load_kernel(tmp_path / "named.mat"), _norm(K))
    scipy.io.savemat(tmp_path / "ambiguous.mat", {"alpha": K, "beta": K2})
    with pytest.raises(InputError, match="alpha, beta"):
        load_kernel(tmp_path / "ambiguous.mat")
    scipy.io.savemat(tmp_path / "none.mat", {"note": "text"})
    with pytest.raises(InputError, match="no numeric"):
        load_kernel(tmp_path / "none.mat")


def test_mat_v73_cell_and_matrix_in_matlab_orientation(tmp_path):
    path = _write_mat73(tmp_path / "v73.mat", {"kernels": [K, K2]})
    assert h5py.is_hdf5(path) and path.read_bytes()[:10] == b"MATLAB 7.3"
    ks = load_kernels(path)
    torch.testing.assert_close(ks[0], _norm(K))  # transposed back from h5py's view
    torch.testing.assert_close(ks[1], _norm(K2))
    path = _write_mat73(tmp_path / "single.mat", {"alpha": K, "weights": K2})
    with pytest.raises(InputError, match="alpha, weights"):
        load_kernel(path)
    path = _write_mat73(tmp_path / "one.mat", {"blur": K})
    torch.testing.assert_close(load_kernel(path), _norm(K))
    with h5py.File(tmp_path / "plain.h5", "w") as f:  # not MATLAB: numpy orientation, no transpose
        f["kernel"] = K
    torch.testing.assert_close(load_kernel(tmp_path / "plain.h5"), _norm(K))


def test_levin09_layout_is_rotated_by_every_route(tmp_path):
    rng = np.random.default_rng(0)
    mats = [rng.random((s, s)) for s in LEVIN09_SIZES]  # as MATLAB holds them
    path = _write_mat73(tmp_path / "Levin09.mat", {"kernels": mats})
    expected = [_norm(np.rot90(m, 2).copy()) for m in mats]
    levin = load_levin_kernels(path)
    assert len(levin) == 8
    for got, want in zip(levin, expected):
        torch.testing.assert_close(got, want)
    for got, want in zip(load_kernels(path), expected):
        torch.testing.assert_close(got, want)
    torch.testing.assert_close(load_kernel(path, 3), expected[3])
    # A v7.3 file that is not Levin's keeps the plain MATLAB orientation.
    other = _write_mat73(tmp_path / "seven.mat", {"kernels": mats[:7]})
    torch.testing.assert_close(load_kernels(other)[0], _norm(mats[0]))
    with pytest.raises(InputError, match="8 Levin"):
        load_levin_kernels(other)


def test_image_kernels(tmp_path):
    scaled = np.round(K / K.max() * 255).astype(np.uint8)  # saved with max = 255
    Image.fromarray(scaled).save(tmp_path / "k.png")
    torch.testing.assert_close(load_kernel(tmp_path / "k.png"), _norm(scaled), atol=1e-7, rtol=0)
    rgb = np.dstack([scaled, scaled, np.zeros_like(scaled)])
    Image.fromarray(rgb).save(tmp_path / "k_rgb.png")
    torch.testing.assert_close(load_kernel(tmp_path / "k_rgb.png"), _norm(scaled), atol=1e-7, rtol=0)
    Image.fromarray(scaled).save(tmp_path / "k.bmp")
    torch.testing.assert_close(load_kernel(tmp_path / "k.bmp"), _norm(scaled), atol=1e-7, rtol=0)


def test_npy_npz_and_text(tmp_path):
    np.save(tmp_path / "k.npy", K)
    torch.testing.assert_close(load_kernel(tmp_path / "k.npy"), _norm(K))
    np.save(tmp_path / "stack.npy", np.stack([K, K[::-1]])[:, None])  # (N, 1, kh, kw)
    assert len(load_kernels(tmp_path / "stack.npy")) == 2
    np.savez(tmp_path / "k.npz", kernel=K, other=np.ones(3))
    torch.testing.assert_close(load_kernel(tmp_path / "k.npz"), _norm(K))
    for name, sep in (("k.dlm", "\t"), ("k.csv", ","), ("k.txt", "  ")):
        text = "\n".join(sep.join(f"{v:g}" for v in row) for row in K) + "\n"
        (tmp_path / name).write_text(text)
        torch.testing.assert_close(load_kernel(tmp_path / name), _norm(K))
    (tmp_path / "ragged.txt").write_text("1 2 3\n4 5\n")
    with pytest.raises(InputError, match="different numbers"):
        load_kernel(tmp_path / "ragged.txt")
    (tmp_path / "words.txt").write_text("a b\nc d\n")
    with pytest.raises(InputError, match="numbers"):
        load_kernel(tmp_path / "words.txt")


def test_index_rules(tmp_path):
    scipy.io.savemat(tmp_path / "cell.mat", {"kernels": _cell([K, K2])})
    with pytest.raises(InputError, match="holds 2 kernels"):
        load_kernel(tmp_path / "cell.mat")
    for bad in (2, -1, 1.0, True):
        with pytest.raises(InputError, match="out of range"):
            load_kernel(tmp_path / "cell.mat", bad)
    np.save(tmp_path / "one.npy", K)
    assert torch.equal(load_kernel(tmp_path / "one.npy", 0), load_kernel(tmp_path / "one.npy"))


def test_unreadable_kernel_files(tmp_path):
    (tmp_path / "garbage.mat").write_bytes(b"\x00\x01garbage" * 40)
    (tmp_path / "empty.txt").write_text("")
    (tmp_path / "binary.dat").write_bytes(bytes(range(256)))
    (tmp_path / "cut.png").write_bytes(b"\x89PNG\r\n\x1a\n\x00\x00")
    np.save(tmp_path / "cube.npy", np.ones((2, 2, 2, 2)))
    scipy.io.savemat(tmp_path / "nan.mat", {"kernel": np.array([[1.0, np.nan]])})
    for name in ("missing.mat", "garbage.mat", "empty.txt", "binary.dat", "cut.png", "cube.npy", "nan.mat", "."):
        with pytest.raises(InputError) as err:
            load_kernels(tmp_path / name)
        assert "\n" not in str(err.value)
    with pytest.raises(InputError, match="nan.mat"):
        load_kernel(tmp_path / "nan.mat")


# --------------------------------------------------------------------------------------- validation
def test_validate_normalises_and_returns_float64():
    k = validate_kernel([[1, 2], [3, 4]])
    assert k.dtype == torch.float64 and torch.isclose(k.sum(), torch.tensor(1.0, dtype=torch.float64))
    assert tuple(validate_kernel(torch.ones(1, 1, 3, 3, dtype=torch.float32)).shape) == (3, 3)
    tiny = validate_kernel(np.array([[1.0, -1e-9], [1.0, 0.0]]))
    assert tiny.min() == 0 and tiny[0, 0] == 0.5


@pytest.mark.parametrize("bad,message", [
    (np.zeros((0, 3)), "empty"),
    (np.zeros((3, 3)), "all zeros"),
    (np.array([[1.0, np.nan]]), "NaN"),
    (np.array([[1.0, np.inf]]), "NaN or infinite"),
    (np.array([[1.0, -0.01]]), "negative"),
    (-np.ones((2, 2)), "no positive"),
    (np.ones(3), "2-D"),
    (np.ones((2, 2, 2)), "2-D"),
    (np.array([[1 + 1j]]), "complex"),
    (np.array([["a"]]), "numeric"),
])
def test_validate_rejects(bad, message):
    with pytest.raises(InputError, match=message) as err:
        validate_kernel(bad, name="psf.png")
    assert str(err.value).startswith("psf.png")


def test_validate_against_image_size():
    validate_kernel(np.ones((5, 5)), image_shape=(6, 6))
    validate_kernel(np.ones((5, 5)), image_shape=(1, 1, 6, 40))
    for shape in ((5, 40), (40, 5), (4, 4)):
        with pytest.raises(InputError, match="smaller than the image"):
            validate_kernel(np.ones((5, 5)), image_shape=shape)


# ----------------------------------------------------------------------------------- random kernels
def test_random_motion_kernels_are_valid_centred_and_seeded():
    sizes = (9, 15, 24, 31)
    for size in sizes:
        k = random_motion_kernel(size, generator=size)
        assert k.shape == (size, size) and k.dtype == torch.float64
        assert k.min() >= 0 and abs(float(k.sum()) - 1) < 1e-12
        ii = torch.arange(size, dtype=torch.float64)
        com = (float((k.sum(1) * ii).sum()), float((k.sum(0) * ii).sum()))
        assert max(abs(c - size // 2) for c in com) < 0.05
    assert torch.equal(random_motion_kernel(25, generator=7), random_motion_kernel(25, generator=7))
    g1, g2 = torch.Generator().manual_seed(3), torch.Generator().manual_seed(3)
    assert torch.equal(random_motion_kernel(21, 12.0, g1), random_motion_kernel(21, 12.0, g2))
    kernels = [random_motion_kernel(25, generator=s) for s in range(6)]
    assert all(not torch.equal(a, b) for i, a in enumerate(kernels) for b in kernels[i + 1:])
    torch.manual_seed(0)
    assert random_motion_kernel(15).shape == (15, 15)  # torch's global generator


def test_random_motion_kernel_length_controls_extent():
    def spread(k):
        ii = torch.arange(k.shape[0], dtype=torch.float64)
        yy, xx = torch.meshgrid(ii, ii, indexing="ij")
        c = k.shape[0] // 2
        return float((k * ((yy - c) ** 2 + (xx - c) ** 2)).sum()) ** 0.5

    short = [spread(random_motion_kernel(31, 2.0, s, blur_sigma=0)) for s in range(4)]
    long = [spread(random_motion_kernel(31, 25.0, s, blur_sigma=0)) for s in range(4)]
    assert max(short) < 1.5 < min(long)
    point = random_motion_kernel(11, 0.0, 0, jitter=0.0, blur_sigma=0.0)
    assert float(point[5, 5]) == pytest.approx(1.0)
    with pytest.raises(InputError):
        random_motion_kernel(2)
    with pytest.raises(InputError):
        random_motion_kernel(15, generator="seed")


# ------------------------------------------------------------------------------ real reference data
from conftest import SHARED_DATA as DATA  # noqa: E402

LEVIN = DATA / "levin"


def _valid_blur(x: torch.Tensor, k: torch.Tensor) -> torch.Tensor:
    """``valid`` true convolution of (N, 1, H, W) images with one kernel."""
    try:
        from podm_cli.physics.blur import Blur
    except ImportError:  # the physics package is written in parallel; same definition
        from scipy.signal import fftconvolve

        return torch.from_numpy(fftconvolve(x.numpy(), k.numpy()[None, None], mode="valid"))
    return Blur(k, mode="valid").A(x)


def _best_shift_rmse(b: np.ndarray, y: np.ndarray, s: int) -> np.ndarray:
    """Smallest RMSE between ``b`` (..., h, w) and the windows of ``y`` (..., h + 2s, w + 2s) shifted by at
    most ``s`` px; the cross term for every shift comes from one FFT correlation."""
    from scipy import fft

    h, w = b.shape[-2:]
    big = tuple(fft.next_fast_len(n, real=True) for n in y.shape[-2:])  # >= y: no wrap-around
    spec = fft.rfft2(y, s=big) * np.conj(fft.rfft2(b, s=big))
    corr = fft.irfft2(spec, s=big)[..., :2 * s + 1, :2 * s + 1]
    sq = np.pad(np.cumsum(np.cumsum(y ** 2, axis=-2), axis=-1), [(0, 0)] * (y.ndim - 2) + [(1, 0), (1, 0)])
    d = np.arange(2 * s + 1)
    win = (sq[..., d[:, None] + h, d[None, :] + w] - sq[..., d[:, None], d[None, :] + w]
           - sq[..., d[:, None] + h, d[None, :]] + sq[..., d[:, None], d[None, :]])
    sse = (b ** 2).sum(axis=(-2, -1))[..., None, None] + win - 2 * corr
    return np.sqrt(np.clip(sse, 0, None) / (h * w)).min(axis=(-2, -1))


@pytest.mark.data
def test_levin_kernels_reproduce_the_captured_blurs():
    """Valid blur of the 4 ground truths with Levin09's kernels matches Levin's 32 captured images.

    Only the orientation returned by ``load_levin_kernels`` does; the other three (the raw h5py array, its
    transpose and its 180-degree rotation) must be clearly worse, so the test can fail.
    """
    from podm_cli.imageio import read_image

    mat = LEVIN / "kernels" / "Levin09.mat"
    if not mat.is_file() or not (LEVIN / "blurred_real" / "im04_ker08.png").is_file():
        pytest.skip(f"Levin data not found under {DATA} (set PODM_DATA)")
    kernels = load_levin_kernels(mat)
    assert [tuple(k.shape) for k in kernels] == [(s, s) for s in LEVIN09_SIZES]
    gt = torch.stack([read_image(LEVIN / "gt" / f"im_{i}.png")[0] for i in range(1, 5)]).double()
    captured = np.stack([[read_image(LEVIN / "blurred_real" / f"im0{i}_ker0{j}.png")[0][0].double().numpy()
                          for j in range(1, 9)] for i in range(1, 5)])  # (4 images, 8 kernels, H, W)
    size, s = gt.shape[-1], 4
    offsets = [(k.shape[0] - 1) // 2 for k in kernels]
    r0 = max(offsets)  # region of the ground truth that every valid blur covers
    r1 = min(o + size - k.shape[0] + 1 for o, k in zip(offsets, kernels))
    orientations = {  # relative to the kernel k returned; a = np.array(f[ref]) in the file
        "a.T[::-1, ::-1]": lambda k: k,
        "a.T": lambda k: k.flip(0, 1),
        "a": lambda k: k.flip(0, 1).T,
        "a[::-1, ::-1]": lambda k: k.T,
    }
    results = {}
    for name, orient in orientations.items():
        blurred = []
        for k, o in zip(kernels, offsets):
            b = _valid_blur(gt, orient(k).contiguous())[:, 0].numpy()  # b[i] sits over gt[i + o]
            blurred.append(b[:, r0 + s - o:r1 - s - o, r0 + s - o:r1 - s - o])
        blurred = np.stack(blurred, axis=1)  # (4, 8, h, w)
        results[name] = _best_shift_rmse(blurred, captured[:, :, r0:r1, r0:r1], s)
    correct = results.pop("a.T[::-1, ::-1]")
    assert correct.max() < 0.035, correct.round(4)
    assert correct.mean() < 0.015, correct.mean()
    for name, rmse in results.items():
        assert rmse.mean() > 0.02, (name, rmse.mean())


@pytest.mark.data
def test_reference_kernel_files_load():
    files = [DATA / "train" / "kernels_schelten2015.mat", LEVIN / "estimated_kernels" / "xu_jia_2010" /
             "im01_ker01_kernel.dlm", DATA / "real" / "ircnn_deblur_set3" / "boat_kernel.png"]
    if not all(f.is_file() for f in files):
        pytest.skip(f"reference kernels not found under {DATA} (set PODM_DATA)")
    schelten = load_kernels(files[0])
    assert len(schelten) == 192 and tuple(schelten[0].shape) == (49, 23)
    for f in files[1:]:
        k = load_kernel(f)
        assert k.ndim == 2 and abs(float(k.sum()) - 1) < 1e-12
