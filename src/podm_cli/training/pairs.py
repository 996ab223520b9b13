"""Training pairs for RPODM, made on the fly: (blurred, sharp, kernel, sigma) from images disjoint from every
test image, with kernels that are never the 8 Levin kernels.

* **Images** (:func:`training_images`): grey (BT.601 luma) BSDS500 *train* + *test* for training, minus
  the one image that contains a test image (:data:`CONTAINS_TEST_IMAGE`: 399 images); BSDS500 *val* minus the
  68 BSD68 images for validation (BSD68 = 68 of the 100 val images and is part of ``sun_substitute``; they are
  recognised by content, not by name). Levin, Set12 and Sun images are never read. ``podm data prepare`` stores the decoded images in an HDF5 cache (:mod:`podm_cli.training.cache`).
* **Kernels** (:class:`KernelPool`): the real camera-shake kernels of Schelten et al. 2015 whose support
  fits ``kernel_size`` (37 of 192 at 31 px) and random-walk kernels (:func:`podm_cli.kernels.random_motion_kernel`),
  half and half, zero-padded to ``kernel_size`` squared.
* **Pairs** (:class:`BlurPairs`): a random crop with a random flip/rotation, a random kernel, circular blur
  (``operator=circular``) or ``valid`` blur of a crop enlarged by the kernel (``operator=valid``), Gaussian
  noise of level ``sigma`` (a number or a ``[low, high]`` range), optional 8-bit rounding. Every item is a pure
  function of ``(seed, epoch, index)``, so a run is reproducible and workers need no shared state.
* **Mixing** (``valid`` data): ``circular_fraction`` of whole batches are circular pairs instead (one model for
  both worlds); ``intensity`` darkens each training crop by a factor drawn in ``[low, high]`` (images as dark
  as Levin's); ``stroke_fraction`` of the items take a procedural stroke image instead of the crop
  (:mod:`podm_cli.training.strokes`: strokes on smooth ground, like two of Levin's four); ``kernel_error``
  makes a fraction of pairs with a kernel known only approximately (blurred by the true kernel, the model given
  a perturbed one: :mod:`podm_cli.kernels.error`).

Example::

    >>> import torch
    >>> pool = KernelPool([], kernel_size=15, real_fraction=0.0)
    >>> pairs = BlurPairs([torch.rand(1, 40, 50)], pool, crop=24, length=3, sigma=0.01)
    >>> item = pairs[0]
    >>> tuple(item["blurred"].shape), tuple(item["sharp"].shape), tuple(item["kernel"].shape)
    ((1, 24, 24), (1, 24, 24), (1, 15, 15))
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
import torch
from torch import Tensor
from torch.utils.data import Dataset

from podm_cli.data.training_list import BSDS_TRAIN_SETS, CONTAINS_TEST_IMAGE, clean_files, image_files
from podm_cli.errors import InputError
from podm_cli.training.strokes import stroke_image

__all__ = [
    "BSD68",
    "BSDS_TRAIN_SETS",
    "BSDS_VAL",
    "CONTAINS_TEST_IMAGE",
    "SCHELTEN",
    "BlurPairs",
    "KernelPool",
    "ValidationPairs",
    "bsd68_in_val",
    "load_schelten",
    "noise_range",
    "spaced_sigma",
    "training_images",
]

BSDS_VAL = "train/BSDS500/val"
BSD68 = "train/BSD68"
SCHELTEN = "train/kernels_schelten2015.mat"


def _read_gray(path: Path) -> Tensor:
    """Grey luma rounded to 8 bits, exactly what the HDF5 cache stores (a run is the same with or without it)."""
    from podm_cli.imageio import read_image

    return torch.round(read_image(path, mode="gray")[0].float() * 255) / 255


def bsd68_in_val(root: str | os.PathLike) -> dict[str, str]:
    """``{val image stem: BSD68 file name}`` for the BSDS500 val images that are BSD68 images (by content:
    same size and mean absolute grey difference below 2/255, allowing for JPEG-to-grey conversion)."""
    root = Path(root)
    bsd = [(p.name, _read_gray(p)) for p in image_files(root, BSD68)]
    found: dict[str, str] = {}
    for p in image_files(root, BSDS_VAL):
        x = _read_gray(p)
        for name, b in bsd:
            if b.shape == x.shape and float((b - x).abs().mean()) < 2 / 255:
                found[p.stem] = name
                break
    return found


def training_images(root: str | os.PathLike, split: str = "train", limit: int | None = None) -> list[tuple[str, Tensor]]:
    """``[(name, (1, H, W) float32 grey)]`` of a split: ``train`` (BSDS500 train + test) or ``val`` (BSDS500
    val minus BSD68). ``limit`` keeps the first ``limit`` in name order."""
    root = Path(root)
    if split == "train":
        files = clean_files(root)
    elif split == "val":
        excluded = bsd68_in_val(root)
        files = [p for p in image_files(root, BSDS_VAL) if p.stem not in excluded]
    else:
        raise InputError(f"split must be 'train' or 'val', got {split!r}")
    if limit is not None:
        files = files[: int(limit)]
    return [(f"{p.parent.name}/{p.stem}", _read_gray(p)) for p in files]


def load_schelten(root: str | os.PathLike, kernel_size: int) -> list[Tensor]:
    """The Schelten et al. 2015 kernels whose support fits ``kernel_size`` (negatives clipped, sum 1)."""
    import scipy.io

    from podm_cli.data.locator import require

    mats = scipy.io.loadmat(require(Path(root), SCHELTEN, "training kernels", "train"))["kernels"].ravel()
    out = []
    for k in mats:
        k = np.clip(np.asarray(k, dtype=np.float64), 0, None)
        if max(k.shape) <= kernel_size and k.sum() > 0:
            out.append(torch.from_numpy(k / k.sum()))
    return out


def _pad_kernel(k: Tensor, size: int) -> Tensor:
    out = torch.zeros(size, size, dtype=torch.float32)
    oy, ox = (size - k.shape[0]) // 2, (size - k.shape[1]) // 2
    out[oy : oy + k.shape[0], ox : ox + k.shape[1]] = k.float()
    return out / out.sum()


class KernelPool:
    """Draws ``(kernel_size, kernel_size)`` kernels: real ones (given, e.g. Schelten's) with probability
    ``real_fraction``, else random-walk camera shake of arc length in ``length``."""

    def __init__(self, real: Sequence[Tensor], kernel_size: int = 31, real_fraction: float = 0.5,
                 length: tuple[float, float] = (4.0, 28.0)):
        if kernel_size < 3:
            raise InputError(f"kernel_size must be >= 3, got {kernel_size}")
        self.kernel_size = int(kernel_size)
        self.real = [_pad_kernel(k, self.kernel_size) for k in real]
        self.real_fraction = float(real_fraction) if self.real else 0.0
        self.length = (float(length[0]), float(length[1]))

    def draw(self, generator: torch.Generator) -> Tensor:
        from podm_cli.kernels import random_motion_kernel

        if self.real and float(torch.rand((), generator=generator)) < self.real_fraction:
            k = self.real[int(torch.randint(len(self.real), (), generator=generator))]
            return torch.rot90(k, int(torch.randint(4, (), generator=generator)), (0, 1)).contiguous()
        seed = int(torch.randint(2**62, (), generator=generator))
        return random_motion_kernel(self.kernel_size, length=self.length, generator=seed).float()


def _observe(sharp: Tensor, kernel: Tensor, sigma: float, mode: str, quantize: bool, gen: torch.Generator):
    """Blur (circular, or valid: ``sharp`` is the enlarged crop), add noise, optionally round to 8 bits."""
    from podm_cli.physics import Blur

    y = Blur(kernel, mode)(sharp[None])[0]
    y = y + sigma * torch.randn(y.shape, generator=gen)
    if quantize:
        y = torch.round(y.clamp(0, 1) * 255) / 255
    return y


SIGMA_SPACINGS = ("linear", "log")


def noise_range(sigma) -> tuple[float, float]:
    """``(low, high)`` of a noise setting: a number (``low == high``) or ``[low, high]``, ``0 < low <= high``.

    >>> noise_range(0.01), noise_range([0.004, 0.03])
    ((0.01, 0.01), (0.004, 0.03))
    """
    lo, hi = (float(sigma), float(sigma)) if isinstance(sigma, (int, float)) else (float(s) for s in sigma)
    if not 0 <= lo <= hi:
        raise InputError(f"noise level must be a number or [low, high] with 0 <= low <= high, got {sigma}")
    return lo, hi


def spaced_sigma(sigma, u: float, spacing: str = "linear") -> float:
    """The noise level at fraction ``u`` in [0, 1] of the range ``sigma``, linearly or log-spaced
    (log: as many pairs between 1/255 and 2/255 as between 4/255 and 8/255).

    >>> round(spaced_sigma([0.004, 0.016], 0.5, "log"), 6), spaced_sigma([0.004, 0.016], 0.5)
    (0.008, 0.01)
    """
    if spacing not in SIGMA_SPACINGS:
        raise InputError(f"sigma spacing must be one of {', '.join(SIGMA_SPACINGS)}, got {spacing!r}")
    lo, hi = noise_range(sigma)
    if spacing == "log" and lo > 0:
        return float(lo * (hi / lo) ** u)
    return lo + (hi - lo) * u


KERNEL_ERROR_KEYS = ("fraction", "blur", "noise")
_CIRCULAR_STREAM = 1  # tags the per-batch circular draw's seed (4 integers; an item's seed hashes 3)
_INTENSITY_STREAM = 2  # tags the per-item intensity factor's seed (the pair's own stream stays as without it)
_STROKES_STREAM = 3  # tags the per-item stroke-image draw (likewise)


def _stream(*parts: int) -> torch.Generator:
    """A generator seeded from integers only (a str in the tuple would make the hash differ between processes,
    PYTHONHASHSEED): an item's stream hashes ``(seed, epoch, index)``, a side draw adds its stream tag."""
    return torch.Generator().manual_seed(hash(tuple(int(p) for p in parts)) & (2**62 - 1))


def check_intensity(value: Sequence[float] | None) -> tuple[float, float] | None:
    """``train_data.intensity``: None, or ``[low, high]`` with ``0 < low <= high <= 1``."""
    if value is None:
        return None
    try:
        lo, hi = (float(v) for v in value)
    except (TypeError, ValueError):
        raise InputError(f"intensity must be null or [low, high], got {value}") from None
    if not 0.0 < lo <= hi <= 1.0:
        raise InputError(f"intensity needs 0 < low <= high <= 1, got {value}")
    return lo, hi


def check_kernel_error(value: Mapping | None) -> dict | None:
    """``train_data.kernel_error``: None, or ``{fraction, blur, noise}`` -- that fraction of pairs is blurred by the
    drawn kernel spread by a Gaussian of ``blur`` px while the model is given it with noise of ``noise`` x peak
    (:mod:`podm_cli.kernels.error`, the tuning set's model of a recovered kernel)."""
    if value is None:
        return None
    value = dict(value)
    if set(value) != set(KERNEL_ERROR_KEYS) or not all(isinstance(value[k], (int, float)) for k in value):
        raise InputError(f"kernel_error must be null or {{fraction, blur, noise}} numbers, got {value}")
    if not (0 <= value["fraction"] <= 1 and value["blur"] >= 0 and value["noise"] >= 0):
        raise InputError(f"kernel_error needs 0 <= fraction <= 1, blur >= 0, noise >= 0, got {value}")
    return {k: float(v) for k, v in value.items()}


def approximate_kernel(k: Tensor, error: Mapping, gen: torch.Generator) -> tuple[Tensor, Tensor]:
    """``(true, given)`` for a drawn kernel ``k`` (K, K): the blur that makes the pair and what the model gets."""
    from podm_cli.kernels.error import noisy_kernel, spread_kernel

    k64 = k.to(torch.float64)
    true = spread_kernel(k64[None, None], error["blur"])[0, 0]
    return true.to(k.dtype), noisy_kernel(k64, error["noise"], gen).to(k.dtype)


class BlurPairs(Dataset):
    """``length`` random training pairs per epoch (see the module docstring); call :meth:`set_epoch`."""

    def __init__(self, images: Sequence[Tensor], kernels: KernelPool, crop: int = 128, length: int = 1000,
                 sigma: float | Sequence[float] = 0.01, mode: str = "circular", quantize: bool = False,
                 seed: int = 0, sigma_spacing: str = "linear", circular_fraction: float = 0.0,
                 batch_size: int = 1, kernel_error: Mapping | None = None,
                 intensity: Sequence[float] | None = None, stroke_fraction: float = 0.0):
        spaced_sigma(sigma, 0.0, sigma_spacing)  # checks the range and the spacing
        if mode not in ("circular", "valid"):
            raise InputError(f"blur mode must be circular or valid, got {mode!r}")
        if not 0.0 <= float(circular_fraction) <= 1.0:
            raise InputError(f"circular_fraction must be in [0, 1], got {circular_fraction}")
        if int(batch_size) < 1:
            raise InputError(f"batch_size must be >= 1, got {batch_size}")
        self.mode = mode
        # valid data only: this fraction of whole batches (indices b*batch_size .. (b+1)*batch_size - 1) are
        # circular pairs instead, so one model also keeps the synthetic circular world
        self.circular_fraction = float(circular_fraction) if mode == "valid" else 0.0
        self.batch_size = int(batch_size)
        self.kernel_error = check_kernel_error(kernel_error)
        self.intensity = check_intensity(intensity)
        if not 0.0 <= float(stroke_fraction) <= 1.0:
            raise InputError(f"stroke_fraction must be in [0, 1], got {stroke_fraction}")
        # this fraction of items get a procedural stroke image (podm_cli.training.strokes) instead of the crop
        self.stroke_fraction = float(stroke_fraction)
        self.pad = kernels.kernel_size - 1 if mode == "valid" else 0
        need = crop + self.pad
        self.images = [im for im in images if min(im.shape[-2:]) >= need]
        if not self.images:
            raise InputError(f"no training image is at least {need} px on each side (crop {crop})")
        self.kernels, self.crop, self.length = kernels, int(crop), int(length)
        self.sigma, self.quantize, self.seed, self.epoch = sigma, bool(quantize), int(seed), 0
        self.sigma_spacing = sigma_spacing

    def set_epoch(self, epoch: int) -> None:
        self.epoch = int(epoch)

    def __len__(self) -> int:
        return self.length

    def circular_batch(self, index: int) -> bool:
        """Whether item ``index`` belongs to a circular batch (see ``circular_fraction``); a fraction of 0
        draws no random number, so runs without mixing keep their stream."""
        if self.circular_fraction <= 0.0:
            return False
        batch = int(index) // self.batch_size
        gen = _stream(self.seed, self.epoch, batch, _CIRCULAR_STREAM)
        return float(torch.rand((), generator=gen)) < self.circular_fraction

    def _pair(self, x: Tensor, gen: torch.Generator, sigma: float | None = None,
              mode: str | None = None) -> dict[str, Tensor]:
        """Observe the (enlarged, for valid) sharp patch ``x`` with a random kernel and a noise level drawn
        from the range (or ``sigma``), blurred as ``mode`` (default: the set's)."""
        from podm_cli.physics.blur import valid_offset

        k = self.kernels.draw(gen)
        true = k
        if self.kernel_error and float(torch.rand((), generator=gen)) < self.kernel_error["fraction"]:
            true, k = approximate_kernel(k, self.kernel_error, gen)
        if sigma is None:  # a fixed level draws nothing (the same stream as before ranges existed)
            lo, hi = noise_range(self.sigma)
            u = float(torch.rand((), generator=gen)) if hi > lo else 0.0
            sigma = spaced_sigma(self.sigma, u, self.sigma_spacing)
        mode = mode or self.mode
        y = _observe(x.contiguous(), true, sigma, mode, self.quantize, gen)
        if mode == "valid":
            oy, ox = valid_offset(*k.shape)
            x = x[:, oy : oy + self.crop, ox : ox + self.crop]
        return {"blurred": y.float(), "sharp": x.contiguous().float(), "kernel": k[None].float(),
                "sigma": torch.tensor(sigma, dtype=torch.float32), "circular": torch.tensor(mode == "circular")}

    def __getitem__(self, index: int) -> dict[str, Tensor]:
        gen = _stream(self.seed, self.epoch, index)
        im = self.images[int(torch.randint(len(self.images), (), generator=gen))]
        mode = "circular" if self.circular_batch(index) else self.mode
        size = self.crop + (self.pad if mode == "valid" else 0)
        h, w = im.shape[-2:]
        t = int(torch.randint(h - size + 1, (), generator=gen))
        left = int(torch.randint(w - size + 1, (), generator=gen))
        x = im[:, t : t + size, left : left + size]
        x = torch.rot90(x, int(torch.randint(4, (), generator=gen)), (1, 2))
        if float(torch.rand((), generator=gen)) < 0.5:
            x = x.flip(-1)
        if self.stroke_fraction > 0.0:
            own = _stream(self.seed, self.epoch, index, _STROKES_STREAM)
            if float(torch.rand((), generator=own)) < self.stroke_fraction:
                x = stroke_image(size, seed=int(torch.randint(2**62, (), generator=own)))
        if self.intensity:
            lo, hi = self.intensity
            own = _stream(self.seed, self.epoch, index, _INTENSITY_STREAM)
            x = x * (lo + (hi - lo) * float(torch.rand((), generator=own)))
        return self._pair(x, gen, mode=mode)


class ValidationPairs(BlurPairs):
    """Fixed validation pairs: centre crops, one kernel per image drawn from a fixed seed, fixed noise (for a
    range ``[low, high]``: image ``i`` of ``n`` gets the level at fraction ``i / (n - 1)``, spaced as
    ``sigma_spacing``, so the score covers the whole range); ``kernel_error`` as in training, drawn per image
    from the fixed seed."""

    def __init__(self, images: Sequence[Tensor], kernels: KernelPool, crop: int = 128,
                 sigma: float | Sequence[float] = 0.01, mode: str = "circular", quantize: bool = False,
                 seed: int = 12345, sigma_spacing: str = "linear", kernel_error: Mapping | None = None):
        super().__init__(images, kernels, crop, len(images), sigma, mode, quantize, seed, sigma_spacing,
                         kernel_error=kernel_error)
        self.length = len(self.images)

    def level(self, index: int) -> float:
        """Validation pair ``index``'s noise level."""
        return spaced_sigma(self.sigma, int(index) / max(1, self.length - 1), self.sigma_spacing)

    def __getitem__(self, index: int) -> dict[str, Tensor]:
        gen = torch.Generator().manual_seed(self.seed * 1_000_003 + int(index))
        im = self.images[int(index)]
        size = self.crop + self.pad
        h, w = im.shape[-2:]
        x = im[:, (h - size) // 2 : (h - size) // 2 + size, (w - size) // 2 : (w - size) // 2 + size]
        return self._pair(x, gen, self.level(index))
