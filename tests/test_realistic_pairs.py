"""Realistic training pairs (valid blur, a noise range, 8-bit rounding): they are what they claim."""

from __future__ import annotations

import math

import pytest
import torch

from podm_cli.errors import InputError
from podm_cli.physics import Blur, valid_offset
from podm_cli.training.pairs import BlurPairs, KernelPool, ValidationPairs, spaced_sigma

IMAGES = [torch.rand(1, 90, 100, generator=torch.Generator().manual_seed(s)) for s in range(3)]


def _delta_pool(size: int = 9) -> KernelPool:
    delta = torch.zeros(3, 3, dtype=torch.float64)
    delta[1, 1] = 1.0
    return KernelPool([delta], kernel_size=size, real_fraction=1.0)


def test_valid_pairs_observe_an_enlarged_crop_without_any_boundary_assumption():
    """The blurred item is exactly the `valid` blur of a crop larger by the kernel, whose centre is `sharp`."""
    pool = KernelPool([], kernel_size=11, real_fraction=0.0)
    pairs = BlurPairs(IMAGES, pool, crop=40, length=3, sigma=0.0, mode="valid")
    item = pairs[1]
    y, x, k = item["blurred"], item["sharp"], item["kernel"][0]
    assert y.shape == x.shape == (1, 40, 40) and k.shape == (11, 11)
    # rebuild the enlarged crop: the pair's sharp sits at the valid offset inside it
    found = False
    for im in IMAGES:
        for rot in range(4):
            for flip in (False, True):
                v = torch.rot90(im, rot, (1, 2))
                v = v.flip(-1) if flip else v
                hits = (v.unfold(1, 40, 1).unfold(2, 40, 1) - x[0]).abs().amax((-1, -2))[0] < 1e-7
                for t, left in hits.nonzero().tolist():
                    oy, ox = valid_offset(11, 11)
                    big = v[:, t - oy : t - oy + 50, left - ox : left - ox + 50]
                    if big.shape[-2:] == (50, 50):
                        found = True
                        torch.testing.assert_close(Blur(k, "valid")(big[None])[0], y, rtol=0, atol=1e-5)
    assert found


@pytest.mark.parametrize("quantize", [False, True])
def test_noise_level_of_each_pair_is_recovered(quantize):
    """With an identity kernel the residual is the noise (plus 8-bit rounding, variance 1/12 of a step^2)."""
    pairs = BlurPairs(IMAGES, _delta_pool(), crop=48, length=40, sigma=[0.005, 0.03], mode="valid",
                      quantize=quantize, sigma_spacing="log")
    rounding = 1 / (12 * 255**2) if quantize else 0.0
    for i in range(0, 40, 8):
        item = pairs[i]
        s = float(item["sigma"])
        assert 0.005 <= s <= 0.03
        inside = (item["sharp"] > 0.1) & (item["sharp"] < 0.9)  # no clipping by the rounding to [0, 1]
        res = (item["blurred"] - item["sharp"])[inside]
        want = math.sqrt(s**2 + rounding)
        assert abs(float(res.std()) - want) < 0.08 * want
        if quantize:
            assert torch.equal(torch.round(item["blurred"] * 255), item["blurred"] * 255)


def test_log_spacing_puts_as_many_levels_below_the_geometric_mean_as_above():
    pairs = BlurPairs(IMAGES, _delta_pool(), crop=16, length=400, sigma=[0.004, 0.032], sigma_spacing="log")
    levels = torch.tensor([float(pairs[i]["sigma"]) for i in range(400)])
    below = float((levels < math.sqrt(0.004 * 0.032)).float().mean())
    assert 0.42 < below < 0.58  # linear spacing would put 29 % below the geometric mean
    assert spaced_sigma([0.004, 0.032], 0.0, "log") == pytest.approx(0.004)
    assert spaced_sigma([0.004, 0.032], 1.0, "log") == pytest.approx(0.032)


def test_validation_ladder_covers_the_whole_range_and_is_fixed():
    pool = KernelPool([], kernel_size=7, real_fraction=0.0)
    val = ValidationPairs(IMAGES, pool, crop=32, sigma=[0.004, 0.032], mode="valid", sigma_spacing="log")
    assert [round(val.level(i), 6) for i in range(3)] == [0.004, round(math.sqrt(0.004 * 0.032), 6), 0.032]
    assert float(val[2]["sigma"]) == pytest.approx(0.032)
    again = ValidationPairs(IMAGES, pool, crop=32, sigma=[0.004, 0.032], mode="valid", sigma_spacing="log")
    assert torch.equal(val[1]["blurred"], again[1]["blurred"]) and torch.equal(val[1]["kernel"], again[1]["kernel"])


def test_bad_noise_settings_are_input_errors():
    with pytest.raises(InputError, match="spacing"):
        BlurPairs(IMAGES, _delta_pool(), crop=16, sigma=[0.01, 0.02], sigma_spacing="cubic")
    with pytest.raises(InputError, match="low <= high"):
        BlurPairs(IMAGES, _delta_pool(), crop=16, sigma=[0.02, 0.01])


