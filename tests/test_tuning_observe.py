"""The tuning set's captured-blur conditions (podm_cli.data.tuning.TuningSet.observe_captured): the default
kernel error unchanged, and the two further errors (a blurrier given kernel, a blur that turns across the frame)
are what they say."""

import torch

from podm_cli.data.tuning import TuningSet, approximate_kernels
from podm_cli.kernels.error import rotate_kernel, spread_kernel
from podm_cli.physics import Blur, add_gaussian_noise, image_seed, quantize


def _tuning() -> TuningSet:
    g = torch.Generator().manual_seed(3)
    sharp = torch.rand(2, 1, 40, 40, generator=g, dtype=torch.float64)
    k = torch.zeros(2, 1, 9, 9, dtype=torch.float64)
    k[0, 0, 4, 1:8] = 1.0
    k[1, 0, 2:7, 2:7] = torch.rand(5, 5, generator=g, dtype=torch.float64)
    return TuningSet(sharp, k / k.sum(dim=(-2, -1), keepdim=True), ["a", "b"])


def test_default_is_the_spread_true_kernel_and_the_noisy_given_one():
    t = _tuning()
    y, given, truth = t.observe_captured(1.5 / 255, blur=0.5, noise=0.05)
    true, want_given = approximate_kernels(t.kernels, t.names, 0.5, 0.05)
    want_y = quantize(add_gaussian_noise(Blur(true, "valid")(t.sharp), 1.5 / 255,
                                         seed=[image_seed(n) for n in t.names]), 8).float()
    assert torch.equal(given, want_given) and torch.equal(y, want_y)
    assert y.shape[-2:] == truth.shape[-2:] == (32, 32)
    assert torch.equal(truth, t.sharp[..., 4:36, 4:36])


def test_given_blur_spreads_the_given_kernel_and_leaves_the_true_one():
    t = _tuning()
    y0, g0, _ = t.observe_captured(0.0, blur=0.0, noise=0.0, bits=None)
    y1, g1, _ = t.observe_captured(0.0, blur=0.0, noise=0.0, bits=None, given_blur=0.7)
    assert torch.equal(y0, y1)  # the image is blurred by the exact kernel either way
    assert torch.allclose(g0, t.kernels) and torch.allclose(g1, spread_kernel(t.kernels, 0.7))
    # a spread kernel has a lower peak: the recovered kernel is blurrier than the blur
    assert bool((g1.amax(dim=(-2, -1)) < g0.amax(dim=(-2, -1)) - 0.01).all())


def test_rotation_turns_the_blur_across_the_frame():
    t = _tuning()
    y, given, _ = t.observe_captured(0.0, blur=0.0, noise=0.0, bits=None, rotation=20.0)
    left = Blur(rotate_kernel(t.kernels, -20.0), "valid")(t.sharp).float()
    right = Blur(rotate_kernel(t.kernels, 20.0), "valid")(t.sharp).float()
    assert torch.allclose(y[..., 0], left[..., 0], atol=1e-6)
    assert torch.allclose(y[..., -1], right[..., -1], atol=1e-6)
    assert not torch.allclose(left[..., 0], right[..., 0], atol=1e-3)
    assert torch.allclose(given, t.kernels)  # the method is given the unrotated kernel


def test_rotate_kernel_quarter_turn_and_sum():
    k = _tuning().kernels
    r = rotate_kernel(k, 90.0)
    assert torch.allclose(r.sum(dim=(-2, -1)), torch.ones(2, 1, dtype=torch.float64))
    assert torch.allclose(r[0, 0, 1:8, 4], k[0, 0, 4, 1:8], atol=1e-9)
    assert torch.equal(rotate_kernel(k, 0.0), k / k.sum(dim=(-2, -1), keepdim=True))
