"""Reading and writing images as ``(C, H, W)`` float tensors in ``[0, 1]``.

* :func:`read_image` reads PNG (8/16-bit), JPEG, TIFF (8/16-bit and float), BMP and whatever else Pillow
  opens, grey or colour.  Alpha is dropped, palette images become RGB, and grey is made from colour with
  the ITU-R BT.601 luma weights (computed in floating point, not Pillow's 8-bit ``convert("L")``).
  EXIF orientation is deliberately *not* applied: blur kernels are estimated on the stored pixels.
* :func:`write_image` writes 8/16-bit PNG and TIFF, 8-bit JPEG (quality 95) and BMP, atomically (a temp
  file in the target directory, then a rename) and never over an existing file unless asked to.

Pillow reads and writes 16-bit *colour* PNGs as 8-bit, so 16-bit PNGs are decoded and encoded with OpenCV
(``cv2.imdecode`` / ``cv2.imencode``, i.e. libpng), after Pillow's ``verify()`` has checked the file's
structure (chunk CRCs, a complete file).

Every user-caused failure (missing, unreadable, truncated, unsupported file; existing output; unwritable
directory) raises :class:`~podm_cli.errors.InputError` with a one-line message.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import numpy as np
import torch

from podm_cli.errors import InputError

__all__ = ["IMAGE_SUFFIXES", "image_size", "read_image", "write_image"]

#: File suffixes :func:`write_image` can write (lower case).
IMAGE_SUFFIXES = (".png", ".tif", ".tiff", ".jpg", ".jpeg", ".bmp")

_MODES = ("gray", "rgb", "keep")
_LUMA_601 = np.array([0.299, 0.587, 0.114])
_PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
_TIFF_MAGICS = (b"II*\x00", b"MM\x00*", b"II+\x00", b"MM\x00+")  # classic and BigTIFF


def _current_umask() -> int:
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


_UMASK = _current_umask()


# ----------------------------------------------------------------------------------------------- reading
def read_image(path, mode: str = "gray") -> tuple[torch.Tensor, int]:
    """Read an image file.

    Parameters
    ----------
    path
        Image file (PNG, JPEG, TIFF, BMP, ...); the format is recognised from the file's content.
    mode
        ``"gray"``: one channel (colour converted with BT.601 luma); ``"rgb"``: three channels (grey
        replicated); ``"keep"``: one channel for grey files, three for colour ones.

    Returns
    -------
    (image, bit_depth)
        ``image`` is a float32 tensor ``(C, H, W)`` in ``[0, 1]``; ``bit_depth`` is 8 or 16 (16 for 16-bit
        and floating-point files), the depth to write results back with.
    """
    if mode not in _MODES:
        raise ValueError(f"mode must be one of {_MODES}, got {mode!r}")
    # float32 samples (exactly the float64 values rounded once: an integer over 255 or 65535 is correctly
    # rounded either way) halve the peak memory of large images; the luma of colour is computed in float64.
    arr, bit_depth = _load_array(path, np.float64 if mode == "gray" else np.float32)
    if mode == "gray" and arr.shape[2] == 3:
        arr = (arr @ _LUMA_601)[:, :, None]
    elif mode == "rgb" and arr.shape[2] == 1:
        arr = np.repeat(arr, 3, axis=2)
    x = torch.from_numpy(np.ascontiguousarray(arr.transpose(2, 0, 1))).to(torch.float32)
    return x.clamp_(0.0, 1.0), bit_depth


def image_size(path) -> tuple[int, int, int, int]:
    """``(channels, height, width, bytes per sample)`` of an image file from its header, without decoding
    its pixels (channels as :func:`read_image` with ``mode="keep"`` returns them; alpha dropped).

    Used to refuse an image too large for a memory budget before decoding it.
    """
    p = Path(path)
    if not p.is_file():
        raise InputError(f"image file not found: {p}" if not p.exists() else f"not an image file: {p}")
    try:
        with open(p, "rb") as fh:
            head = fh.read(33)
    except OSError as e:
        raise InputError(f"cannot read image {p}: {e.strerror or e}") from e
    if head.startswith(_PNG_SIGNATURE) and len(head) >= 33 and head[12:16] == b"IHDR":
        width, height = int.from_bytes(head[16:20], "big"), int.from_bytes(head[20:24], "big")
        channels = 1 if head[25] in (0, 4) else 3
        return channels, height, width, 2 if head[24] == 16 else 1
    if head[:4] in _TIFF_MAGICS:
        import tifffile

        try:
            with tifffile.TiffFile(p) as tif:
                page = tif.pages[0]
                shape, itemsize = page.shape, np.dtype(page.dtype).itemsize
        except Exception as e:  # noqa: BLE001 - any parser failure is the file's
            raise InputError(f"cannot read TIFF image {p}: {_reason(e)}") from e
        if len(shape) == 2:
            (height, width), bands = shape, 1
        elif shape[-1] <= 4:
            height, width, bands = shape[-3], shape[-2], shape[-1]
        else:  # planar (separate) sample layout
            bands, height, width = shape[-3], shape[-2], shape[-1]
        return (1 if bands in (1, 2) else 3), int(height), int(width), itemsize
    from PIL import Image

    try:
        with _no_bomb_warning(), Image.open(p) as im:
            bands, (width, height), mode = len(im.getbands()), im.size, im.mode
    except Image.DecompressionBombError as e:
        raise InputError(f"image {p} is too large to decode safely: {_reason(e)}") from e
    except Exception as e:  # noqa: BLE001 - Pillow raises many kinds for a bad file
        raise InputError(f"cannot read image {p}: {_reason(e)}") from e
    itemsize = 4 if mode in ("I", "F") else 2 if mode.startswith("I;16") else 1
    return (1 if bands in (1, 2) and mode not in ("P", "PA") else 3), height, width, itemsize


def _no_bomb_warning():
    """Pillow's ``DecompressionBombWarning`` (images over ~89 megapixels) is not shown: podm checks the
    memory an image needs against ``memory_budget_mb`` itself and says so in its own words."""
    import warnings
    from contextlib import contextmanager

    from PIL import Image

    @contextmanager
    def quiet():
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            yield

    return quiet()


def _load_array(path, dtype=np.float64) -> tuple[np.ndarray, int]:
    """Decode ``path`` to a ``dtype`` ``(H, W, C)`` array in [0, 1] with C = 1 or 3 (alpha dropped)."""
    p = Path(path)
    if not p.exists():
        raise InputError(f"image file not found: {p}")
    if not p.is_file():
        raise InputError(f"not an image file (is a directory or special file): {p}")
    try:
        with open(p, "rb") as fh:
            head = fh.read(33)
    except OSError as e:
        raise InputError(f"cannot read image {p}: {e.strerror or e}") from e
    if not head:
        raise InputError(f"cannot read image {p}: the file is empty")

    if head.startswith(_PNG_SIGNATURE) and len(head) >= 33 and head[12:16] == b"IHDR" and head[24] == 16:
        arr, bit_depth = _read_png16(p, head[25], dtype)  # Pillow would drop 16-bit colour to 8 bits
    elif head[:4] in _TIFF_MAGICS:
        arr, bit_depth = _read_tiff(p, dtype)
    else:
        arr, bit_depth = _read_pillow(p, dtype)

    if arr.ndim == 2:
        arr = arr[:, :, None]
    if arr.shape[2] == 2:  # grey + alpha
        arr = arr[:, :, :1]
    elif arr.shape[2] == 4:  # RGBA
        arr = arr[:, :, :3]
    if arr.shape[2] not in (1, 3) or arr.shape[0] == 0 or arr.shape[1] == 0:
        raise InputError(f"unsupported image layout {arr.shape} in {p}")
    return arr, bit_depth


def _to_unit(a: np.ndarray, where: Path, dtype=np.float64) -> tuple[np.ndarray, int]:
    """Integer / bool / float sample array -> ``dtype`` in [0, 1] and its bit depth (8 or 16)."""
    if a.dtype == np.bool_:
        return a.astype(dtype), 8
    if a.dtype == np.uint8:
        out = a.astype(dtype)
        out /= 255.0
        return out, 8
    if a.dtype == np.uint16:
        out = a.astype(dtype)
        out /= 65535.0
        return out, 16
    if np.issubdtype(a.dtype, np.integer):
        # e.g. Pillow's 32-bit "I" mode (old 16-bit PNG path) or signed TIFF samples: assume 16-bit range.
        return (np.clip(a.astype(np.float64), 0, 65535) / 65535.0).astype(dtype, copy=False), 16
    if np.issubdtype(a.dtype, np.floating):
        a = a.astype(np.float64)
        if not np.isfinite(a).all():
            raise InputError(f"image {where} contains NaN or infinite values")
        return np.clip(a, 0.0, 1.0).astype(dtype, copy=False), 16
    raise InputError(f"unsupported sample type {a.dtype} in image {where}")


def _read_pillow(p: Path, dtype=np.float64) -> tuple[np.ndarray, int]:
    from PIL import Image

    try:
        with _no_bomb_warning():
            return _read_pillow_checked(p, dtype)
    except InputError:
        raise
    except Image.DecompressionBombError as e:
        raise InputError(f"image {p} is too large to decode safely: {_reason(e)}") from e
    except Exception as e:  # Pillow raises OSError, SyntaxError, ValueError, struct.error, zlib.error, ...
        raise InputError(f"cannot read image {p}: {_reason(e)}") from e


def _read_pillow_checked(p: Path, dtype) -> tuple[np.ndarray, int]:
    from PIL import Image

    with Image.open(p) as im:
        fmt = im.format
    if fmt == "PNG":
        # verify() checks every chunk's CRC and that the file is complete, independently of Pillow's
        # global LOAD_TRUNCATED_IMAGES switch; the image must be reopened afterwards.
        with Image.open(p) as im:
            im.verify()
    with Image.open(p) as im:
        im.load()  # force the full decode here: truncated data fails now, not later
        return _pillow_to_array(im, p, dtype)


def _pillow_to_array(im, p: Path, dtype=np.float64) -> tuple[np.ndarray, int]:
    mode = im.mode
    if mode == "1":
        im, mode = im.convert("L"), "L"
    elif mode in ("P", "PA"):
        has_alpha = mode == "PA" or "transparency" in im.info
        im = im.convert("RGBA" if has_alpha else "RGB")
        mode = im.mode
    elif mode not in ("L", "LA", "RGB", "RGBA", "I", "F") and not mode.startswith("I;16"):
        im, mode = im.convert("RGB"), "RGB"  # CMYK, YCbCr, LAB, HSV, RGBX, ...
    return _to_unit(np.asarray(im), p, dtype)


def _read_tiff(p: Path, dtype=np.float64) -> tuple[np.ndarray, int]:
    import tifffile

    try:
        a = tifffile.imread(p, key=0)
    except Exception as tiff_error:  # noqa: BLE001 - any decoder failure is the file's
        # tifffile needs the optional imagecodecs for some compressions (LZW, JPEG, ...): try Pillow.
        try:
            return _read_pillow(p, dtype)
        except InputError:
            raise InputError(f"cannot read TIFF image {p}: {_reason(tiff_error)}") from tiff_error
    a = np.asarray(a)
    if a.ndim == 3 and a.shape[-1] not in (1, 2, 3, 4) and a.shape[0] in (1, 2, 3, 4):
        a = np.moveaxis(a, 0, -1)  # planar (separate) sample layout
    if a.ndim not in (2, 3) or (a.ndim == 3 and a.shape[-1] not in (1, 2, 3, 4)):
        raise InputError(f"unsupported TIFF layout {a.shape} in {p} (expected H x W or H x W x 1..4)")
    return _to_unit(a, p, dtype)


def _reason(e: BaseException) -> str:
    """A one-line description of an exception."""
    text = str(e).strip().splitlines()
    return text[0] if text and text[0] else type(e).__name__


# ---------------------------------------------------------------------------------------- 16-bit PNG
def _read_png16(p: Path, colour_type: int, dtype=np.float64) -> tuple[np.ndarray, int]:
    """Decode a 16-bit PNG with OpenCV (libpng); returns RGB / grey (+ alpha) samples in [0, 1] and 16."""
    import cv2
    from PIL import Image

    try:
        # Structure first: every chunk's CRC and the IEND chunk are checked, so a truncated or damaged file
        # fails here with a reason (cv2.imdecode only says None); no pixels are decoded by this step.
        with _no_bomb_warning(), Image.open(p) as im:
            im.verify()
    except Image.DecompressionBombError as e:
        raise InputError(f"image {p} is too large to decode safely: {_reason(e)}") from e
    except Exception as e:  # Pillow raises OSError, SyntaxError, struct.error, ...
        raise InputError(f"cannot read image {p}: {_reason(e)}") from e
    try:
        data = np.fromfile(p, dtype=np.uint8)
    except OSError as e:
        raise InputError(f"cannot read image {p}: {e.strerror or e}") from e
    try:
        a = cv2.imdecode(data, cv2.IMREAD_UNCHANGED)  # IMREAD_UNCHANGED: 16 bits kept, no EXIF rotation
    except cv2.error as e:  # e.g. over OpenCV's pixel-count limit
        raise InputError(f"cannot read image {p}: {_reason(e)}") from e
    if a is None or a.dtype != np.uint16:  # cv2.imdecode returns None on any decoding error
        raise InputError(f"cannot read image {p}: corrupt or truncated PNG image data")
    if a.ndim == 3:
        if colour_type in (0, 4):  # grey (+ alpha / tRNS), which OpenCV expands to BGR(A)
            a = a[:, :, 0]
        else:
            a = a[:, :, 2::-1]  # BGR(A) -> RGB, alpha dropped
    return _to_unit(a, p, dtype)


# ----------------------------------------------------------------------------------------------- writing
def _encode_png16(q: np.ndarray) -> bytes:
    """Encode a uint16 (H, W, C) array (C = 1 or 3, RGB) as a 16-bit PNG with OpenCV's default settings."""
    import cv2

    ok, buf = cv2.imencode(".png", q[:, :, 0] if q.shape[2] == 1 else np.ascontiguousarray(q[:, :, ::-1]))
    if not ok:
        raise RuntimeError("OpenCV failed to encode a 16-bit PNG")
    return buf.tobytes()