def test_circular_fraction_mixes_whole_circular_batches_into_valid_training():
    """With ``circular_fraction`` a share of whole batches are circular pairs of the plain crop (the blurred item
    is the circular blur of ``sharp``); every other batch stays valid; without it nothing changes."""
    pool = KernelPool([], kernel_size=9, real_fraction=0.0)
    batch = 4
    mixed = BlurPairs(IMAGES, pool, crop=32, length=400, sigma=0.0, mode="valid", circular_fraction=0.3,
                      batch_size=batch)
    flags = torch.tensor([bool(mixed[i]["circular"]) for i in range(400)]).view(-1, batch)
    assert bool((flags.all(1) | ~flags.any(1)).all())  # whole batches, never a mixed one
    assert 0.2 < float(flags[:, 0].float().mean()) < 0.4
    first = int(flags[:, 0].nonzero()[0]) * batch
    item = mixed[first]
    torch.testing.assert_close(Blur(item["kernel"][0], "circular")(item["sharp"][None])[0], item["blurred"],
                               rtol=0, atol=1e-6)
    plain = BlurPairs(IMAGES, pool, crop=32, length=40, sigma=0.0, mode="valid")
    other = BlurPairs(IMAGES, pool, crop=32, length=40, sigma=0.0, mode="valid", circular_fraction=0.0,
                      batch_size=batch)
    assert not any(bool(plain[i]["circular"]) for i in range(40))
    assert torch.equal(plain[7]["blurred"], other[7]["blurred"])
    with pytest.raises(InputError, match="circular_fraction"):
        BlurPairs(IMAGES, pool, crop=32, mode="valid", circular_fraction=1.5)


def test_kernel_error_blurs_with_the_true_kernel_and_gives_the_model_a_perturbed_one():
    """With ``kernel_error`` (fraction 1) the blurred item is the blur of ``sharp`` by the drawn kernel spread by the
    Gaussian, not by the kernel the item carries, which is non-negative, sums to 1 and differs from the drawn one."""
    from podm_cli.kernels.error import spread_kernel

    pool = KernelPool([], kernel_size=9, real_fraction=0.0)
    error = {"fraction": 1.0, "blur": 0.5, "noise": 0.05}
    exact = BlurPairs(IMAGES, pool, crop=32, length=4, sigma=0.0, mode="circular")
    approx = BlurPairs(IMAGES, pool, crop=32, length=4, sigma=0.0, mode="circular", kernel_error=error)
    a, b = exact[2], approx[2]  # the same crop and drawn kernel (the error draws after the kernel)
    assert torch.equal(a["sharp"], b["sharp"])
    drawn, given = a["kernel"][0].double(), b["kernel"][0].double()
    assert float(given.min()) >= 0 and abs(float(given.sum()) - 1) < 1e-6
    assert 0 < float((given - drawn).abs().max()) < 0.5 * float(drawn.max())
    true = spread_kernel(drawn[None, None], 0.5)[0, 0]
    torch.testing.assert_close(Blur(true.float(), "circular")(b["sharp"][None])[0], b["blurred"], rtol=0, atol=1e-5)
    assert float((Blur(given.float(), "circular")(b["sharp"][None])[0] - b["blurred"]).abs().max()) > 1e-3
    with pytest.raises(InputError, match="kernel_error"):
        BlurPairs(IMAGES, pool, crop=32, kernel_error={"fraction": 2.0, "blur": 0.5, "noise": 0.05})
    with pytest.raises(InputError, match="kernel_error"):
        BlurPairs(IMAGES, pool, crop=32, kernel_error={"blur": 0.5})


def test_circular_batches_are_the_same_in_every_process():
    """The circular draw is seeded from integers only, so a run's mixture does not depend on PYTHONHASHSEED."""
    import os
    import subprocess
    import sys

    code = ("import torch; from podm_cli.training.pairs import BlurPairs, KernelPool; "
            "p = BlurPairs([torch.rand(1, 60, 60)], KernelPool([], 9, 0.0), crop=16, length=64, mode='valid', "
            "circular_fraction=0.5, batch_size=4); print([p.circular_batch(i) for i in range(0, 64, 4)])")
    runs = {subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                           env={**os.environ, "PYTHONHASHSEED": seed}).stdout for seed in ("1", "2")}
    assert len(runs) == 1 and "True" in runs.pop()


