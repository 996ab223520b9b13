"""Restore a user's own blurry image files with a known kernel (the library behind ``podm deblur``).

Real photographs are ``valid`` observations (the scene continues beyond the frame), so methods extend
them (Liu-Jia wrap-around by default) before their FFT solves. Colour images are restored channel by
channel with the same kernel, or on the luminance only (``color="ycbcr"``). Images larger than a memory
budget are restored in overlapping tiles with blended seams (:mod:`podm_cli.tiling`). 8- and 16-bit
PNG/TIFF and JPEG are read; the result keeps the input's format and bit depth (JPEG: 8 bits).

Every check on the inputs (files, kernels, output folders, existing outputs) happens before any work, and
outputs are written atomically: a failure never leaves a file behind.

Example (a stand-in method; real ones come from ``configs/method/``)::

    >>> import torch
    >>> from podm_cli.methods.base import Method
    >>> class Identity(Method):
    ...     name = "identity"
    ...     def restore(self, data, sigma, on_stage=None):
    ...         return data.initial()
    >>> x, sigma = restore_image(torch.rand(3, 40, 50), torch.ones(5, 5) / 25, Identity(), sigma=0.01)
    >>> tuple(x.shape), sigma
    ((3, 40, 50), 0.01)
"""

from __future__ import annotations

import glob
import math
import re
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import torch

from podm_cli.errors import InputError
from podm_cli.imageio import image_size, read_image, write_image
from podm_cli.kernels import load_kernel, validate_kernel
from podm_cli.methods.base import Method
from podm_cli.noise_level import estimate_noise_sigma
from podm_cli.tiling import (
    FIXED_BYTES_PER_PIXEL,
    StageBlender,
    TilePlan,
    blend_tiles,
    estimate_bytes,
    extend_whole,
    memory_per_pixel,
    plan_tiles,
)

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".tif", ".tiff", ".bmp")
OUTPUT_TAG = "podm"  # output name tag when no method name is given: <stem>_podm.<ext>
STAGE_TAG = "_stage"
#: Kernel files looked for beside an image (``IMAGE_kernel.png`` first) or in ``kernel=DIR``.
KERNEL_SUFFIXES = (".png", ".tif", ".tiff", ".bmp", ".npy", ".npz", ".mat", ".txt", ".csv", ".dlm")
DEFAULT_MEMORY_BUDGET_MB = 2048.0


@dataclass
class DeblurJob:
    image: Path
    kernel: Path
    output: Path
    kernel_index: int | None = None  # which kernel of a file holding several (0-based)
    skip: bool = False  # the output exists and skip_existing was asked for

    @property
    def stage_pattern(self) -> str:
        """Glob of this job's stage files (``<stem>_podm_stage*<ext>``)."""
        return f"{glob.escape(self.output.stem)}{STAGE_TAG}*{self.output.suffix}"

    def stage_path(self, number: int, width: int = 2) -> Path:
        return self.output.with_name(f"{self.output.stem}{STAGE_TAG}{number:0{width}d}{self.output.suffix}")


@dataclass
class DeblurOptions:
    """How ``podm deblur`` restores each image (the config keys of ``configs/deblur.yaml``)."""

    sigma: float | str = "auto"
    noise_floor: float = 0.0  # floor of an automatic sigma (model error of estimated kernels, see configs)
    color: str = "rgb"
    device: str = "cpu"
    tile: int | str | None = "auto"
    overlap: int | str = "auto"
    memory_budget_mb: float = DEFAULT_MEMORY_BUDGET_MB
    save_stages: bool = False
    overwrite: bool = False
    skip_existing: bool = False


@dataclass
class DeblurResult:
    image: Path
    output: Path
    size: tuple[int, ...]
    seconds: float
    sigma: float
    bit_depth: int = 8
    tiles: int = 1
    sigma_auto: bool = False
    sigma_estimate: float | None = None  # the noise estimate, when sigma=auto
    stage_files: list[Path] = field(default_factory=list)

    def summary(self, method: str = "") -> str:
        """The one-line report of ``podm deblur`` for this image."""
        c, h, w = self.size
        parts = [f"{self.image} -> {self.output}", f"{w}x{h}x{c} {self.bit_depth}-bit"]
        if method:
            parts.append(method)
        parts.append(f"{self.seconds:.2f} s")
        note = ""
        if self.sigma_auto:
            floored = self.sigma_estimate is not None and self.sigma_estimate < self.sigma
            note = f" (auto: estimate {self.sigma_estimate * 255:.2f}, raised to noise_floor)" if floored else " (auto)"
        parts.append(f"sigma {self.sigma * 255:.2f}/255{note}")
        if self.tiles > 1:
            parts.append(f"{self.tiles} tiles")
        if self.stage_files:
            parts.append(f"{len(self.stage_files)} stage files")
        return "  ".join(parts)