def write_image(path, x, bit_depth: int = 8, overwrite: bool = False) -> Path:
    """Write an image in ``[0, 1]`` to ``path`` (format from the suffix), atomically.

    Parameters
    ----------
    path
        ``.png`` / ``.tif`` / ``.tiff`` (8 or 16 bit), ``.jpg`` / ``.jpeg`` (8 bit, quality 95, no chroma
        subsampling) or ``.bmp`` (8 bit).  Missing parent directories are created.
    x
        Tensor or array ``(C, H, W)`` with C = 1 or 3, ``(H, W)``, or ``(1, C, H, W)``.  Values are clipped
        to [0, 1] and rounded to the nearest level.
    bit_depth
        8 or 16.
    overwrite
        If False (default) an existing ``path`` is an error; the check and the final rename are atomic
        (a hard link where the file system supports it).

    The data are written to a temporary file next to ``path`` which is renamed over ``path`` only once it is
    complete, so a reader never sees a partial file and a failure leaves nothing behind.  Returns ``path``.
    """
    p = Path(path)
    suffix = p.suffix.lower()
    if suffix not in IMAGE_SUFFIXES:
        raise InputError(f"cannot write {p}: unsupported image type {suffix or '(no suffix)'!r}; "
                         f"use one of {', '.join(IMAGE_SUFFIXES)}")
    if bit_depth not in (8, 16):
        raise InputError(f"bit depth must be 8 or 16, got {bit_depth!r}")
    if bit_depth == 16 and suffix in (".jpg", ".jpeg", ".bmp"):
        raise InputError(f"cannot write {p}: {suffix} supports only 8-bit images (use .png or .tif)")

    q = _quantize(x, p, bit_depth)

    def writer(fh) -> None:
        if suffix in (".tif", ".tiff"):
            import tifffile

            tifffile.imwrite(fh, q if q.shape[2] == 3 else q[:, :, 0],
                             photometric="rgb" if q.shape[2] == 3 else "minisblack")
        elif suffix == ".png" and bit_depth == 16:
            fh.write(_encode_png16(q))  # Pillow would write 16-bit colour as 8-bit
        else:
            from PIL import Image

            im = Image.fromarray(q[:, :, 0] if q.shape[2] == 1 else q)
            if suffix == ".png":
                im.save(fh, format="PNG", compress_level=6)
            elif suffix == ".bmp":
                im.save(fh, format="BMP")
            else:
                im.save(fh, format="JPEG", quality=95, subsampling=0)

    _atomic_write(p, writer, overwrite)
    return p