def test_validation_keeps_its_own_ladder_and_exact_kernels_when_training_changes_the_draw(monkeypatch):
    """``val_sigma_spacing`` / ``val_kernel_error`` (default: exact kernels): a run that trains on a linear draw
    with recovered kernels is still scored on the earlier runs' log ladder with exact kernels."""
    import podm_cli.training.datamodule as dm_mod

    monkeypatch.setattr(dm_mod, "load_schelten", lambda root, size: [])
    monkeypatch.setattr(dm_mod.BlurPairsDataModule, "_images", lambda self, split, limit: IMAGES)
    error = {"fraction": 1.0, "blur": 0.5, "noise": 0.05}
    common = dict(mode="valid", crop=32, val_crop=32, kernel_size=9, sigma=[0.004, 0.032], quantize=True)
    before = dm_mod.BlurPairsDataModule("unused", sigma_spacing="log", **common)
    now = dm_mod.BlurPairsDataModule("unused", sigma_spacing="linear", kernel_error=error,
                                     val_sigma_spacing="log", **common)
    before.setup(), now.setup()
    assert now.train_set.kernel_error == error and now.train_set.sigma_spacing == "linear"
    for i in range(len(IMAGES)):
        a, b = before.val_set[i], now.val_set[i]
        assert float(a["sigma"]) == float(b["sigma"])
        assert torch.equal(a["blurred"], b["blurred"]) and torch.equal(a["kernel"], b["kernel"])
    # without val_sigma_spacing the ladder follows the training draw (linear): the middle level moves
    follows = dm_mod.BlurPairsDataModule("unused", sigma_spacing="linear", **common)
    follows.setup()
    assert float(follows.val_set[1]["sigma"]) == pytest.approx(0.018) != pytest.approx(float(now.val_set[1]["sigma"]))


def test_intensity_darkens_each_crop_by_its_own_factor_and_keeps_the_pair_stream():
    pool = _delta_pool()
    plain = BlurPairs(IMAGES, pool, crop=24, length=30, sigma=[0.005, 0.03], mode="valid")
    dark = BlurPairs(IMAGES, pool, crop=24, length=30, sigma=[0.005, 0.03], mode="valid", intensity=[0.4, 0.8])
    factors = []
    for i in range(30):
        a, b = plain[i], dark[i]
        assert torch.equal(a["kernel"], b["kernel"]) and torch.equal(a["sigma"], b["sigma"])
        c = float(b["sharp"].sum() / a["sharp"].sum())
        assert torch.allclose(b["sharp"], c * a["sharp"], atol=1e-6)
        factors.append(c)
    assert 0.4 <= min(factors) < 0.5 and 0.7 < max(factors) <= 0.8  # drawn per item over the whole range
    for bad in ([0.0, 0.5], [0.8, 0.4], [0.5, 1.2], "dark"):
        with pytest.raises(InputError, match="intensity"):
            BlurPairs(IMAGES, pool, crop=24, intensity=bad)


def test_stroke_fraction_swaps_that_share_of_crops_for_stroke_images_and_keeps_the_pair_stream():
    pool = KernelPool([], kernel_size=9, real_fraction=0.0)
    plain = BlurPairs(IMAGES, pool, crop=24, length=60, sigma=[0.005, 0.03], mode="valid")
    mixed = BlurPairs(IMAGES, pool, crop=24, length=60, sigma=[0.005, 0.03], mode="valid", stroke_fraction=0.3)
    swapped = 0
    for i in range(60):
        a, b = plain[i], mixed[i]
        assert torch.equal(a["kernel"], b["kernel"]) and torch.equal(a["sigma"], b["sigma"])
        if torch.equal(a["sharp"], b["sharp"]):
            continue
        swapped += 1
        # a stroke image, not a uniform-noise crop: smooth ground, so most neighbour steps are small
        steps = (b["sharp"][..., 1:] - b["sharp"][..., :-1]).abs()
        assert float(steps.median()) < 0.02 < float((a["sharp"][..., 1:] - a["sharp"][..., :-1]).abs().median())
        # and the observation is that image blurred (valid) by the pair's kernel
        assert not torch.equal(a["blurred"], b["blurred"])
    assert 10 <= swapped <= 26  # 30 % of 60, drawn per item
    for bad in (-0.1, 1.5):
        with pytest.raises(InputError, match="stroke_fraction"):
            BlurPairs(IMAGES, pool, crop=24, stroke_fraction=bad)


def test_stroke_images_are_seeded_smooth_ground_crossed_by_dark_sharp_strokes():
    from podm_cli.training.strokes import stroke_image

    x = stroke_image(96, seed=3)
    assert x.shape == (1, 96, 96) and x.dtype == torch.float32
    assert torch.equal(x, stroke_image(96, seed=3)) and not torch.equal(x, stroke_image(96, seed=4))
    assert 0.0 <= float(x.min()) and float(x.max()) <= 1.0
    steps = torch.cat([(x[..., 1:] - x[..., :-1]).abs().flatten(), (x[..., 1:, :] - x[..., :-1, :]).abs().flatten()])
    assert float(steps.median()) < 0.01  # mostly smooth ground
    assert float(steps.max()) > 0.3  # crossed by sharp, high-contrast edges
    assert float((x < 0.3).float().mean()) > 0.03  # dark paint covers part of it
