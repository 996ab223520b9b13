"""Overlapping tiles with blended seams, for images larger than a memory budget (``podm deblur tile=``).

How an image is tiled
    The whole blurry image is first extended once, exactly as an untiled restoration would extend it
    (:func:`~podm_cli.physics.extend_for_deconv`: Liu-Jia wrap-around by default), which makes it periodic:
    a torus of ``next_fast_len(H + kh - 1) x next_fast_len(W + kw - 1)`` pixels (for Liu-Jia, computed from
    thin bands of the image: :func:`extend_whole`). That torus is cut into tiles of at most ``tile`` pixels
    a side, at least two per axis, evenly spread and overlapping their neighbours by at least ``overlap``
    pixels (tiles wrap around the torus). Each tile is restored on its own as a ``valid``
    observation (the method extends it at its own borders), the tiles are blended, and the image is cropped
    out of the torus. Because the tiles see the same wrap-around pixels as the untiled restoration, the
    image's own borders are restored as they would be untiled; only the seams between tiles differ.

How tiles are blended
    A tile's weight is zero within ``margin`` pixels of its edges (where its own boundary extension
    reaches), rises as ``sin^2`` over the rest of each overlap (the two weights across a seam sum to one)
    and is one in its core; the blend is normalised by the sum of the weights. How far a tile's boundary
    reaches depends on the kernel more than on its size: kernels with near-zeros in their spectrum (long
    straight motion) make deconvolution non-local. So ``overlap=auto`` takes ``margin = max(2 x kernel
    size, 1.5 x influence_radius(kernel))`` (the radius holding 99 % of the energy of the kernel's
    regularised inverse filter) and ``overlap = 2 x margin + kernel size``. Measured with hl on 512 x 512
    images (skimage's camera and Set12's 08, 1 % noise), tiled minus untiled PSNR: Levin's 17 px kernel
    0.000 to -0.002 dB (9-81 tiles); two 19 and 25 px random shakes +0.001 to -0.017 dB; a 21 px shake with a
    near-zero spectrum -0.02 / -0.48 dB with 9 tiles of 386 px but -0.007 to -0.02 dB with 4 tiles of 470-511
    px. Larger tiles are closer, so ``tile=auto`` never makes tiles smaller than three overlaps.

How ``tile=auto`` chooses
    From an estimate of the method's working memory: ``channels x (extended tile pixels) x
    bytes_per_pixel``, where the extended tile is the FFT-sized boundary extension and ``bytes_per_pixel``
    is the method's ``memory_per_pixel`` attribute if it has one, else :data:`MEMORY_PER_PIXEL` for its
    name (measured with ``python scripts/bench.py --memory-per-pixel``: peak resident memory growth on CPU,
    rounded up). Whole-image buffers cost :data:`FIXED_BYTES_PER_PIXEL` per pixel and channel. The image is
    not tiled when the whole image fits the budget (all channels at once, else one channel at a time);
    otherwise the largest tile that fits, one channel at a time.

>>> plan = plan_tiles(1000, 700, channels=3, kernel_shape=(31, 31), bytes_per_pixel=400, tile=512)
>>> plan.n_tiles, plan.overlap, plan.margin, plan.torus
(9, 155, 62, (1050, 735))
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator
from dataclasses import dataclass, replace

import torch
from torch import Tensor

from podm_cli.errors import InputError
from podm_cli.physics import next_fast_len

__all__ = [
    "DEFAULT_MEMORY_PER_PIXEL",
    "FIXED_BYTES_PER_PIXEL",
    "MEMORY_PER_PIXEL",
    "StageBlender",
    "TilePlan",
    "blend_tiles",
    "default_overlap",
    "influence_radius",
    "estimate_bytes",
    "memory_per_pixel",
    "plan_tiles",
]

#: Peak working memory per pixel of the extended (padded) image and per channel, bytes, on CPU.
#: ``python scripts/bench.py --memory-per-pixel`` measured tv 310-810, hl 180-320, ircnn 560-650,
#: podm 640-790 (float32 input; PODM solves in float64), rtf 770-880; the constants round those up.
MEMORY_PER_PIXEL = {"tv": 850.0, "hl": 400.0, "ircnn": 800.0, "podm": 1000.0, "rtf": 1000.0}
#: For a method not in the table and without a ``memory_per_pixel`` attribute.
DEFAULT_MEMORY_PER_PIXEL = 1000.0
#: Whole-image buffers per pixel and channel, bytes: the image (float32), its extension and the blended
#: sum (float32, tiled only), the result and the float64 copy made when it is written.
FIXED_BYTES_PER_PIXEL = 28.0
#: A tile is at least the overlap plus this many pixels.
MIN_CORE = 64
#: ``tile=auto`` never goes below this many overlaps (15 kernel sizes): smaller tiles cost accuracy
#: (see the module docstring), so a tight budget is exceeded rather than the result degraded.
AUTO_MIN_TILES = 3


def memory_per_pixel(method) -> float:
    """Bytes of working memory per extended pixel and channel for ``method`` (see the module docstring)."""
    value = getattr(method, "memory_per_pixel", None)
    if value:
        return float(value)
    return MEMORY_PER_PIXEL.get(getattr(method, "name", ""), DEFAULT_MEMORY_PER_PIXEL)


def extended_shape(height: int, width: int, kernel_shape: tuple[int, int]) -> tuple[int, int]:
    """Size of the boundary-extended image a method solves on (as :func:`~podm_cli.physics.extend_for_deconv`)."""
    kh, kw = kernel_shape
    return next_fast_len(height + kh - 1), next_fast_len(width + kw - 1)


def estimate_bytes(height: int, width: int, channels: int, kernel_shape: tuple[int, int],
                   bytes_per_pixel: float) -> float:
    """Estimated working memory of one method call on a ``channels x height x width`` image."""
    eh, ew = extended_shape(height, width, kernel_shape)
    return channels * eh * ew * bytes_per_pixel


def influence_radius(kernel: Tensor, alpha: float = 1e-3, energy: float = 0.99, grid: int = 512) -> float:
    """Radius (px) holding ``energy`` of the energy of the regularised inverse filter of ``kernel``.

    ``IFFT(conj(K) / (|K|^2 + alpha |D|^2))`` (Tikhonov on the gradient) is how far a deconvolution reaches:
    a change of the input at distance ``d`` moves a restored pixel by about this filter at ``d``. Kernels
    whose spectrum has near-zeros (long straight motion) reach much further than their size.
    """
    from podm_cli.physics import DataTerm, diff_otf_sq

    k = kernel.detach().to("cpu", torch.float64)
    n = max(grid, next_fast_len(4 * max(k.shape)))
    impulse = torch.zeros(1, 1, n, n, dtype=torch.float64)
    impulse[..., 0, 0] = 1.0
    data = DataTerm.build(impulse, k)  # the filter is the regularised solve for an impulse observation
    zero = torch.zeros(n, n // 2 + 1, dtype=torch.complex128)
    r = data.solve_quadratic(zero, alpha, diff_otf_sq((n, n)))[0, 0]
    i = torch.arange(n)
    i = torch.minimum(i, n - i).to(torch.float64)
    rad = torch.sqrt(i[:, None] ** 2 + i[None, :] ** 2).flatten()
    order = torch.argsort(rad)
    cum = torch.cumsum((r**2).flatten()[order], 0)
    at = int(torch.searchsorted(cum, torch.tensor(energy * float(cum[-1]), dtype=torch.float64)))
    return float(rad[order][min(at, rad.numel() - 1)])


def default_overlap(kernel_shape: tuple[int, int], kernel: Tensor | None = None) -> tuple[int, int]:
    """``(overlap, margin)``: margin = max(2 x kernel size, 1.5 x :func:`influence_radius`), overlap = 2 x
    margin + kernel size (without ``kernel``, its size alone: margin = 2 x size)."""
    k = max(kernel_shape)
    margin = 2 * k
    if kernel is not None:
        margin = max(margin, math.ceil(1.5 * influence_radius(kernel)))
    return 2 * margin + k, margin


@dataclass(frozen=True)
class TilePlan:
    """How an ``height x width`` image is restored: whole, or in tiles of its extension (the torus)."""

    height: int
    width: int
    channels: int
    channel_batch: int  # channels restored per method call (all, or one at a time to save memory)
    torus: tuple[int, int] = (0, 0)  # size of the extended image the tiles are cut from
    tile: tuple[int, int] = (0, 0)  # tile size (rows, columns)
    overlap: int = 0  # minimum overlap between neighbouring tiles
    margin: int = 0  # zero-weight band along a tile's edges
    rows: tuple[int, ...] = ()  # tile start rows on the torus (empty: untiled)
    cols: tuple[int, ...] = ()
    reason: str = ""  # why this plan (for reports)

    @property
    def tiled(self) -> bool:
        return bool(self.rows)

    @property
    def n_tiles(self) -> int:
        return len(self.rows) * len(self.cols) if self.tiled else 1

    def tiles(self) -> Iterator[tuple[Tensor, Tensor, Tensor]]:
        """``(row indices, column indices, weights (th, tw))`` of each tile on the torus, row by row."""
        (lh, lw), (th, tw) = self.torus, self.tile
        for i, r in enumerate(self.rows):
            ri = (r + torch.arange(th)) % lh
            wy = _axis_weights(i, self.rows, th, lh, self.margin)
            for j, c in enumerate(self.cols):
                ci = (c + torch.arange(tw)) % lw
                wx = _axis_weights(j, self.cols, tw, lw, self.margin)
                yield ri, ci, (wy[:, None] * wx[None, :]).to(torch.float32)


def _ramp(distance: Tensor, overlap_len: int, margin: int) -> Tensor:
    """sin^2 ramp: 0 for distance <= margin, 1 for distance >= overlap_len - margin (pixel centres)."""
    span = max(overlap_len - 2 * margin, 1)
    t = ((distance - margin) / span).clamp(0.0, 1.0)
    return torch.sin(t * (math.pi / 2)) ** 2


def _axis_weights(i: int, starts: tuple[int, ...], side: int, period: int, margin: int) -> Tensor:
    """Weights along one axis of tile ``i`` (every tile has a neighbour on both sides on the torus)."""
    n = len(starts)
    d = torch.arange(side, dtype=torch.float64) + 0.5
    low = side - (starts[i] - starts[i - 1]) % period  # overlap with the previous tile
    high = side - (starts[(i + 1) % n] - starts[i]) % period  # overlap with the next tile
    return _ramp(d, low, margin) * _ramp(side - d, high, margin)


def _axis_tiles(length: int, side: int, overlap: int, offset: int) -> tuple[int, tuple[int, ...]]:
    """``(side, starts)`` of at least two tiles evenly spread around a period ``length``, overlapping by at
    least ``overlap``: as few tiles as ``side`` allows, then each only as long as needed (<= ``side``, and
    not below ``AUTO_MIN_TILES`` overlaps, which costs accuracy)."""
    n = max(2, math.ceil(length / max(side - overlap, 1)))
    side = min(length, side, max(math.ceil(length / n) + overlap, AUTO_MIN_TILES * overlap))
    return side, tuple((offset + round(i * length / n)) % length for i in range(n))


def plan_tiles(
    height: int,
    width: int,
    channels: int,
    kernel_shape: tuple[int, int],
    bytes_per_pixel: float,
    tile: int | str | None = "auto",
    overlap: int | str | None = "auto",
    memory_budget_mb: float = 2048.0,
    boundary: str = "liu",
    kernel: Tensor | None = None,
) -> TilePlan:
    """Choose how to restore an image (see the module docstring).

    ``tile``: ``"auto"`` (fit ``memory_budget_mb``), ``0`` / ``None`` (never tile) or a tile side in pixels.
    ``overlap``: ``"auto"`` (:func:`default_overlap`, from ``kernel`` when given) or pixels, at least
    3 x kernel size (the margin is then ``(overlap - kernel size) / 2``). ``boundary`` is the method's
    extension (it decides where the image sits on the torus). Raises :class:`InputError` for values that
    cannot work.
    """
    kh, kw = (int(s) for s in kernel_shape)
    k = max(kh, kw)
    if overlap in (None, "auto"):
        ov, margin = default_overlap((kh, kw), kernel)
    else:
        ov = _positive_int(overlap, "overlap")
        if ov < 3 * k:
            raise InputError(f"overlap={ov} is too small for a {kh}x{kw} kernel: tiles must overlap by at least "
                             f"{3 * k} px (3 x kernel size); use overlap=auto")
        margin = (ov - k) // 2
    whole = TilePlan(height, width, channels, channels)
    if tile in (None, 0, "0", "none", "off", False):
        return replace(whole, reason="tile=0: untiled")
    if tile == "auto":
        if memory_budget_mb is None or not float(memory_budget_mb) > 0:
            raise InputError(f"memory_budget_mb must be a positive number, got {memory_budget_mb!r}")
        budget = float(memory_budget_mb) * 2**20 - FIXED_BYTES_PER_PIXEL * channels * height * width
        need = estimate_bytes(height, width, 1, (kh, kw), bytes_per_pixel)
        for batch in (channels, 1):
            if need * batch <= budget:
                return replace(whole, channel_batch=batch,
                               reason=f"fits memory_budget_mb={memory_budget_mb:g} ({batch} channel(s) per call)")
        side = _largest_side(budget, (kh, kw), bytes_per_pixel, minimum=max(ov + MIN_CORE, AUTO_MIN_TILES * ov))
        reason = f"est. {need * channels / 2**20:.0f} MB untiled > memory_budget_mb={memory_budget_mb:g}"
        batch = 1
    else:
        side = _positive_int(tile, "tile")
        if side < ov + MIN_CORE:
            raise InputError(f"tile={side} is too small: tiles must be at least the overlap ({ov} px for this "
                             f"kernel) + {MIN_CORE}; use tile={ov + MIN_CORE} or more, or tile=auto")
        reason = f"tile={side}"
        batch = channels
        if side >= height and side >= width:
            return replace(whole, reason=f"tile={side} covers the image: untiled")
    lh, lw = extended_shape(height, width, (kh, kw))
    th, rows = _axis_tiles(lh, side, ov, _strip_middle(lh, height, boundary))
    tw, cols = _axis_tiles(lw, side, ov, _strip_middle(lw, width, boundary))
    return TilePlan(height, width, channels, batch, (lh, lw), (th, tw), ov, margin, rows, cols, reason)


def _strip_middle(period: int, size: int, boundary: str) -> int:
    """Position on the torus of the middle of the extension strip (a tile starts there)."""
    start = 0 if boundary == "liu" else (period - size) // 2  # where extend_for_deconv puts the image
    return (start + size + (period - size) // 2) % period


def _positive_int(value, what: str) -> int:
    try:
        number = int(value)
    except (TypeError, ValueError):
        raise InputError(f"{what} must be auto or a whole number of pixels, got {value!r}") from None
    if number != float(value) or number <= 0:
        raise InputError(f"{what} must be auto or a positive whole number of pixels, got {value!r}")
    return number


def _largest_side(budget: float, kernel_shape: tuple[int, int], bytes_per_pixel: float, minimum: int) -> int:
    """Largest square tile side whose estimated memory (one channel) fits ``budget`` (never below ``minimum``)."""
    if budget <= 0:
        return minimum
    side = int(math.sqrt(budget / bytes_per_pixel)) - max(kernel_shape) + 1
    while side > minimum and estimate_bytes(side, side, 1, kernel_shape, bytes_per_pixel) > budget:
        side -= max(8, side // 64)
    return max(side, minimum)


def extend_whole(image: Tensor, kernel_shape: tuple[int, int], boundary: str = "liu",
                 taper_iterations: int = 3, kernel: Tensor | None = None) -> tuple[Tensor, tuple[slice, slice]]:
    """The torus of a tiled restoration: ``image`` (C, H, W) extended as an untiled restoration would be.

    ``liu``: the Liu-Jia harmonic fill, computed on two thin proxies of the image (its top and bottom bands
    for the bottom strip and corner, its left and right bands for the right strip) instead of the whole
    image, whose sparse system would need ~230 bytes per pixel (2.8 GB for 12 megapixels). The harmonic
    fill depends on the image only through its border rows and columns, and what a proxy changes (the
    seam where its two bands meet) is ``3 x strip width`` away from the part kept, where its influence has
    decayed by ``exp(-3 pi)``: the strips agree with the whole-image fill to ~1e-4. Other boundaries use
    :func:`~podm_cli.physics.extend_for_deconv` one channel at a time.
    """
    from podm_cli.physics import extend_for_deconv

    h, w = (int(s) for s in image.shape[-2:])
    lh, lw = extended_shape(h, w, kernel_shape)
    if boundary != "liu":
        parts = [extend_for_deconv(image[c:c + 1, None], kernel, method=boundary, taper_iterations=taper_iterations)
                 for c in range(image.shape[0])]
        return torch.cat([e[:, 0] for e, _ in parts]), parts[0][1]
    from podm_cli.physics.boundary import wrap_boundary_liu

    sh, sw = lh - h, lw - w
    out = torch.empty(image.shape[0], lh, lw, dtype=image.dtype)
    out[:, :h, :w] = image
    band_rows, band_cols = 3 * max(sw, 8), 3 * max(sh, 8)
    # bottom strip + corner: from the top and bottom bands (the fill's only contact with the image's rows)
    rows = torch.cat([image[:, :band_rows], image[:, h - band_rows:]], 1) if 2 * band_rows < h else image
    ext = wrap_boundary_liu(rows, (rows.shape[1] + sh, lw))
    out[:, h:, :] = ext[:, rows.shape[1]:, :]
    # right strip: from the left and right bands
    cols = torch.cat([image[..., :band_cols], image[..., w - band_cols:]], 2) if 2 * band_cols < w else image
    ext = wrap_boundary_liu(cols, (h + sh, cols.shape[2] + sw))
    out[:, :h, w:] = ext[:, :h, cols.shape[2]:]
    return out, (slice(0, h), slice(0, w))


def blend_tiles(
    image: Tensor,
    plan: TilePlan,
    restore: Callable[[Tensor], Tensor],
    extend: Callable[[Tensor], tuple[Tensor, tuple[slice, slice]]],
    on_tile: Callable[[int, int], None] | None = None,
    stages: StageBlender | None = None,
) -> Tensor:
    """Restore ``image`` (C, H, W) as ``plan`` says and return the result (C, H, W).

    ``restore(part) -> part`` restores a (C, h, w) ``valid`` observation; ``extend(image) -> (image_ext,
    crop)`` is the method's boundary extension (the torus). ``on_tile(done, total)`` reports progress;
    ``stages`` (fed by the method while ``restore`` runs) are blended like the result.
    """
    if not plan.tiled:
        out = restore(image)
        if stages is not None:
            stages.add_tile(None, None, None, out)
        if on_tile is not None:
            on_tile(1, 1)
        return out
    torus, crop = extend(image)
    if tuple(torus.shape[-2:]) != plan.torus:
        raise RuntimeError(f"tile plan for a {plan.torus} extension, got {tuple(torus.shape[-2:])}")
    c = image.shape[0]
    acc = torch.zeros(c, *plan.torus, dtype=torch.float32)
    wsum = torch.zeros(plan.torus, dtype=torch.float32)
    total = plan.n_tiles
    for done, (ri, ci, w) in enumerate(plan.tiles(), start=1):
        rr, cc = ri[:, None], ci[None, :]
        x = restore(torus[:, rr, cc]).to(torch.float32)
        if stages is not None:
            stages.add_tile(rr, cc, w, x, final_acc=acc)
        acc[:, rr, cc] += x * w
        wsum[rr, cc] += w
        if on_tile is not None:
            on_tile(done, total)
    if not bool((wsum[crop[0], crop[1]] > 0).all()):
        raise InputError("the tiles leave pixels uncovered (tile too small for this overlap); use tile=auto")
    if stages is not None:
        stages.finish(wsum, crop)
    return (acc / wsum.clamp_min(1e-12))[:, crop[0], crop[1]].contiguous()


class StageBlender:
    """Collects the per-stage estimates of each tile and blends them like the final result.

    While a tile is restored, :meth:`collect` is the method call's ``on_stage`` (with :attr:`channels`
    telling which channels the call restores). A tile or channel that stopped before a stage (PODM stops at
    its tolerance) contributes its final estimate to the later stages. Each stage costs one float32 image;
    past ``ram_bytes`` in total the buffers are memory-mapped files in a temporary folder in ``spill_dir``
    (removed by :meth:`close`), so many stages of a large image cannot exhaust memory.
    """

    def __init__(self, ram_bytes: float, spill_dir=None):
        self.ram_bytes = float(ram_bytes)
        self.spill_dir = spill_dir
        self.channels: tuple[int, int] = (0, 1)  # channels [lo, hi) of the current call
        self._used = 0.0
        self._tmp = None
        self._count = 0
        self.acc: list[Tensor] = []  # per stage: the weighted sum on the torus, or the estimate (untiled)
        self._wsum: Tensor | None = None
        self._crop: tuple[slice, slice] | None = None
        self._current: dict[int, Tensor] = {}
        self._filled: dict[int, set[int]] = {}
        self._current_ram = 0.0

    # -- while a tile runs ---------------------------------------------------------------------------
    def start_tile(self, shape: tuple[int, int, int]) -> None:
        """The next tile's stages are (C, h, w) = ``shape``."""
        self._shape = tuple(shape)

    def collect(self, index: int, x: Tensor) -> None:
        """``on_stage``: keep stage ``index``'s estimate of the current call (a (c, 1, h, w) batch)."""
        lo, hi = self.channels
        x = x.detach().to("cpu", torch.float32).reshape(hi - lo, *x.shape[-2:]).clamp(0, 1)  # as the result
        buf = self._current.get(int(index))
        if buf is None:
            buf, in_ram = self._buffer(self._shape)
            self._current_ram += buf.numel() * 4 if in_ram else 0
            self._current[int(index)] = buf
            self._filled[int(index)] = set()
        buf[lo:hi] = x
        self._filled[int(index)].update(range(lo, hi))

    # -- after a tile ---------------------------------------------------------------------------------
    def add_tile(self, rows, cols, weight: Tensor | None, final: Tensor, final_acc: Tensor | None = None) -> None:
        """Blend the current tile's stages at ``rows x cols`` with ``weight`` (``None``: untiled)."""
        stages = []
        for i in sorted(self._current):
            buf = self._current[i]
            for ch in set(range(buf.shape[0])) - self._filled[i]:  # this channel had stopped already
                buf[ch] = final[ch]
            stages.append(buf)
        self._current, self._filled = {}, {}
        if weight is None:
            self.acc = stages
            return
        for s in range(max(len(stages), len(self.acc))):
            if s >= len(self.acc):  # a new stage: the earlier tiles contribute their final estimates
                buf, _ = self._buffer(tuple(final_acc.shape))
                buf.copy_(final_acc)
                self.acc.append(buf)
            est = stages[s] if s < len(stages) else final
            self.acc[s][:, rows, cols] += est * weight
        self._used -= self._current_ram
        self._current_ram = 0.0

    def finish(self, wsum: Tensor, crop: tuple[slice, slice]) -> None:
        self._wsum, self._crop = wsum, crop

    def _buffer(self, shape) -> tuple[Tensor, bool]:
        nbytes = math.prod(shape) * 4
        self._count += 1
        if self._used + nbytes <= self.ram_bytes:
            self._used += nbytes
            return torch.zeros(tuple(shape), dtype=torch.float32), True
        import tempfile
        from pathlib import Path

        import numpy as np

        if self._tmp is None:
            self._tmp = tempfile.TemporaryDirectory(prefix=".podm-stages-", dir=self.spill_dir)
        path = Path(self._tmp.name) / f"buffer{self._count:04d}.npy"
        array = np.lib.format.open_memmap(path, mode="w+", dtype=np.float32, shape=tuple(shape))
        return torch.from_numpy(array), False

    def __len__(self) -> int:
        return len(self.acc)

    def stages(self) -> Iterator[Tensor]:
        """The blended estimate (C, H, W) of each stage, in order."""
        for acc in self.acc:
            if self._wsum is None:
                yield acc
            else:
                r, c = self._crop
                yield acc[:, r, c] / self._wsum[r, c]

    def close(self) -> None:
        self.acc, self._current = [], {}
        if self._tmp is not None:
            self._tmp.cleanup()
            self._tmp = None