def _quantize(x, p: Path, bit_depth: int, rows_per_block: int = 256) -> np.ndarray:
    """(C, H, W) / (H, W) / (1, C, H, W) tensor or array in [0, 1] -> (H, W, C) integers of ``bit_depth``,
    checked (shape, finite values), in blocks of rows: a large image never has a whole float64 copy."""
    a = x.detach().cpu() if isinstance(x, torch.Tensor) else np.asarray(x)
    shape = tuple(a.shape)
    if len(shape) == 4 and shape[0] == 1:
        a = a[0]
    if len(a.shape) == 2:
        a = a[None]
    if len(a.shape) != 3 or a.shape[0] not in (1, 3) or a.shape[1] == 0 or a.shape[2] == 0:
        raise InputError(f"cannot write {p}: expected an image (C, H, W) with C = 1 or 3 or (H, W), "
                         f"got shape {shape}")
    c, h, w = a.shape
    levels = 2 ** bit_depth - 1
    q = np.empty((h, w, c), np.uint16 if bit_depth == 16 else np.uint8)
    for top in range(0, h, rows_per_block):
        block = a[:, top:top + rows_per_block]
        block = block.to(torch.float64).numpy() if isinstance(block, torch.Tensor) else block.astype(np.float64)
        if not np.isfinite(block).all():
            raise InputError(f"cannot write {p}: the image contains NaN or infinite values")
        q[top:top + rows_per_block] = np.rint(np.clip(block, 0.0, 1.0) * levels).transpose(1, 2, 0)
    return q


