"""Benchmark datasets: sizes, protocol metadata, deterministic seeded noise, valid-mode alignment, the
captured Levin blurs, the Sun layout and the clearly labelled Sun substitute."""

from __future__ import annotations

import pickle

import numpy as np
import pytest
import torch
from PIL import Image

from podm_cli.data import PROTOCOLS, Sample, make_dataset
from podm_cli.data.datasets import _fit_to
from podm_cli.data.locator import find_sun_layout
from podm_cli.errors import DataNotFoundError, InputError
from podm_cli.imageio import read_image
from podm_cli.kernels import load_levin_kernels
from podm_cli.metrics import LEVIN_SCORING, Scoring
from podm_cli.physics import Blur, add_gaussian_noise, image_seed, quantize, valid_offset


# ------------------------------------------------------------------------------------ without data
def test_protocol_table():
    assert list(PROTOCOLS) == ["levin", "levin_valid", "levin_valid_whole", "levin_real", "sun", "sun_substitute"]
    assert PROTOCOLS["levin_valid_whole"].mode == "valid" and PROTOCOLS["levin_valid_whole"].scoring == Scoring(0, 0)
    assert PROTOCOLS["levin"].mode == "circular" and PROTOCOLS["levin"].scoring == Scoring(0, 0)
    for name in ("levin_valid", "sun", "sun_substitute"):
        assert PROTOCOLS[name].mode == "valid" and PROTOCOLS[name].scoring == Scoring(50, 10)
        assert PROTOCOLS[name].sigma == 0.01
    assert PROTOCOLS["levin_real"].scoring == LEVIN_SCORING == Scoring(15, 5, subpixel=4)
    assert PROTOCOLS["levin_real"].version == 2  # v1 scored integer shifts only
    assert all(PROTOCOLS[name].version == 1 for name in PROTOCOLS if name != "levin_real")
    assert PROTOCOLS["levin_real"].sigma == pytest.approx(1.5 / 255)
    # only the captured blurs give methods a kernel recovered from the capture (Sun's blurs were made with theirs)
    assert [n for n, p in PROTOCOLS.items() if p.kernel == "approximate"] == ["levin_real"]
    assert "NOT comparable" in PROTOCOLS["sun_substitute"].note


def test_bad_arguments(tmp_path):
    with pytest.raises(InputError, match="unknown dataset/protocol 'sun2'"):
        make_dataset("sun2", tmp_path)
    for kwargs in ({"sigma": -1.0}, {"sigma": float("nan")}, {"limit": 0}, {"dtype": torch.int64}):
        with pytest.raises(InputError):
            make_dataset("levin", tmp_path, **kwargs)


@pytest.mark.parametrize(
    ("name", "fetch"),
    [("levin", "levin"), ("levin_valid", "levin"), ("levin_real", "levin"), ("sun_substitute", "train")],
)
def test_missing_data_names_the_fetch_command(tmp_path, name, fetch):
    with pytest.raises(DataNotFoundError) as err:
        make_dataset(name, tmp_path)
    assert f"`podm data fetch {fetch}`" in str(err.value) and "\n" not in str(err.value)


def test_sun_absent_points_at_fetch_and_substitute(tmp_path):
    with pytest.raises(DataNotFoundError, match="podm data fetch sun.*sun_substitute"):
        make_dataset("sun", tmp_path)


def test_fit_to_centres_crops_and_pads():
    x = torch.arange(16.0).reshape(1, 4, 4)
    assert torch.equal(_fit_to(x, (4, 4)), x)
    assert torch.equal(_fit_to(x, (2, 2)), x[:, 1:3, 1:3])
    padded = _fit_to(x, (8, 6))
    assert padded.shape == (1, 8, 6) and torch.equal(padded[:, 2:6, 1:5], x)
    assert torch.equal(padded[:, 0, 1:5], x[:, 0]) and torch.equal(padded[:, :, 0], padded[:, :, 1])


def _png(path, array) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.asarray(array, dtype=np.uint8)).save(path)


