"""RPODM's training data never touch a test image or a Levin kernel (the lists are checked, by content)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from scipy.signal import correlate2d

from conftest import REPO, load_script
from podm_cli.kernels import load_levin_kernels
from podm_cli.training.pairs import BlurPairs, KernelPool, load_schelten, training_images


@pytest.fixture(scope="module")
def splits(request):
    from conftest import shared_data_dir

    root = shared_data_dir()
    if root is None:
        pytest.skip("reference data absent")
    return root, training_images(root, "train"), training_images(root, "val")


def _test_images(root):
    from podm_cli.imageio import read_image

    files = sorted((root / "levin" / "gt").glob("im_*.png")) + sorted((root / "train" / "Set12").glob("*.png"))
    files += sorted((root / "train" / "BSD68").glob("*.png"))
    return [(f.name, read_image(f, mode="gray")[0].float()) for f in files]


def test_splits_are_bsds_train_test_and_val_minus_bsd68(splits):
    root, train, val = splits
    assert len(train) == 399 and {n.split("/")[0] for n, _ in train} == {"train", "test"}
    assert "train/12003" not in {n for n, _ in train}  # contains Set12's starfish
    assert len(val) == 32 and {n.split("/")[0] for n, _ in val} == {"val"}
    assert not {n for n, _ in train} & {n for n, _ in val}


def test_no_training_or_validation_image_is_a_test_image(splits):
    root, train, val = splits
    tests = _test_images(root)
    assert len(tests) == 4 + 12 + 68
    for name, im in train + val:
        for tname, t in tests:
            if t.shape == im.shape:  # BSD68 images are 481x321 like BSDS: compare content
                assert float((t - im).abs().mean()) > 10 / 255, (name, tname)


def _window_sums(x: torch.Tensor, n: int) -> torch.Tensor:
    """Sums of ``x`` (H, W) over every n x n window, (H - n + 1, W - n + 1), from an integral image."""
    c = torch.nn.functional.pad(x.cumsum(0).cumsum(1), (1, 0, 1, 0))
    return c[n:, n:] - c[:-n, n:] - c[n:, :-n] + c[:-n, :-n]


@pytest.mark.slow
def test_no_test_image_is_a_crop_of_a_training_image(splits):
    """A 48x48 centre patch of each Levin/Set12 image is not found (normalised correlation > 0.98) at any
    position of any training or validation image (FFT cross-correlation; about a minute)."""
    root, train, val = splits
    n = 48
    patches = []
    for _, t in _test_images(root)[:16]:
        h, w = t.shape[-2:]
        p = t[0, h // 2 - n // 2 : h // 2 + n // 2, w // 2 - n // 2 : w // 2 + n // 2].double()
        patches.append((p - p.mean()) / (p - p.mean()).norm())
    patches = torch.stack(patches)  # (16, n, n), zero mean, unit norm
    spectra = {}
    for name, im in train + val:
        x = im[0].double()
        H, W = x.shape
        if (H, W) not in spectra:
            spectra[(H, W)] = torch.fft.rfft2(patches, s=(H, W)).conj()
        corr = torch.fft.irfft2(torch.fft.rfft2(x)[None] * spectra[(H, W)], s=(H, W))[:, : H - n + 1, : W - n + 1]
        s1, s2 = _window_sums(x, n), _window_sums(x * x, n)
        std = (s2 - s1**2 / n**2).clamp_min(1e-9).sqrt()
        ncc = corr / std
        assert float(ncc.max()) < 0.98, name
    # the check finds a patch that is there
    x = train[0][1][0].double()
    x[100 : 100 + n, 50 : 50 + n] = patches[0] * 3 + 0.5
    corr = torch.fft.irfft2(torch.fft.rfft2(x)[None] * torch.fft.rfft2(patches[:1], s=x.shape).conj(), s=x.shape)
    ncc = corr[0, : x.shape[0] - n + 1, : x.shape[1] - n + 1] / (
        _window_sums(x * x, n) - _window_sums(x, n) ** 2 / n**2).clamp_min(1e-9).sqrt()
    assert float(ncc[100, 50]) > 0.999


def test_training_kernels_are_never_levin_kernels(data_dir):
    levin = [k.double().numpy() for k in load_levin_kernels(data_dir / "levin" / "kernels" / "Levin09.mat")]
    real = [k.numpy() for k in load_schelten(data_dir, 31)]
    assert len(real) == 37
    for k in real:
        for lk in levin:
            for cand in (lk, lk.T):
                for rot in range(4):
                    c = np.rot90(cand, rot)
                    corr = correlate2d(k, c, mode="full").max() / (np.linalg.norm(k) * np.linalg.norm(c))
                    assert corr < 0.9


def test_pairs_are_reproducible_and_follow_the_observation_model():
    pool = KernelPool([], kernel_size=9, real_fraction=0.0)
    images = [torch.rand(1, 50, 60, generator=torch.Generator().manual_seed(0))]
    a = BlurPairs(images, pool, crop=32, length=4, sigma=0.0)
    b = BlurPairs(images, pool, crop=32, length=4, sigma=0.0)
    ia, ib = a[2], b[2]
    assert torch.equal(ia["blurred"], ib["blurred"]) and torch.equal(ia["kernel"], ib["kernel"])
    a.set_epoch(1)
    assert not torch.equal(a[2]["blurred"], ib["blurred"])
    from podm_cli.physics import Blur

    torch.testing.assert_close(Blur(ia["kernel"][0])(ia["sharp"][None])[0], ia["blurred"], rtol=0, atol=1e-5)
    noisy = BlurPairs(images, pool, crop=32, length=64, sigma=0.02)
    res = torch.stack([(Blur(p["kernel"][0])(p["sharp"][None])[0] - p["blurred"]) for p in (noisy[i] for i in range(64))])
    assert abs(float(res.std()) - 0.02) < 0.001


def test_hdf5_cache_holds_exactly_the_decoded_images(data_dir, tmp_path):
    from podm_cli.training.cache import read_cache, write_images

    train = training_images(data_dir, "train", limit=3)
    path = write_images(tmp_path / "c.h5", {"train": train, "val": []}, excluded={})
    back = read_cache(path, "train")
    assert [n for n, _ in back] == [n for n, _ in train]
    assert all(torch.equal(a, b) for (_, a), (_, b) in zip(back, train))


# --- every list podm trains or tunes on is the clean list (names only, but for the decoded `splits` reused) ---

#: The default tuning set (16 images) over the clean BSDS500-train list (199 images); the selection over the
#: old list (200, with 12003) differed in 6 names: 151087 164074 183055 24063 26031 54005.
#: The tuning set every documented choice was made on (12003 is not among them; it never was).
TUNING_16 = ["100075", "113009", "135037", "151087", "164074", "183055", "198023", "225017", "24063", "26031",
             "301007", "35058", "376001", "54005", "67079", "97017"]


def _stems(files) -> list[str]:
    return [f"{p.parent.name}/{p.stem}" for p in files]


def test_the_clean_list_leaves_out_exactly_the_image_that_contains_a_test_image(data_dir):
    from podm_cli.data.training_list import BSDS_TRAIN_SETS, CONTAINS_TEST_IMAGE, clean_files

    everything = [p for rel in BSDS_TRAIN_SETS for p in (data_dir / rel).iterdir() if p.suffix == ".jpg"]
    assert len(everything) == 400 and "12003" in {p.stem for p in everything}  # the data do hold it
    clean = _stems(clean_files(data_dir))
    assert len(clean) == 399 and len(set(clean)) == 399 and "train/12003" not in clean
    assert set(CONTAINS_TEST_IMAGE) == {"12003"}
    assert clean[:2] == ["train/100075", "train/100080"] and clean[199] == "test/100007"


def test_training_images_is_the_clean_list(splits):
    from podm_cli.data.training_list import clean_files

    root, train, _ = splits
    assert [n for n, _ in train] == _stems(clean_files(root))


@pytest.mark.parametrize("script, held, every", [("train_gmm", 40, 0), ("train_csf", 40, 5)])
def test_gmm_and_csf_scripts_train_and_validate_on_the_clean_list(data_dir, script, held, every):
    from podm_cli.data.training_list import clean_files

    train, other = load_script(script).split_images(data_dir)
    clean = clean_files(data_dir)
    assert len(train) == 399 - held and len(other) == held
    assert sorted(train + other) == sorted(clean) and not set(train) & set(other)
    assert other == clean[every::10]
    assert "12003" not in {p.stem for p in train + other}


def test_tuning_set_is_evenly_spaced_over_the_clean_bsds_train_list(data_dir):
    from podm_cli.data.training_list import BSDS_TRAIN, clean_files
    from podm_cli.data.tuning import tuning_files

    assert [p.stem for p in tuning_files(data_dir)] == TUNING_16
    every = tuning_files(data_dir, 1000)  # more than there are: the whole list
    assert set(every) == set(clean_files(data_dir, (BSDS_TRAIN,))) and len(every) == 199
    assert "12003" not in {p.stem for p in every}
    assert [p.stem for p in tuning_files(data_dir, 8)] == ["100075", "135069", "172032", "209070", "25098",
                                                           "326038", "48055", "97017"]


def test_tv_hl_sweep_draws_from_the_clean_list(data_dir):
    """The sweep's image list (scripts/sweep_tv_hl.py) is the clean BSDS500-train list: asking for more
    images than it has fails with its count (199, not the folder's 200), before any image is decoded."""
    sweep = load_script("sweep_tv_hl")
    with pytest.raises(SystemExit, match=r"need 200 BSDS500 train images .* found 199"):
        sweep.make_problems(data_dir, 200, 64, (31, 31), 0.01, 0)


def test_no_code_lists_bsds500_train_or_test_itself():
    """Only podm_cli.data.training_list names the BSDS500 train/test folders: a new glob over them (which
    would bring 12003 back) fails here."""
    import re

    pattern = re.compile(r"BSDS500/(train|test)\b|[\"']BSDS500[\"']")
    allowed = {REPO / "src" / "podm_cli" / "data" / "training_list.py"}
    files = sorted([*(REPO / "src").rglob("*.py"), *(REPO / "scripts").glob("*.py")])
    found = [f"{p.relative_to(REPO)}:{i}" for p in files if p not in allowed
             for i, line in enumerate(p.read_text().splitlines(), 1) if pattern.search(line)]
    assert found == []