# ------------------------------------------------------------------------------------------- inputs
def expand_inputs(items: list[str], output_tags: tuple[str, ...] = (OUTPUT_TAG,)) -> list[Path]:
    """Files, folders (their images, sorted) and glob patterns -> image paths.

    Inside folders and glob matches, kernel images (``*_kernel.*``, ``*_psf.*``) and podm's own outputs
    are skipped: ``<stem>_<tag>.*`` and ``<stem>_<tag>_stageNN.*`` for a method name in ``output_tags``
    when ``<stem>.*`` is among the images; a file named explicitly is always taken.
    """
    paths: list[Path] = []
    for item in items:
        p = Path(item)
        if p.is_dir():
            found = sorted(q for q in p.iterdir() if q.suffix.lower() in IMAGE_SUFFIXES)
            found = _drop_companions(found, output_tags)
        elif any(ch in item for ch in "*?[") and not p.exists():
            found = sorted(Path(q) for q in glob.glob(item))
            if not found:
                raise InputError(f"no file matches {item}")
            found = _drop_companions(found, output_tags)
        elif p.exists():
            found = [p]
        else:
            raise InputError(f"image not found: {item}")
        paths += [q for q in found if q.is_file()]
    if not paths:
        raise InputError("no input image given (podm deblur IMAGE [IMAGE|DIR|GLOB ...] kernel=K)")
    return list(dict.fromkeys(paths))


def _drop_companions(found: list[Path], output_tags: tuple[str, ...]) -> list[Path]:
    """Kernel images beside the photos and our own outputs (``photo_hl.png`` beside ``photo.png``) are not
    inputs.

    >>> names = ["a.png", "a_hl.png", "a_podm_stage01.png", "b_hl.png", "c_kernel.png", "a_2.png"]
    >>> [p.name for p in _drop_companions([Path(n) for n in names], ("hl", "podm"))]
    ['a.png', 'b_hl.png', 'a_2.png']
    """
    stems = {(q.parent, q.stem) for q in found}
    tags = "|".join(re.escape(t) for t in sorted(output_tags, key=len, reverse=True))
    output = re.compile(rf"^(?P<stem>.+)_(?:{tags})({STAGE_TAG}\d+)?$") if tags else None

    def companion(q: Path) -> bool:
        if q.stem.lower().endswith(("_kernel", "_psf")):
            return True
        m = output.match(q.stem) if output else None
        return bool(m) and (q.parent, m.group("stem")) in stems

    return [q for q in found if not companion(q)]


def find_kernel(image: Path, kernel: str | None) -> Path:
    """The kernel file for ``image``: ``kernel`` itself (a file), a match in ``kernel`` (a folder), or the
    companion ``IMAGE_kernel.<ext>`` beside the image when ``kernel`` is None.

    In a folder, ``<stem>_kernel.<ext>``, ``<stem>_psf.<ext>`` and ``<stem>_<anything>_psf.<ext>`` are
    recognised (the last is the Lai et al. 2016 layout: ``kernels/boat1_09_cho_psf.png``); several
    candidates are an error, not a guess.
    """
    if kernel is not None:
        k = Path(kernel)
        if k.is_file():
            return k
        if not k.is_dir():
            raise InputError(f"kernel file not found: {k}")
        stem = glob.escape(image.stem)
        candidates = [q for pattern in (f"{stem}_kernel.*", f"{stem}_psf.*", f"{stem}_*_psf.*")
                      for q in sorted(k.glob(pattern)) if q.suffix.lower() in KERNEL_SUFFIXES]
        candidates = list(dict.fromkeys(candidates))
        if len(candidates) == 1:
            return candidates[0]
        if not candidates:
            raise InputError(f"no kernel for {image} in {k} (looked for {image.stem}_kernel.*, {image.stem}_psf.*, "
                             f"{image.stem}_*_psf.*)")
        raise InputError(f"several kernels for {image} in {k}: {', '.join(q.name for q in candidates)}; "
                         f"pass kernel=FILE")
    for suffix in KERNEL_SUFFIXES:
        companion = image.with_name(f"{image.stem}_kernel{suffix}")
        if companion.is_file():
            return companion
    raise InputError(f"no kernel for {image}: pass kernel=FILE (or a folder) or put {image.stem}_kernel.png "
                     f"beside it")