def test_sun_layout_dataset(tmp_path):
    """A miniature of the released layout: full-size blurs, centre-cropped ground truth, kernel PNGs."""
    rng = np.random.default_rng(0)
    blurred = tmp_path / "blur.png"
    _png(blurred, rng.integers(0, 256, (120, 130)))
    sun = tmp_path / "sun"
    for i in range(1, 81):
        _png(sun / "all_deblur_results" / f"img{i}_groundtruth_img.png", np.full((20, 30), i))
        for j in range(1, 9):
            target = sun / "input80imgs8kernels" / f"{i}_{j}_blurred.png"
            target.parent.mkdir(parents=True, exist_ok=True)
            target.symlink_to(blurred)
    for j in range(1, 9):
        kernel = np.zeros((5, 5))
        kernel[2, :j % 5 + 1] = 200
        _png(sun / "all_deblur_results" / f"kernel{j}_groundtruth_kernel.png", kernel)
    assert find_sun_layout(tmp_path).complete
    ds = make_dataset("sun", tmp_path, limit=None)
    assert len(ds) == 640 and ds.protocol == "sun" and ds.scoring == Scoring(50, 10) and ds.mode == "valid"
    s = ds[8]  # image 2, kernel 1
    assert s.name == "im2_k1" and s.sigma == 0.01
    assert s.blurred.shape == s.sharp.shape == (1, 120, 130)
    assert torch.allclose(s.sharp[:, 50:70, 50:80], torch.full((1, 20, 30), 2 / 255))
    assert torch.allclose(s.sharp[:, 0, 0], torch.tensor([2 / 255]))  # edge padding, never scored
    assert s.kernel.shape == (5, 5) and float(s.kernel.sum()) == pytest.approx(1.0)
    assert s.blurred.dtype == torch.float32
    clone = pickle.loads(pickle.dumps(ds))  # DataLoader workers (spawn) pickle the dataset
    assert torch.equal(clone[8].sharp, s.sharp) and torch.equal(clone[8].kernel, s.kernel)


# --------------------------------------------------------------------------------------- with data
@pytest.mark.data
@pytest.mark.parametrize(
    ("name", "n", "shape0"),
    [("levin", 32, (1, 255, 255)), ("levin_valid", 32, (1, 237, 237)), ("levin_valid_whole", 32, (1, 237, 237)),
     ("levin_real", 32, (1, 255, 255)), ("sun_substitute", 640, (1, 463, 303))],
)
def test_sizes_and_metadata(data_dir, name, n, shape0):
    ds = make_dataset(name, data_dir)
    assert len(ds) == n and ds.protocol == name
    assert (ds.mode, ds.scoring) == (PROTOCOLS[name].mode, PROTOCOLS[name].scoring)
    assert ds.note == PROTOCOLS[name].note
    s = ds[0]
    assert isinstance(s, Sample) and s.blurred.shape == shape0 and s.sharp.shape == shape0
    assert s.blurred.dtype == s.sharp.dtype == s.kernel.dtype == torch.float32
    assert float(s.kernel.sum()) == pytest.approx(1.0, abs=1e-5) and s.kernel.shape == (19, 19)
    assert ds.names[-1] == ds[-1].name
    assert torch.equal(pickle.loads(pickle.dumps(ds))[1].blurred, ds[1].blurred)
    with pytest.raises(IndexError):
        ds[n]


@pytest.mark.data
def test_real_sun_when_present(data_dir):
    if not find_sun_layout(data_dir).complete:
        with pytest.raises(DataNotFoundError):
            make_dataset("sun", data_dir)
        pytest.skip("the Sun et al. 2013 data are not in the reference mirror")
    ds = make_dataset("sun", data_dir)  # pragma: no cover - needs the Sun release
    assert len(ds) == 640 and ds[0].blurred.shape == ds[0].sharp.shape  # pragma: no cover


@pytest.mark.data
def test_levin_noise_is_seeded_per_image_with_sigma_one_percent(data_dir):
    ds = make_dataset("levin", data_dir, dtype=torch.float64)
    a, b = ds[9], ds[9]
    assert a.name == "im2_k2" and torch.equal(a.blurred, b.blurred)
    assert torch.equal(make_dataset("levin", data_dir, dtype=torch.float64)[9].blurred, a.blurred)
    residuals = {}
    for i in (0, 9, 31):
        s = ds[i]
        residuals[s.name] = s.blurred - Blur(s.kernel, "circular")(s.sharp[None])[0]
        assert float(residuals[s.name].std()) == pytest.approx(0.01, abs=3e-4)
        assert float(residuals[s.name].mean()) == pytest.approx(0.0, abs=2e-4)
    r1, r2 = residuals["im1_k1"].flatten(), residuals["im2_k2"].flatten()
    assert abs(float(torch.corrcoef(torch.stack([r1, r2]))[0, 1])) < 0.02  # independent noise per image
    assert not torch.equal(make_dataset("levin", data_dir, seed=1)[9].blurred, ds[9].blurred.float())
    # float32 items are the float64 ones rounded
    assert torch.equal(make_dataset("levin", data_dir)[9].blurred, a.blurred.float())


@pytest.mark.data
def test_levin_valid_whole_has_the_levin_valid_data(data_dir):
    a, b = make_dataset("levin_valid", data_dir), make_dataset("levin_valid_whole", data_dir)
    for i in (0, 13, 31):
        assert torch.equal(a[i].blurred, b[i].blurred) and torch.equal(a[i].sharp, b[i].sharp)
    assert a.scoring != b.scoring


