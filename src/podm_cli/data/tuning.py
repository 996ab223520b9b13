"""The disjoint tuning set: where baselines' and PODM's free parameters are chosen, never on a test set.

Images (:func:`tuning_files`): grey (BT.601 luma) centre crops of BSDS500 *train* images, evenly spaced in
sorted name order; never Levin, Sun, BSD68 (= BSDS500 *val*) or Set12, nor ``12003``, which contains
Set12's starfish (:mod:`podm_cli.data.training_list`). Kernels: real
camera-shake kernels of Schelten et al. 2015 (``train/kernels_schelten2015.mat``) with both sides <=
``max_kernel`` px, evenly spaced among those, negatives clipped, normalised, zero-padded to ``max_kernel``
x ``max_kernel``, one per image.
Observations: circular blur, Gaussian noise seeded per image (:func:`podm_cli.physics.image_seed`), float32;
or (:meth:`TuningSet.observe_captured`) the conditions of a captured blur: ``valid`` blur by a *true*
kernel, noise, 8-bit rounding, with the method given only an approximate kernel
(:func:`approximate_kernels`).

Used by ``scripts/choose_ircnn_floor.py`` (docs/ircnn_floor.md) and ``scripts/tune_podm.py``
(docs/podm_defaults.md), so both tune on exactly the same kind of data::

    ts = load_tuning_set(data_root(None), images=8, crop=128)
    y = ts.observe(0.01)        # (8, 1, 128, 128) float32
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import Tensor

from podm_cli.data.training_list import BSDS_TRAIN, clean_files, clean_picks

__all__ = ["TuningSet", "approximate_kernels", "evenly", "load_tuning_set", "tuning_files"]

SCHELTEN = "train/kernels_schelten2015.mat"


def approximate_kernels(kernels: Tensor, names: list[str], blur: float = 0.5, noise: float = 0.05,
                        given_blur: float = 0.0) -> tuple[Tensor, Tensor]:
    """``(true, given)`` kernels (N, 1, K, K) that differ as a captured blur and its recovered kernel do
    (:mod:`podm_cli.kernels.error`: ``true`` spread by a Gaussian of ``blur`` px, ``given`` spread by
    ``given_blur`` px and then with noise of ``noise`` x peak, seeded per image by name).
    ``blur = noise = given_blur = 0`` gives ``true == given == kernels``.

    >>> k = torch.zeros(1, 1, 5, 5, dtype=torch.float64); k[0, 0, 2, 1:4] = 1 / 3
    >>> t, g = approximate_kernels(k, ["a"], blur=0.5, noise=0.1)
    >>> [round(float(v.sum()), 6) for v in (t, g)], bool((g >= 0).all()), bool(t[0, 0, 1, 2] > 0)
    ([1.0, 1.0], True, True)
    """
    from podm_cli.kernels.error import noisy_kernel, spread_kernel
    from podm_cli.physics import image_seed

    true = spread_kernel(kernels, blur)
    recovered = spread_kernel(kernels, given_blur) if given_blur > 0 else kernels
    given = [noisy_kernel(k, noise, torch.Generator().manual_seed(image_seed(name, base_seed=1)))
             for k, name in zip(recovered, names)]
    return true, torch.stack(given)


def evenly(n: int, k: int) -> list[int]:
    """Up to ``k`` distinct indices evenly spaced in ``0 .. n-1`` (first and last included).

    >>> evenly(10, 4)
    [0, 3, 6, 9]
    """
    return sorted({round(float(v)) for v in np.linspace(0, n - 1, k)})


@dataclass(frozen=True)
class TuningSet:
    """Sharp crops ``(N, 1, crop, crop)`` and kernels ``(N, 1, K, K)`` (float64), one kernel per image."""

    sharp: Tensor
    kernels: Tensor
    names: list[str]

    def observe(self, sigma: float) -> Tensor:
        """Circular blur + Gaussian noise ``sigma`` (seeded per image by name), float32."""
        from podm_cli.physics import Blur, add_gaussian_noise, image_seed

        blurred = Blur(self.kernels)(self.sharp)
        return add_gaussian_noise(blurred, sigma, seed=[image_seed(n) for n in self.names]).float()

    def observe_captured(self, sigma: float, blur: float = 0.5, noise: float = 0.05, bits: int | None = 8,
                         given_blur: float = 0.0, rotation: float = 0.0) -> tuple[Tensor, Tensor, Tensor]:
        """A captured blur's conditions: ``(y, given kernels, sharp truth aligned with y)``.

        ``y`` = ``valid`` blur of the crops by the *true* kernels of :func:`approximate_kernels`, plus
        Gaussian noise ``sigma`` (seeded per image), rounded to ``bits`` bits (None: not rounded), float32;
        ``y`` is ``crop - K + 1`` px a side and the truth is the sharp crop's matching centre (float64).
        Two further kernel errors (both off by default): ``given_blur`` spreads the *given* kernel by a
        Gaussian of that many px before its noise (the recovered kernel blurrier than the true one), and
        ``rotation`` makes the true blur turn across the frame, from the kernel rotated by ``-rotation``
        degrees at the left column to ``+rotation`` at the right (a linear blend of the two blurred images).
        """
        from podm_cli.kernels.error import rotate_kernel
        from podm_cli.physics import Blur, add_gaussian_noise, image_seed, quantize
        from podm_cli.physics.blur import valid_offset

        true, given = approximate_kernels(self.kernels, self.names, blur, noise, given_blur)
        if rotation:
            left = Blur(rotate_kernel(true, -rotation), "valid")(self.sharp)
            right = Blur(rotate_kernel(true, rotation), "valid")(self.sharp)
            w = torch.linspace(0.0, 1.0, left.shape[-1], dtype=left.dtype)
            blurred = left * (1 - w) + right * w
        else:
            blurred = Blur(true, "valid")(self.sharp)
        y = add_gaussian_noise(blurred, sigma, seed=[image_seed(n) for n in self.names])
        if bits is not None:
            y = quantize(y, bits)
        oy, ox = valid_offset(*true.shape[-2:])
        h, w = y.shape[-2:]
        return y.float(), given, self.sharp[..., oy : oy + h, ox : ox + w]

    def describe(self, sigma: float) -> str:
        n, crop, kk = len(self.names), self.sharp.shape[-1], self.kernels.shape[-1]
        return f"{n} BSDS500-train crops {crop}x{crop}, Schelten kernels <= {kk} px, circular blur, sigma {sigma}"


def tuning_files(root: str | os.PathLike, images: int = 16) -> list[Path]:
    """The image files of the tuning set: ``images`` evenly spaced in the sorted BSDS500-train listing, an
    excluded image (:data:`~podm_cli.data.training_list.CONTAINS_TEST_IMAGE`) replaced by the next clean one
    (none of the default 16 or 8 is excluded, so they are the crops every documented choice was made on;
    names only, nothing is decoded)."""
    n_clean = len(clean_files(root, (BSDS_TRAIN,)))
    return clean_picks(root, BSDS_TRAIN, lambda n: evenly(n, min(int(images), n_clean)))


def load_tuning_set(root: str | os.PathLike, images: int = 16, crop: int = 128, max_kernel: int = 31) -> TuningSet:
    """The first ``images`` evenly spaced BSDS500-train crops with as many evenly spaced Schelten kernels."""
    import scipy.io

    from podm_cli.imageio import read_image

    root = Path(root)
    files = tuning_files(root, images)
    mats = scipy.io.loadmat(root / SCHELTEN)["kernels"].ravel()
    small = [np.asarray(k, dtype=np.float64) for k in mats if max(k.shape) <= max_kernel]
    small = [small[i] for i in evenly(len(small), images)]
    xs, ks, names = [], [], []
    for f, k in zip(files, small):
        x, _ = read_image(f, mode="gray")
        h, w = x.shape[-2:]
        t, l = (h - crop) // 2, (w - crop) // 2
        xs.append(x[:, t : t + crop, l : l + crop])
        k = np.clip(k, 0, None)
        pad = np.zeros((max_kernel, max_kernel))
        oy, ox = (max_kernel - k.shape[0]) // 2, (max_kernel - k.shape[1]) // 2
        pad[oy : oy + k.shape[0], ox : ox + k.shape[1]] = k / k.sum()
        ks.append(torch.from_numpy(pad))
        names.append(f.stem)
    return TuningSet(torch.stack(xs).double(), torch.stack(ks)[:, None], names)