def parse_kernel_spec(kernel: str | None, kernel_index=None) -> tuple[str | None, int | None]:
    """``kernel=FILE`` with ``kernel_index=N``, or ``kernel=FILE:N``: (file, 0-based index or None).

    >>> parse_kernel_spec("Levin09.mat:3")
    ('Levin09.mat', 3)
    >>> parse_kernel_spec("k.png", 2)
    ('k.png', 2)
    """
    index = None
    if kernel_index is not None:
        index = _whole_number(kernel_index, "kernel_index must be a whole number >= 0 (0 = the first kernel)")
    if kernel is not None:
        kernel = str(kernel)
        match = re.fullmatch(r"(.+):(\d+)", kernel)
        if match and not Path(kernel).exists():
            if index is not None and index != int(match.group(2)):
                raise InputError(f"kernel={kernel} and kernel_index={index} disagree: give the index once")
            kernel, index = match.group(1), int(match.group(2))
    return kernel, index


def _load_job_kernel(path: Path, index: int | None) -> torch.Tensor:
    """The job's kernel; a file holding several needs an index, which the message says how to give."""
    try:
        return load_kernel(path, index)
    except InputError as exc:
        text = str(exc)
        if "choose one with an index" in text or "out of range" in text:
            raise InputError(f"{text.rstrip('.')} (kernel={path}:INDEX or kernel_index=INDEX, 0-based)") from None
        raise


def plan_jobs(images: list[Path], kernel: str | None, out_dir: str | None, overwrite: bool,
              save_stages: bool = False, *, tag: str = OUTPUT_TAG, skip_existing: bool = False,
              kernel_index: int | None = None) -> list[DeblurJob]:
    """Pair each image with its kernel and output path (``<stem>_<tag><ext>``, ``tag`` = the method's name),
    refusing what cannot succeed before any work.

    Every kernel is loaded and validated here (empty, all-zero, NaN, negative; ``kernel_index`` picks one
    of a file holding several, as does ``kernel=FILE:INDEX``), every output folder is proven writable, and
    existing outputs (and stage files with ``save_stages``) are refused unless ``overwrite``, or their jobs
    marked ``skip`` with ``skip_existing``. Decoding the images is :func:`check_jobs`'s part.
    """
    kernel, kernel_index = parse_kernel_spec(kernel, kernel_index)
    jobs: list[DeblurJob] = []
    checked_kernels: set[Path] = set()
    checked_folders: set[Path] = set()
    outputs: dict[Path, Path] = {}
    for image in images:
        kernel_path = find_kernel(image, kernel)
        if kernel_path not in checked_kernels:
            _load_job_kernel(kernel_path, kernel_index)  # raises InputError with the file's name
            checked_kernels.add(kernel_path)
        folder = Path(out_dir) if out_dir else image.parent
        output = folder / f"{image.stem}_{tag}{image.suffix}"
        if output.resolve() in outputs:
            raise InputError(f"{image} and {outputs[output.resolve()]} would both be written to {output}; "
                             f"restore them in separate runs or with different out=")
        outputs[output.resolve()] = image
        job = DeblurJob(image, kernel_path, output, kernel_index)
        if output.exists() and not overwrite:
            if not skip_existing:
                raise InputError(f"{output} exists (pass overwrite=true to replace it, or skip_existing=true)")
            job.skip = True
        if save_stages and not overwrite and not job.skip:
            existing = sorted(folder.glob(job.stage_pattern)) if folder.is_dir() else []
            if existing:
                raise InputError(f"{existing[0]} exists (pass overwrite=true to replace the stage files)")
        if folder not in checked_folders and not job.skip:
            _check_writable(folder)
            checked_folders.add(folder)
        jobs.append(job)
    return jobs