def _atomic_write(p: Path, writer, overwrite: bool) -> None:
    """Run ``writer(binary file)`` on a temp file in ``p``'s directory, then move it to ``p``."""
    if p.is_dir():
        raise InputError(f"cannot write {p}: it is a directory")
    if p.exists() and not overwrite:
        raise InputError(f"output file exists: {p} (pass overwrite=True / --overwrite to replace it)")
    parent = p.parent
    try:
        parent.mkdir(parents=True, exist_ok=True)
        fd, tmp_name = tempfile.mkstemp(prefix=f".{p.name}.", suffix=".tmp", dir=parent)
    except OSError as e:
        raise InputError(f"cannot write {p}: {e.strerror or _reason(e)}") from e
    tmp = Path(tmp_name)
    try:
        os.close(fd)
        with open(tmp, "wb") as fh:  # a named file object: tifffile wants a path-like .name
            writer(fh)
            fh.flush()
            os.fsync(fh.fileno())
        os.chmod(tmp, 0o666 & ~_UMASK)
        if overwrite:
            os.replace(tmp, p)
        else:
            try:
                os.link(tmp, p)  # atomic "create only if absent"
            except FileExistsError:
                raise InputError(f"output file exists: {p} (pass overwrite=True / --overwrite to replace it)")
            except OSError:  # file system without hard links: best effort
                if p.exists():
                    raise InputError(f"output file exists: {p} (pass overwrite=True / --overwrite to replace it)")
                os.replace(tmp, p)
    except InputError:
        raise
    except OSError as e:
        raise InputError(f"cannot write {p}: {e.strerror or _reason(e)}") from e
    finally:
        if tmp.exists():
            tmp.unlink()
