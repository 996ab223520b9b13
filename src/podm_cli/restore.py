"""Restore a user's own blurry image files with a known kernel (the library behind ``podm deblur``).

Real photographs are ``valid`` observations (the scene continues beyond the frame), so methods extend
them (Liu-Jia wrap-around by default) before their FFT solves. Colour images are restored channel by
channel with the same kernel, or on the luminance only (``color="ycbcr"``). Every check on the inputs
happens before any work, and outputs are written atomically: a failure never leaves a file behind.
"""

from __future__ import annotations

import glob
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import torch

from podm_cli.errors import InputError
from podm_cli.imageio import read_image, write_image
from podm_cli.kernels import load_kernel, validate_kernel
from podm_cli.methods.base import Method
from podm_cli.noise_level import estimate_noise_sigma

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".tif", ".tiff", ".bmp")
OUTPUT_TAG = "_podm"


@dataclass
class DeblurJob:
    image: Path
    kernel: Path
    output: Path


@dataclass
class DeblurResult:
    image: Path
    output: Path
    size: tuple[int, ...]
    seconds: float
    sigma: float


def expand_inputs(items: list[str]) -> list[Path]:
    """Files, folders (their images, sorted) and glob patterns -> image paths (restored outputs skipped)."""
    paths: list[Path] = []
    for item in items:
        p = Path(item)
        if p.is_dir():
            found = sorted(q for q in p.iterdir() if q.suffix.lower() in IMAGE_SUFFIXES)
        elif any(ch in item for ch in "*?["):
            found = sorted(Path(q) for q in glob.glob(item))
            if not found:
                raise InputError(f"no file matches {item}")
        elif p.exists():
            found = [p]
        else:
            raise InputError(f"image not found: {item}")
        paths += [q for q in found if q.is_file() and not _is_companion(q)]
    if not paths:
        raise InputError("no input image given (podm deblur IMAGE [IMAGE|DIR|GLOB ...] kernel=K)")
    return list(dict.fromkeys(paths))


def _is_companion(path: Path) -> bool:
    """Kernel images beside the photos and our own outputs are not inputs."""
    stem = path.stem.lower()
    return stem.endswith(("_kernel", "_psf")) or stem.endswith(OUTPUT_TAG)


def plan_jobs(images: list[Path], kernel: str | None, out_dir: str | None, overwrite: bool) -> list[DeblurJob]:
    """Pair each image with its kernel and output path, refusing what cannot succeed before any work."""
    jobs = []
    for image in images:
        if kernel is not None:
            kernel_path = Path(kernel)
        else:
            kernel_path = image.with_name(f"{image.stem}_kernel.png")
            if not kernel_path.exists():
                raise InputError(f"no kernel for {image}: pass kernel=FILE or put {kernel_path.name} beside it")
        if not kernel_path.is_file():
            raise InputError(f"kernel file not found: {kernel_path}")
        folder = Path(out_dir) if out_dir else image.parent
        output = folder / f"{image.stem}{OUTPUT_TAG}{image.suffix}"
        if output.exists() and not overwrite:
            raise InputError(f"{output} exists (pass overwrite=true to replace it)")
        _check_writable(folder)
        jobs.append(DeblurJob(image, kernel_path, output))
    return jobs


def _check_writable(folder: Path) -> None:
    """Create ``folder`` if needed and prove a file can be written there (root ignores permission bits)."""
    try:
        folder.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=folder, prefix=".podm-write-test-"):
            pass
    except OSError as exc:
        raise InputError(f"cannot write to output folder {folder}: {exc.strerror or exc}") from None


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


def restore_image(
    image: torch.Tensor, kernel: torch.Tensor, method: Method, sigma: float | str = "auto",
    color: str = "rgb", device: str = "cpu",
) -> tuple[torch.Tensor, float]:
    """Restore a (C, H, W) image in [0, 1]; returns (restored (C, H, W), sigma used)."""
    if color not in ("rgb", "ycbcr"):
        raise InputError(f"color must be rgb or ycbcr, got {color!r}")
    work = image
    luminance_only = color == "ycbcr" and image.shape[0] == 3
    if luminance_only:
        work = _rgb_to_ycbcr(image)[:1]
    y = work.unsqueeze(1).to(device=device, dtype=torch.float32)  # channels as a batch of grey images
    if sigma == "auto":
        sigma_value = float(estimate_noise_sigma(y).mean())
    else:
        sigma_value = float(sigma)
    sigma_value = max(sigma_value, 1e-4)
    x = method(y, kernel.to(device=device, dtype=torch.float32), sigma_value, mode="valid")
    x = x.squeeze(1).clamp(0, 1).cpu()
    if luminance_only:
        ycc = _rgb_to_ycbcr(image)
        ycc[0] = x[0]
        x = _ycbcr_to_rgb(ycc).clamp(0, 1)
    return x, sigma_value


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


def run_job(job: DeblurJob, method: Method, sigma, color: str, device: str, overwrite: bool) -> DeblurResult:
    image, bit_depth = read_image(job.image, mode="keep")
    kernel = validate_kernel(load_kernel(job.kernel), image_shape=tuple(image.shape[-2:]), name=str(job.kernel))
    start = time.perf_counter()
    restored, sigma_used = restore_image(image, kernel, method, sigma, color, device)
    seconds = time.perf_counter() - start
    job.output.parent.mkdir(parents=True, exist_ok=True)
    write_image(job.output, restored, bit_depth=bit_depth if job.output.suffix.lower() not in (".jpg", ".jpeg") else 8,
                overwrite=overwrite)
    return DeblurResult(job.image, job.output, tuple(image.shape), seconds, sigma_used)