def required_memory_mb(image_shape: tuple[int, int, int], kernel_shape: tuple[int, int], bytes_per_sample: int,
                       plan: TilePlan, bytes_per_pixel: float) -> float:
    """Peak memory (MB) of restoring one ``(C, H, W)`` image with ``plan``: the larger of decoding it
    (the file's samples, a float32 copy and its channel-first copy) and restoring it (whole-image buffers,
    :data:`~podm_cli.tiling.FIXED_BYTES_PER_PIXEL` per pixel and channel, plus one method call on a tile
    or on ``plan.channel_batch`` channels of the whole image).

    >>> plan = plan_tiles(1000, 1000, 1, (15, 15), 400.0, tile=None)
    >>> round(required_memory_mb((1, 1000, 1000), (15, 15), 1, plan, 400.0))
    427
    """
    c, h, w = image_shape
    decode = h * w * c * (bytes_per_sample + 4 + 4)
    if plan.tiled:
        work = estimate_bytes(plan.tile[0], plan.tile[1], 1, kernel_shape, bytes_per_pixel)
    else:
        work = estimate_bytes(h, w, plan.channel_batch, kernel_shape, bytes_per_pixel)
    restore = FIXED_BYTES_PER_PIXEL * plan.channels * h * w + work
    return max(decode, restore) / 2**20


def check_jobs(jobs: list[DeblurJob], method: Method, options: DeblurOptions) -> None:
    """Decode and check every input of a batch before the first restoration (all or nothing): each image
    is decoded in full (a damaged file fails here), its kernel checked against its size, and the memory
    it needs compared with ``options.memory_budget_mb`` (from the file's header, before decoding)."""
    budget = float(options.memory_budget_mb)
    for job in jobs:
        if job.skip:
            continue
        kernel = _load_job_kernel(job.kernel, job.kernel_index)
        channels, height, width, itemsize = image_size(job.image)
        plan = tile_plan((channels, height, width), kernel, method, options.color, options.tile, options.overlap,
                         budget)
        need = required_memory_mb((channels, height, width), tuple(kernel.shape[-2:]), itemsize, plan,
                                  memory_per_pixel(method))
        if need > budget:
            raise InputError(
                f"{job.image} ({width}x{height}x{channels}) needs about {math.ceil(need)} MB to restore with "
                f"{method.name}, over memory_budget_mb={budget:g}: raise memory_budget_mb to "
                f"{math.ceil(need)} or more, or crop or downscale the image")
        image, _ = read_image(job.image, mode="keep")
        validate_kernel(kernel, image_shape=tuple(image.shape[-2:]), name=str(job.kernel))
        del image


def _check_writable(folder: Path) -> None:
    """Create ``folder`` if needed and prove a file can be written there (root ignores permission bits)."""
    try:
        folder.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=folder, prefix=".podm-write-test-"):
            pass
    except OSError as exc:
        raise InputError(f"cannot write to output folder {folder}: {exc.strerror or exc}") from None


def parse_sigma(value) -> float | str:
    """``auto`` or a noise level on [0, 1] (values above 1 are read as 0..255 and refused)."""
    if isinstance(value, str) and value.strip().lower() == "auto":
        return "auto"
    try:
        sigma = float(value)
    except (TypeError, ValueError):
        raise InputError(f"sigma must be a number in [0, 1] or auto, got {value!r}") from None
    if not (0.0 <= sigma <= 1.0) or sigma != sigma:
        raise InputError(f"sigma must be in [0, 1] (on the image's [0, 1] scale, e.g. 0.01), got {value}")
    return sigma


def parse_tile(value) -> int | str | None:
    """``auto``, ``0`` / ``none`` / ``off`` (never tile) or a tile side in pixels."""
    if value is None or value is False:
        return None
    if isinstance(value, str):
        v = value.strip().lower()
        if v == "auto":
            return "auto"
        if v in ("none", "off", "null", "0", "false"):
            return None
    return _whole_number(value, "tile must be auto, 0 (never tile) or a positive tile side in pixels") or None


def _whole_number(value, message: str) -> int:
    """``value`` as an int >= 0, or ``InputError(f"{message}, got {value!r}")``."""
    try:
        number = int(value)
        whole = number >= 0 and number == float(value)
    except (TypeError, ValueError):
        whole = False
    if not whole:
        raise InputError(f"{message}, got {value!r}") from None
    return number