@pytest.mark.data
def test_levin_valid_is_valid_blur_of_the_uncropped_gt(data_dir):
    ds = make_dataset("levin_valid", data_dir, dtype=torch.float64)
    kernels = load_levin_kernels(data_dir / "levin/kernels/Levin09.mat")
    gt = read_image(data_dir / "levin/gt/im_3.png")[0].to(torch.float64)
    for j in (0, 3):  # kernel 1 (19x19) and kernel 4 (27x27)
        s = ds[2 * 8 + j]
        assert s.name == f"im3_k{j + 1}"
        k = kernels[j]
        kh, kw = k.shape
        clean = Blur(k, "valid")(gt[None])[0]
        assert s.blurred.shape == clean.shape == (1, 255 - kh + 1, 255 - kw + 1)
        oy, ox = valid_offset(kh, kw)
        assert torch.equal(s.sharp, gt[:, oy : oy + clean.shape[-2], ox : ox + clean.shape[-1]])
        expected = quantize(add_gaussian_noise(clean, 0.01, seed=image_seed(s.name, 0)), 8)
        assert torch.equal(s.blurred, expected)
        assert torch.equal(torch.round(s.blurred * 255), s.blurred * 255)  # 8-bit levels
        assert float((s.blurred - clean).std()) == pytest.approx(0.01, abs=5e-4)


@pytest.mark.data
def test_levin_real_pairs_captured_blur_with_its_gt_and_kernel(data_dir):
    ds = make_dataset("levin_real", data_dir, dtype=torch.float64)
    assert ds.sigma == pytest.approx(1.5 / 255) and ds.scoring == LEVIN_SCORING and ds.version == 2
    s = ds[0]
    gt = read_image(data_dir / "levin/gt/im_1.png")[0].to(torch.float64)
    captured = read_image(data_dir / "levin/blurred_real/im01_ker01.png")[0].to(torch.float64)
    assert s.name == "im1_k1" and torch.equal(s.sharp, gt) and torch.equal(s.blurred, captured)

    def best_rmse(kernel) -> float:
        clean = Blur(kernel, "valid")(gt[None])[0]
        oy, ox = valid_offset(*kernel.shape)
        h, w = clean.shape[-2:]
        return min(
            float((captured[:, oy + dy : oy + dy + h - 8, ox + dx : ox + dx + w - 8]
                   - clean[:, 4 : h - 4, 4 : w - 4]).pow(2).mean().sqrt())
            for dy in range(-4, 5) for dx in range(-4, 5)
        )

    right = best_rmse(s.kernel)
    assert right < 0.03
    assert right < best_rmse(ds[3].kernel)  # kernel 4 explains the im1_k1 capture worse


@pytest.mark.data
def test_sun_substitute_is_labelled_and_quantised(data_dir):
    ds = make_dataset("sun_substitute", data_dir, limit=9)
    assert len(ds) == 9 and ds.names[:2] == ["bsd68_test001_k1", "bsd68_test001_k2"]
    assert "NOT the Sun et al. 2013 data" in ds.note and ds.protocol == "sun_substitute"
    names = make_dataset("sun_substitute", data_dir).names
    assert names[-1] == "set12_12_k8" and len(set(names)) == 640
    assert sum(n.startswith("set12_") for n in names) == 12 * 8
    s = ds[8]
    assert s.name == "bsd68_test002_k1"
    v = s.blurred.double() * 255
    assert torch.allclose(v, torch.round(v), atol=1e-3)


@pytest.mark.data
def test_limit_dtype_and_renamed_protocols(data_dir):
    ds = make_dataset("levin", data_dir, limit=5)
    assert len(ds) == 5 and ds.names == ["im1_k1", "im1_k2", "im1_k3", "im1_k4", "im1_k5"]
    assert make_dataset("levin", data_dir, sigma=0.02).protocol == "levin[sigma=0.02]"
    assert make_dataset("levin", data_dir, sigma=0.01).protocol == "levin"
    assert make_dataset("levin_valid", data_dir, seed=3).protocol == "levin_valid[seed=3]"
    assert make_dataset("levin_real", data_dir, seed=3).protocol == "levin_real"  # real data: no noise seed
    s = make_dataset("levin", data_dir, sigma=0.0, dtype=torch.float64, limit=1)[0]
    assert s.sigma == 0.0 and s.blurred.dtype == torch.float64
    assert torch.allclose(s.blurred, Blur(s.kernel, "circular")(s.sharp[None])[0], atol=1e-12)
