"""Benchmark datasets, one per evaluation protocol (docs/protocol.md).

=====================  =========================================  ========  ===============  =====================
protocol               images                                     blur      noise            scoring
=====================  =========================================  ========  ===============  =====================
``levin``              4 Levin gt x 8 Levin kernels = 32          circular  1 %, seeded      whole image
``levin_valid``        4 Levin gt x 8 Levin kernels = 32          valid     1 %, 8-bit       border 50, +-10
``levin_valid_whole``  the ``levin_valid`` items (same noise)     valid     1 %, 8-bit       whole valid region
``levin_real`` (v2)    Levin's 32 captured blurs vs the 4 gt      real      real (~1.5/255)  Levin's comp_upto_shift
``sun``                Sun et al. 2013: 80 x 8 = 640 (if fetched) real*     1 %, 8-bit       border 50, +-10
``sun_substitute``     BSD68 (68) + Set12 (12) x 8 Levin = 640    valid     1 %, 8-bit       border 50, +-10
=====================  =========================================  ========  ===============  =====================

"border 50, +-10": 50 px border discarded, best integer shift within +-10 px. Levin's ``comp_upto_shift``
(:data:`~podm_cli.metrics.LEVIN_SCORING`): 15 px border of the ground truth discarded, best shift within
+-5 px on a 0.25 px grid with bilinear interpolation of the estimate.

Each item is a :class:`Sample` ``(blurred (1, H', W'), sharp (1, H'', W''), kernel (kh, kw), sigma,
name)``; tensors are ``float32`` by default (``dtype=torch.float64`` on request). Synthetic blurs are
generated in float64 and only then cast, so the data do not depend on ``dtype`` beyond its rounding.
Items are generated lazily in ``__getitem__`` (ground truths and kernels are read once and cached) and
deterministically: the noise of an item is seeded with ``image_seed(name, seed)``, so it does not depend on
the order or batch in which items are read.

Alignment: for ``circular`` data ``sharp`` and ``blurred`` have the same size. For ``valid`` data ``sharp``
is the ground truth cropped to the region aligned with ``blurred`` (``valid_offset``), so an estimate
with ``blurred``'s size and alignment is scored directly against ``sharp``. For the captured / released
data (``levin_real``, ``sun``) ``sharp`` has ``blurred``'s size and is aligned up to a few pixels, which the
best-shift scoring absorbs.

``dataset.mode`` is ``"circular"`` when ``blurred`` is a circular convolution (no boundary handling
needed) and ``"valid"`` otherwise: the boundary is unknown and methods should use boundary handling
(padding + edgetaper or Liu-Jia) and return an estimate with ``blurred``'s size.

Scoring of ``levin_real``: Levin et al.'s own ``comp_upto_shift``, the scoring every published number on
these captured blurs uses. Its 15 px border also exceeds the largest Levin kernel's half-width (13 px), so
pixels whose blur involved content outside the frame are not scored. Version 1 of the protocol searched
integer shifts only (within +-10 px) and scored 2-3 dB lower; a protocol's ``version`` is recorded with
its results (docs/protocol.md says what each version changed).

Example:
    >>> ds = make_dataset("levin", "/path/to/data")  # doctest: +SKIP
    >>> len(ds), ds.protocol, ds.mode, ds[0].name  # doctest: +SKIP
    (32, 'levin', 'circular', 'im1_k1')
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import NamedTuple

import torch
import torch.nn.functional as F
from torch import Tensor
from torch.utils.data import Dataset

from podm_cli.data.locator import data_root, fetch_hint, find_sun_layout, require
from podm_cli.errors import DataNotFoundError, InputError
from podm_cli.imageio import read_image
from podm_cli.kernels import load_kernel, load_levin_kernels
from podm_cli.metrics import LEVIN_SCORING, Scoring
from podm_cli.physics import Blur, add_gaussian_noise, image_seed, quantize, valid_offset

__all__ = ["PROTOCOLS", "BenchmarkDataset", "Protocol", "Sample", "make_dataset"]

LEVIN_KERNELS = "levin/kernels/Levin09.mat"
LEVIN_GT = "levin/gt/im_{i}.png"
LEVIN_REAL = "levin/blurred_real/im{i:02d}_ker{j:02d}.png"
SUBSTITUTE_SETS = (("bsd68", "train/BSD68", 68), ("set12", "train/Set12", 12))


class Sample(NamedTuple):
    """One benchmark item.

    Attributes:
        blurred: ``(1, H', W')`` the observation.
        sharp: ``(1, H'', W'')`` the reference, aligned with ``blurred`` (see the module docstring).
        kernel: ``(kh, kw)`` true-convolution kernel, non-negative, sum 1.
        sigma: noise standard deviation on [0, 1] (the true one, or the protocol's estimate for real data).
        name: stable item name, e.g. ``"im1_k3"``; seeds the noise.
    """

    blurred: Tensor
    sharp: Tensor
    kernel: Tensor
    sigma: float
    name: str


@dataclass(frozen=True)
class Protocol:
    """What a protocol name means: blur mode, default noise level, scoring, a one-line note and a version.

    ``version`` goes up whenever the protocol's meaning changes (data, noise or scoring), so results of
    different versions are never compared unknowingly; docs/protocol.md lists what each version changed.
    ``kernel`` says how well the kernel given to methods is known: ``exact`` (it made the blur) or
    ``approximate`` (recovered from a capture); methods may raise their input noise level for the latter
    (:meth:`podm_cli.methods.base.Method.input_sigma`).
    """

    name: str
    mode: str
    sigma: float
    scoring: Scoring
    note: str
    version: int = 1
    kernel: str = "exact"


SUN_SCORING = Scoring(border=50, max_shift=10)
PROTOCOLS: dict[str, Protocol] = {
    "levin": Protocol(
        "levin", "circular", 0.01, Scoring(0, 0),
        "4 Levin et al. 2009 images x 8 Levin kernels, circular blur, 1% Gaussian noise seeded per image; "
        "PSNR/SSIM on the whole image",
    ),
    "levin_valid": Protocol(
        "levin_valid", "valid", 0.01, SUN_SCORING,
        "4 Levin images x 8 Levin kernels, valid blur, 1% noise then 8-bit rounding; sharp is cropped to the "
        "valid region; scored like sun (border 50, best shift +-10)",
    ),
    "levin_valid_whole": Protocol(
        "levin_valid_whole", "valid", 0.01, Scoring(0, 0),
        "the levin_valid images (valid blur, 1% noise then 8-bit rounding; the same noise) scored on the whole "
        "valid region with no border discard and no shift: the protocol closest to the paper's TV/HL Levin "
        "numbers (docs/protocol.md)",
    ),
    "levin_real": Protocol(
        "levin_real", "valid", 1.5 / 255, LEVIN_SCORING,
        "Levin et al.'s 32 captured camera-shake blurs against the 4 ground truths (registered up to 1-3 px), "
        "kernel = Levin kernel j, sigma = 1.5/255 is an estimate; scored with Levin et al.'s comp_upto_shift "
        "(border 15, best shift within +-5 px on a 0.25 px grid, bilinear), as every published number on it "
        "(version 2; version 1 searched integer shifts only)",
        version=2, kernel="approximate",
    ),
    "sun": Protocol(
        "sun", "valid", 0.01, SUN_SCORING,
        "Sun et al. 2013: 80 images x 8 Levin kernels (released blurs, 1% noise, 8-bit); the released ground "
        "truth is the image centre, padded back to the blurred size (edge values) - only the centre is "
        "scored (border 50, best shift +-10)",
    ),
    "sun_substitute": Protocol(
        "sun_substitute", "valid", 0.01, SUN_SCORING,
        "NOT the Sun et al. 2013 data and NOT comparable with published Sun numbers: 80 held-out grey images "
        "(BSD68 68 + Set12 12) x 8 Levin kernels, valid blur, 1% noise then 8-bit rounding, scored like sun",
    ),
}


# ------------------------------------------------------------------------------------------- datasets
class BenchmarkDataset(Dataset):
    """An indexable, lazily generated benchmark set with its protocol attached.

    Attributes: ``protocol`` (the name recorded in every result), ``version`` (of the protocol's
    definition), ``mode`` (``circular``/``valid``), ``scoring`` (:class:`~podm_cli.metrics.Scoring`),
    ``note``, ``sigma`` (the protocol's noise level), ``names`` (item names in order), ``root`` (data root),
    ``kernel`` (``exact`` | ``approximate``: how well the given kernel is known).
    """

    def __init__(self, spec: Protocol, protocol: str, names: list[str], root: Path, sigma: float,
                 dtype: torch.dtype, note: str | None = None):
        self.protocol = protocol
        self.version = spec.version
        self.kernel = spec.kernel
        self.mode = spec.mode
        self.scoring = spec.scoring
        self.note = note or spec.note
        self.sigma = float(sigma)
        self.names = list(names)
        self.root = root
        self.dtype = dtype

    def __len__(self) -> int:
        return len(self.names)

    def __getitem__(self, index: int) -> Sample:
        n = len(self.names)
        if not -n <= int(index) < n:
            raise IndexError(f"{self.protocol}: index {index} out of range for {n} items")
        return self._make(int(index) % n)

    def _make(self, index: int) -> Sample:  # pragma: no cover - abstract
        raise NotImplementedError

    def _out(self, t: Tensor) -> Tensor:
        return t.to(self.dtype).contiguous()

    def __repr__(self) -> str:
        return f"{type(self).__name__}(protocol={self.protocol!r}, n={len(self)}, mode={self.mode!r})"


class _Cache:
    """Load-once cache for ground truths (float64, ``(1, H, W)``)."""

    def __init__(self, loader: Callable[[Path], Tensor]):
        self.loader, self.items = loader, {}

    def __call__(self, path: Path) -> Tensor:
        if path not in self.items:
            self.items[path] = self.loader(path)
        return self.items[path]


def _gray64(path: Path) -> Tensor:
    return read_image(path, mode="gray")[0].to(torch.float64)


class SyntheticDataset(BenchmarkDataset):
    """Ground truth x kernels, blurred by podm (circular or valid), noise seeded per item name."""

    def __init__(self, spec: Protocol, protocol: str, images: list[tuple[str, Path]], kernels: list[Tensor],
                 root: Path, sigma: float, seed: int, quantise: bool, dtype: torch.dtype,
                 note: str | None = None, limit: int | None = None):
        items = [(key, path, j) for key, path in images for j in range(len(kernels))]
        items = items[:limit] if limit is not None else items
        names = [f"{key}_k{j + 1}" for key, _, j in items]
        super().__init__(spec, protocol, names, root, sigma, dtype, note)
        self.items, self.kernels = items, [k.to(torch.float64) for k in kernels]
        self.seed, self.quantise = int(seed), bool(quantise)
        self._gt = _Cache(_gray64)

    def _make(self, index: int) -> Sample:
        _, path, j = self.items[index]
        name = self.names[index]
        x = self._gt(path)
        k = self.kernels[j]
        if k.shape[-2] >= x.shape[-2] or k.shape[-1] >= x.shape[-1]:
            raise InputError(f"{name}: kernel {tuple(k.shape)} is not smaller than the image {tuple(x.shape)}")
        y = Blur(k, self.mode)(x[None])[0]
        y = add_gaussian_noise(y, self.sigma, seed=image_seed(name, self.seed))
        if self.quantise:
            y = quantize(y, 8)
        sharp = x
        if self.mode == "valid":
            oy, ox = valid_offset(*k.shape)
            sharp = x[:, oy : oy + y.shape[-2], ox : ox + y.shape[-1]]
        return Sample(self._out(y), self._out(sharp), self._out(k), self.sigma, name)


class PairedDataset(BenchmarkDataset):
    """Captured or released blurred images with their ground truth (no synthesis, no added noise)."""

    def __init__(self, spec: Protocol, protocol: str, items: list[tuple[str, Path, Path, Callable[[], Tensor]]],
                 root: Path, sigma: float, dtype: torch.dtype, note: str | None = None,
                 limit: int | None = None):
        items = items[:limit] if limit is not None else items
        super().__init__(spec, protocol, [name for name, *_ in items], root, sigma, dtype, note)
        self.items = items
        self._gt = _Cache(_gray64)

    def _make(self, index: int) -> Sample:
        name, blurred_path, gt_path, kernel = self.items[index]
        y = _gray64(blurred_path)
        x = _fit_to(self._gt(gt_path), y.shape[-2:])
        return Sample(self._out(y), self._out(x), self._out(kernel()), self.sigma, name)


def _fit_to(x: Tensor, shape) -> Tensor:
    """Centre ``x`` (C, h, w) on a canvas of ``shape``: crop if larger, pad with edge values if smaller."""
    h, w = x.shape[-2:]
    H, W = int(shape[0]), int(shape[1])
    if h > H or w > W:
        top, left = max((h - H) // 2, 0), max((w - W) // 2, 0)
        x = x[..., top : top + min(h, H), left : left + min(w, W)]
        h, w = x.shape[-2:]
    if h < H or w < W:
        top, left = (H - h) // 2, (W - w) // 2
        x = F.pad(x[None], (left, W - w - left, top, H - h - top), mode="replicate")[0]
    return x


# -------------------------------------------------------------------------------------------- builders
class _Kernels:
    """The 8 Levin kernels, loaded on first use."""

    def __init__(self, root: Path):
        self.path = require(root, LEVIN_KERNELS, "Levin kernels", "levin")
        self._k: list[Tensor] | None = None

    def all(self) -> list[Tensor]:
        if self._k is None:
            self._k = load_levin_kernels(self.path)
        return self._k

    def kernel(self, j: int) -> Tensor:
        return self.all()[j]

    def getter(self, j: int) -> Callable[[], Tensor]:
        """A picklable zero-argument callable returning kernel ``j`` (0-based)."""
        return functools.partial(self.kernel, j)


def _levin_images(root: Path) -> list[tuple[str, Path]]:
    return [(f"im{i}", require(root, LEVIN_GT.format(i=i), "Levin data", "levin")) for i in range(1, 5)]


def _substitute_images(root: Path) -> list[tuple[str, Path]]:
    images = []
    for key, rel, expected in SUBSTITUTE_SETS:
        folder = require(root, rel, "sun_substitute images", "train")
        files = sorted(p for p in folder.iterdir() if p.suffix.lower() == ".png" and p.is_file())
        if len(files) != expected:
            raise DataNotFoundError(
                f"sun_substitute images incomplete: {folder} has {len(files)} PNG files, expected {expected}; "
                f"{fetch_hint('train')}"
            )
        images += [(f"{key}_{p.stem}", p) for p in files]
    return images


def _levin_real_items(root: Path, kernels: _Kernels):
    gts = dict(_levin_images(root))
    items = []
    for i in range(1, 5):
        for j in range(1, 9):
            path = require(root, LEVIN_REAL.format(i=i, j=j), "Levin captured blurs", "levin")
            items.append((f"im{i}_k{j}", path, gts[f"im{i}"], kernels.getter(j - 1)))
    return items


def _sun_items(root: Path):
    layout = find_sun_layout(root)
    if not layout.complete:
        raise DataNotFoundError(
            f"Sun et al. 2013 data not found: {layout.summary()}; run `podm data fetch sun --source <folder or "
            f"archive>` (see data/README.md) or use the sun_substitute protocol, which needs only `train`"
        )
    levin = None if set(range(1, 9)) <= set(layout.kernels) else _Kernels(root)
    kernels = {
        j: _Memo(functools.partial(load_kernel, layout.kernels[j])) if j in layout.kernels
        else levin.getter(j - 1)
        for j in range(1, 9)
    }
    return [
        (f"im{i}_k{j}", layout.blurred[(i, j)], layout.gt[i], kernels[j])
        for i in range(1, 81)
        for j in range(1, 9)
    ]


class _Memo:
    """Call ``fn`` once and keep its result (picklable, so datasets work with DataLoader workers)."""

    def __init__(self, fn: Callable[[], Tensor]):
        self.fn, self.value = fn, None

    def __call__(self) -> Tensor:
        if self.value is None:
            self.value = self.fn()
        return self.value


def _protocol_name(name: str, spec: Protocol, sigma: float, seed: int, synthetic: bool) -> str:
    """The protocol name, suffixed when a parameter departs from the protocol's definition."""
    extras = []
    if abs(sigma - spec.sigma) > 1e-12:
        extras.append(f"sigma={sigma:g}")
    if synthetic and seed != 0:
        extras.append(f"seed={seed}")
    return f"{name}[{','.join(extras)}]" if extras else name


def make_dataset(
    name: str,
    root: str | Path | None = None,
    sigma: float | None = None,
    seed: int = 0,
    limit: int | None = None,
    dtype: torch.dtype = torch.float32,
) -> BenchmarkDataset:
    """Build the benchmark dataset of protocol ``name`` from the data under ``root``.

    Args:
        name: ``levin``, ``levin_valid``, ``levin_real``, ``sun`` or ``sun_substitute``.
        root: data root (default :func:`~podm_cli.data.locator.data_root`).
        sigma: noise level on [0, 1]; ``None`` = the protocol's (0.01; 1.5/255 for ``levin_real``, where it
            is only the estimate handed to methods). Another value renames the protocol, e.g.
            ``levin[sigma=0.02]``, so a protocol name never changes meaning.
        seed: base seed of the per-item noise (synthetic protocols; non-zero renames the protocol).
        limit: keep only the first ``limit`` items (image-major order: im1_k1..im1_k8, im2_k1, ...).
        dtype: ``torch.float32`` (default) or ``torch.float64`` for every returned tensor.

    Raises:
        DataNotFoundError: the data are missing (the message names the ``podm data fetch`` command).
        InputError: an unknown protocol or a bad argument.
    """
    if name not in PROTOCOLS:
        raise InputError(f"unknown dataset/protocol '{name}' (choose from {', '.join(PROTOCOLS)})")
    if dtype not in (torch.float32, torch.float64):
        raise InputError(f"dtype must be torch.float32 or torch.float64, got {dtype}")
    if limit is not None and int(limit) < 1:
        raise InputError(f"limit must be a positive number of items, got {limit}")
    spec = PROTOCOLS[name]
    sigma = spec.sigma if sigma is None else float(sigma)
    if not 0 <= sigma < float("inf"):
        raise InputError(f"sigma must be a finite number >= 0, got {sigma}")
    root_path = data_root(root)
    limit = None if limit is None else int(limit)
    synthetic = name in ("levin", "levin_valid", "levin_valid_whole", "sun_substitute")
    protocol = _protocol_name(name, spec, sigma, int(seed), synthetic)
    if name in ("levin", "levin_valid", "levin_valid_whole"):
        images = _levin_images(root_path)
        kernels = _Kernels(root_path).all()
        return SyntheticDataset(spec, protocol, images, kernels, root_path, sigma, seed,
                                quantise=(name != "levin"), dtype=dtype, limit=limit)
    if name == "sun_substitute":
        images = _substitute_images(root_path)
        kernels = _Kernels(root_path).all()
        return SyntheticDataset(spec, protocol, images, kernels, root_path, sigma, seed,
                                quantise=True, dtype=dtype, limit=limit)
    if name == "levin_real":
        items = _levin_real_items(root_path, _Kernels(root_path))
        return PairedDataset(spec, protocol, items, root_path, sigma, dtype, limit=limit)
    return PairedDataset(spec, protocol, _sun_items(root_path), root_path, sigma, dtype, limit=limit)