# --------------------------------------------------------------------------------------- restoring
def _rgb_to_ycbcr(x: torch.Tensor) -> torch.Tensor:
    r, g, b = x[0], x[1], x[2]
    y = 0.299 * r + 0.587 * g + 0.114 * b
    return torch.stack([y, (b - y) * 0.564 + 0.5, (r - y) * 0.713 + 0.5])


def _ycbcr_to_rgb(x: torch.Tensor) -> torch.Tensor:
    y, cb, cr = x[0], x[1] - 0.5, x[2] - 0.5
    r = y + 1.403 * cr
    b = y + 1.773 * cb
    g = (y - 0.299 * r - 0.114 * b) / 0.587
    return torch.stack([r, g, b])


def tile_plan(image_shape: tuple[int, ...], kernel_shape: tuple[int, int] | torch.Tensor, method: Method,
              color: str = "rgb",
              tile: int | str | None = "auto", overlap: int | str = "auto",
              memory_budget_mb: float = DEFAULT_MEMORY_BUDGET_MB) -> TilePlan:
    """How :func:`restore_image` restores a ``(C, H, W)`` image (see :func:`podm_cli.tiling.plan_tiles`).

    ``kernel_shape`` may be the kernel itself: the automatic overlap then follows how far it reaches.
    """
    c, h, w = image_shape
    channels = 1 if color == "ycbcr" and c == 3 else c
    kernel = kernel_shape if isinstance(kernel_shape, torch.Tensor) else None
    shape = tuple(kernel.shape[-2:]) if kernel is not None else tuple(kernel_shape)
    return plan_tiles(h, w, channels, shape, memory_per_pixel(method), tile, overlap, memory_budget_mb,
                      boundary=method.boundary_handling.extension, kernel=kernel)


def restore_image(
    image: torch.Tensor, kernel: torch.Tensor, method: Method, sigma: float | str = "auto",
    color: str = "rgb", device: str = "cpu", *, tile: int | str | None = "auto", overlap: int | str = "auto",
    memory_budget_mb: float = DEFAULT_MEMORY_BUDGET_MB, plan: TilePlan | None = None,
    stages: StageBlender | None = None, on_tile: Callable[[int, int], None] | None = None,
    noise_floor: float = 0.0, info: dict | None = None,
) -> tuple[torch.Tensor, float]:
    """Restore a (C, H, W) image in [0, 1]; returns (restored (C, H, W), sigma used).

    ``sigma="auto"`` estimates the noise level once on the whole image (so every tile uses the same one),
    raised to ``noise_floor`` if lower (``info["sigma_estimate"]`` keeps the estimate).
    ``plan`` (else ``tile``/``overlap``/``memory_budget_mb``) decides the tiling (:mod:`podm_cli.tiling`);
    ``stages`` collects each stage's estimate of methods that have stages (their ``on_stage`` reports);
    ``on_tile(done, total)`` reports progress.
    """
    if color not in ("rgb", "ycbcr"):
        raise InputError(f"color must be rgb or ycbcr, got {color!r}")
    work = image
    luminance_only = color == "ycbcr" and image.shape[0] == 3
    if luminance_only:
        work = _rgb_to_ycbcr(image)[:1]
    work = work.to(torch.float32)
    if sigma == "auto":
        estimate = float(estimate_noise_sigma(work.unsqueeze(1)).mean())
        if info is not None:
            info["sigma_estimate"] = estimate
        sigma_value = max(estimate, float(noise_floor))
    else:
        sigma_value = float(sigma)
    sigma_value = max(sigma_value, 1e-4)
    if plan is None:
        plan = tile_plan(tuple(image.shape), kernel, method, color, tile, overlap, memory_budget_mb)
    kernel_dev = kernel.to(device=device, dtype=torch.float32)

    def restore(part: torch.Tensor) -> torch.Tensor:
        """(C, h, w) valid observation -> (C, h, w) estimate, ``plan.channel_batch`` channels per call."""
        if stages is not None:
            stages.start_tile(tuple(part.shape))
        out = []
        for lo in range(0, part.shape[0], plan.channel_batch):
            hi = min(lo + plan.channel_batch, part.shape[0])
            if stages is not None:
                stages.channels = (lo, hi)
            y = part[lo:hi].unsqueeze(1).to(device=device, dtype=torch.float32)  # channels as a batch
            x = method(y, kernel_dev, sigma_value, mode="valid",
                       on_stage=stages.collect if stages is not None else None)
            out.append(x.squeeze(1).to("cpu", torch.float32).clamp(0, 1))
        return torch.cat(out) if len(out) > 1 else out[0]

    def extend(whole: torch.Tensor):
        return extend_whole(whole, tuple(kernel.shape[-2:]), method.boundary_handling.extension,
                            method.edgetaper_iterations, kernel.to(torch.float32))

    x = blend_tiles(work, plan, restore, extend, on_tile=on_tile, stages=stages)
    return finish_colour(x, image, luminance_only), sigma_value


def finish_colour(x: torch.Tensor, image: torch.Tensor, luminance_only: bool) -> torch.Tensor:
    """Clip a restored work image to [0, 1]; with ``luminance_only`` put it back with ``image``'s chroma."""
    x = x.clamp(0, 1)
    if not luminance_only:
        return x
    ycc = _rgb_to_ycbcr(image.to(torch.float32))
    ycc[0] = x[0]
    return _ycbcr_to_rgb(ycc).clamp(0, 1)


def run_job(job: DeblurJob, method: Method, options: DeblurOptions | None = None, *,
            on_tile: Callable[[int, int], None] | None = None,
            on_plan: Callable[[TilePlan], None] | None = None) -> DeblurResult:
    """Read, restore and write one image (and its stage files); nothing is left behind on failure.

    ``on_plan(plan)`` is called once the tiles are known (before any work), ``on_tile(done, total)`` after
    each tile.
    """
    options = options or DeblurOptions()
    image, bit_depth = read_image(job.image, mode="keep")
    kernel = validate_kernel(_load_job_kernel(job.kernel, job.kernel_index), image_shape=tuple(image.shape[-2:]), name=str(job.kernel))
    plan = tile_plan(tuple(image.shape), kernel, method, options.color, options.tile, options.overlap,
                     options.memory_budget_mb)
    if on_plan is not None:
        on_plan(plan)
    stages = None
    if options.save_stages:
        ram = max(float(options.memory_budget_mb) * 2**20 / 2, 0.0)
        stages = StageBlender(ram_bytes=ram, spill_dir=job.output.parent)
    try:
        start = time.perf_counter()
        info: dict = {}
        restored, sigma_used = restore_image(image, kernel, method, options.sigma, options.color, options.device,
                                             plan=plan, stages=stages, on_tile=on_tile,
                                             noise_floor=options.noise_floor, info=info)
        seconds = time.perf_counter() - start
        depth = 8 if job.output.suffix.lower() in (".jpg", ".jpeg", ".bmp") else bit_depth
        written: list[Path] = []
        try:
            if stages is not None and len(stages):
                luminance_only = options.color == "ycbcr" and image.shape[0] == 3
                width = max(2, len(str(len(stages))))
                for number, estimate in enumerate(stages.stages(), start=1):
                    path = job.stage_path(number, width)
                    write_image(path, finish_colour(estimate, image, luminance_only), bit_depth=depth,
                                overwrite=options.overwrite)
                    written.append(path)
            job.output.parent.mkdir(parents=True, exist_ok=True)
            write_image(job.output, restored, bit_depth=depth, overwrite=options.overwrite)
        except BaseException:
            for path in written:  # all or nothing: stage files of a failed job are removed
                path.unlink(missing_ok=True)
            raise
        if stages is not None and options.overwrite:
            _remove_stale_stages(job, keep=set(written))
    finally:
        if stages is not None:
            stages.close()
    return DeblurResult(job.image, job.output, tuple(image.shape), seconds, sigma_used, bit_depth=depth,
                        tiles=plan.n_tiles, sigma_auto=options.sigma == "auto",
                        sigma_estimate=info.get("sigma_estimate"), stage_files=written)


def _remove_stale_stages(job: DeblurJob, keep: set[Path]) -> None:
    """After an overwrite, stage files of an earlier, longer run would be mistaken for this run's."""
    pattern = re.compile(rf"{re.escape(job.output.stem)}{STAGE_TAG}\d+{re.escape(job.output.suffix)}$")
    for path in job.output.parent.glob(job.stage_pattern):
        if path not in keep and pattern.fullmatch(path.name):
            path.unlink(missing_ok=True)
