"""Blur kernels from files: loading and validation.

Every kernel returned here is a float64 ``(kh, kw)`` tensor, non-negative, summing to 1, in the orientation
of a TRUE convolution kernel (``scipy.signal.fftconvolve(x, k)``, ``podm_cli.physics.Blur``).

File formats (recognised from the content; the suffix only breaks ties)
-----------------------------------------------------------------------
* MATLAB v7.3 ``.mat`` (HDF5, read with h5py): a numeric matrix, a ``kh x kw x N`` stack or a cell array
  of matrices (object references, as in ``Levin09.mat``'s ``kernels``).  HDF5 stores MATLAB's
  column-major arrays so that h5py returns them *transposed*; they are transposed back, i.e. returned in
  MATLAB's own orientation, which is the true-convolution orientation that MATLAB's ``conv2`` uses.
  A plain HDF5 file (no MAT-file header, no ``MATLAB_class`` attributes) is read as stored.
* MATLAB v5 ``.mat`` (``scipy.io.loadmat``): the same layouts (``kernels_schelten2015.mat``: a 1x192 cell).
  scipy already returns MATLAB's orientation.
* Images (PNG, JPEG, BMP, TIFF, ...): grey, colour averaged over channels, alpha dropped; the scale is
  irrelevant (kernels saved with max = 255 are normalised by their sum).
* ``.npy`` (``(kh, kw)``, ``(N, kh, kw)`` or ``(N, 1, kh, kw)``) and ``.npz``, in Python orientation.
* Text (``.txt``, ``.dlm``, ``.csv``, ...): rows of numbers separated by spaces, tabs, commas or
  semicolons (MATLAB ``dlmwrite``).

When a ``.mat`` / ``.npz`` file holds several variables the one to use is picked by name (``kernels``,
``kernel``, ``psf``, ``k``, ...); if that is ambiguous the error lists the candidates.

Levin et al. 2009 kernels
-------------------------
``Levin09.mat`` (KAIR / DPIR / IRCNN) is a special case.  In MATLAB orientation (``a.T`` with
``a = np.array(f[ref])``) its kernels do *not* reproduce Levin's 32 captured blurred images under true
convolution; their 180-degree rotation ``a.T[::-1, ::-1]`` does (mean RMSE 0.011 after a best integer
shift of at most 4 px, against 0.026-0.034 for the other orientations): the file stores them as
*correlation* filters.  The generic v7.3 rule stays "transpose"; the extra rotation is specific to this
file, so :func:`load_levin_kernels` applies it, and :func:`load_kernels` / :func:`load_kernel` apply it
too when a ``.mat`` file is recognised as Levin09 (exactly 8 kernels of sizes 19, 17, 15, 27, 13, 21, 23,
23), so that every route gives the physically correct kernels.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from podm_cli.errors import InputError

__all__ = [
    "LEVIN09_SIZES",
    "load_kernel",
    "load_kernels",
    "load_levin_kernels",
    "validate_kernel",
]

#: Sizes (square) of the 8 Levin et al. 2009 kernels, in file order.
LEVIN09_SIZES = (19, 17, 15, 27, 13, 21, 23, 23)

_PREFERRED_NAMES = ("kernels", "kernel", "psfs", "psf", "ks", "k", "blur_kernels", "blur_kernel",
                    "filters", "filter", "h", "f")
_IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".gif", ".pgm", ".ppm", ".pbm", ".webp")
_MATLAB_NUMERIC = {"double", "single", "logical", "int8", "uint8", "int16", "uint16", "int32", "uint32",
                   "int64", "uint64"}
_NEG_TOL = 1e-6


# ----------------------------------------------------------------------------------------- validation
def validate_kernel(k, image_shape=None, name: str = "kernel") -> torch.Tensor:
    """Check a blur kernel and return it normalised to sum 1 as a float64 tensor ``(kh, kw)``.

    Parameters
    ----------
    k
        Tensor, array or nested list; 2-D, or with only singleton leading dimensions (``(1, 1, kh, kw)``).
    image_shape
        Optional ``(..., H, W)`` of the image the kernel will blur: each kernel dimension must be strictly
        smaller than the image's.
    name
        How the kernel is named in error messages (e.g. its file).

    Raises :class:`~podm_cli.errors.InputError` (one line) for: non-numeric or complex data, wrong
    dimensionality, an empty kernel, NaN/Inf, negative entries beyond ``-1e-6 * max`` (smaller negatives
    are round-off and clipped to 0), an all-zero kernel, a kernel that is not smaller than the image.
    The tensor keeps its device.
    """
    if isinstance(k, torch.Tensor):
        t = k.detach()
    else:
        try:
            arr = np.asarray(k)
        except Exception as e:  # ragged lists etc.
            raise InputError(f"{name}: not a numeric array ({e})") from e
        if arr.dtype == object or not (np.issubdtype(arr.dtype, np.number) or arr.dtype == np.bool_):
            raise InputError(f"{name}: not a numeric array (dtype {arr.dtype})")
        t = torch.from_numpy(np.ascontiguousarray(arr))
    if t.is_complex():
        raise InputError(f"{name}: complex values are not a valid blur kernel")
    while t.ndim > 2 and t.shape[0] == 1:
        t = t[0]
    if t.ndim != 2:
        raise InputError(f"{name}: a kernel must be 2-D, got shape {tuple(t.shape)}")
    if t.numel() == 0:
        raise InputError(f"{name}: the kernel is empty (shape {tuple(t.shape)})")
    t = t.to(torch.float64)
    if not bool(torch.isfinite(t).all()):
        raise InputError(f"{name}: the kernel contains NaN or infinite values")
    kmax, kmin = float(t.max()), float(t.min())
    if kmax == 0.0 and kmin == 0.0:
        raise InputError(f"{name}: the kernel is all zeros")
    if kmax <= 0.0:
        raise InputError(f"{name}: the kernel has no positive entries")
    if kmin < -_NEG_TOL * kmax:
        raise InputError(f"{name}: the kernel has negative entries (min {kmin:.3g}, max {kmax:.3g})")
    t = t.clamp(min=0.0)
    t = t / t.sum()
    if image_shape is not None:
        h, w = (int(s) for s in tuple(image_shape)[-2:])
        kh, kw = t.shape
        if kh >= h or kw >= w:
            raise InputError(f"{name}: the kernel ({kh}x{kw}) must be smaller than the image ({h}x{w})")
    return t.contiguous()


# ------------------------------------------------------------------------------------------- loading
def load_kernels(path) -> list[torch.Tensor]:
    """Load every kernel in ``path`` (validated, normalised, true-convolution orientation).

    See the module docstring for the formats.  Missing, unreadable or invalid files raise
    :class:`~podm_cli.errors.InputError` with one line naming the file.
    """
    p = Path(path)
    raw = _read_raw(p)
    if _is_levin09(p, raw):
        raw = [np.rot90(a, 2) for a in raw]
    return [validate_kernel(a, name=_kname(p, i, len(raw))) for i, a in enumerate(raw)]


def load_kernel(path, index: int | None = None) -> torch.Tensor:
    """Load one kernel from ``path``.

    ``index`` (0-based) picks a kernel from a file that holds several (required then); a file with a
    single kernel accepts ``None`` or 0.
    """
    p = Path(path)
    raw = _read_raw(p)
    n = len(raw)
    if index is None:
        if n != 1:
            raise InputError(f"{p} holds {n} kernels: choose one with an index in 0..{n - 1}")
        index = 0
    if isinstance(index, bool) or not isinstance(index, (int, np.integer)) or not 0 <= int(index) < n:
        raise InputError(f"kernel index {index!r} is out of range for {p}, which holds {n} kernel(s) "
                         f"(valid: 0..{n - 1})")
    a = raw[int(index)]
    if _is_levin09(p, raw):
        a = np.rot90(a, 2)
    return validate_kernel(a, name=_kname(p, int(index), n))


def load_levin_kernels(path) -> list[torch.Tensor]:
    """The 8 Levin et al. 2009 kernels from ``Levin09.mat``, in the physically correct orientation.

    That is the 180-degree rotation of MATLAB's orientation (``a.T[::-1, ::-1]`` for ``a = np.array(
    f[ref])``): with it, ``fftconvolve(gt, k, 'valid')`` reproduces Levin's captured blurred images.
    Any MATLAB file (v7.3 or v5) with the 8 kernels in Levin's layout is accepted.
    """
    p = Path(path)
    raw = _read_raw(p)
    if len(raw) != 8:
        raise InputError(f"{p}: expected the 8 Levin et al. 2009 kernels, found {len(raw)} kernel(s)")
    return [validate_kernel(np.rot90(a, 2), name=_kname(p, i, 8)) for i, a in enumerate(raw)]


def _kname(p: Path, i: int, n: int) -> str:
    return f"{p}" if n == 1 else f"{p} (kernel {i})"


def _is_levin09(p: Path, raw: list[np.ndarray]) -> bool:
    """A MATLAB file holding exactly Levin09's 8 square kernels, in order (see the module docstring)."""
    return (_sniff(p) in ("mat73", "mat5") and len(raw) == len(LEVIN09_SIZES)
            and all(a.shape == (s, s) for a, s in zip(raw, LEVIN09_SIZES)))


def _sniff(p: Path) -> str:
    """File kind from magic bytes (then suffix): mat73, mat5, npy, npz, image or text."""
    with open(p, "rb") as fh:
        head = fh.read(520)
    if head[:8] == b"\x89HDF\r\n\x1a\n" or head[512:520] == b"\x89HDF\r\n\x1a\n":
        return "mat73"
    if head.startswith(b"MATLAB 5.0") or (p.suffix.lower() == ".mat" and len(head) >= 128):
        return "mat5"
    if head.startswith(b"\x93NUMPY"):
        return "npy"
    if head.startswith((b"PK\x03\x04", b"PK\x05\x06")):
        return "npz"
    image_magic = (b"\x89PNG", b"\xff\xd8\xff", b"BM", b"II*\x00", b"MM\x00*", b"GIF8", b"RIFF")
    if any(head.startswith(m) for m in image_magic) or p.suffix.lower() in _IMAGE_SUFFIXES:
        return "image"
    return "text"


def _read_raw(p: Path) -> list[np.ndarray]:
    """All kernels in ``p`` as float64 arrays (MATLAB orientation for .mat files), not yet validated."""
    if not p.exists():
        raise InputError(f"kernel file not found: {p}")
    if not p.is_file():
        raise InputError(f"kernel path is not a file: {p}")
    try:
        kind = _sniff(p)
        readers = {"mat73": _read_mat73, "mat5": _read_mat5, "npy": _read_npy, "npz": _read_npz,
                   "image": _read_image_kernel, "text": _read_text}
        raw = readers[kind](p)
    except InputError:
        raise
    except MemoryError:
        raise
    except Exception as e:  # any decoder failure is a property of the file
        raise InputError(f"cannot read kernel file {p}: {_reason(e)}") from e
    if not raw:
        raise InputError(f"no kernel found in {p}")
    return raw


def _reason(e: BaseException) -> str:
    lines = str(e).strip().splitlines()
    return lines[0] if lines and lines[0] else type(e).__name__


def _pick_variable(candidates: list[str], p: Path, what: str = "variable") -> str:
    if len(candidates) == 1:
        return candidates[0]
    if not candidates:
        raise InputError(f"{p}: no numeric matrix or cell array of matrices found")
    lower = {c.lower(): c for c in candidates}
    for name in _PREFERRED_NAMES:
        if name in lower:
            return lower[name]
    raise InputError(f"{p}: several {what}s could hold the kernel ({', '.join(sorted(candidates))}); "
                     f"rename the one to use to 'kernel' or 'kernels'")


def _split_stack(a: np.ndarray, p: Path, stack_axis: int) -> list[np.ndarray]:
    """2-D -> [a]; 3-D -> slices along ``stack_axis``; 4-D (N, 1, kh, kw) -> N kernels."""
    if a.ndim == 2:
        return [a]
    if a.ndim == 3:
        return [np.take(a, i, axis=stack_axis) for i in range(a.shape[stack_axis])]
    if a.ndim == 4 and a.shape[1] == 1:
        return [a[i, 0] for i in range(a.shape[0])]
    raise InputError(f"{p}: cannot interpret an array of shape {a.shape} as kernel(s)")


# MATLAB v7.3 (HDF5) --------------------------------------------------------------------------------
def _read_mat73(p: Path) -> list[np.ndarray]:
    import h5py

    with h5py.File(p, "r") as f:
        is_matlab = f.userblock_size > 0  # MATLAB writes a 512-byte "MATLAB 7.3 MAT-file" header
        names = [n for n in f if not n.startswith("#") and _h5_candidate(f[n])]
        name = _pick_variable(names, p)
        return _h5_collect(f, f[name], p, is_matlab)


def _h5_class(obj) -> str | None:
    c = obj.attrs.get("MATLAB_class")
    return c.decode() if isinstance(c, bytes) else (str(c) if c is not None else None)


def _h5_candidate(obj) -> bool:
    import h5py

    if not isinstance(obj, h5py.Dataset):
        return False
    cls = _h5_class(obj)
    if cls is not None:
        return cls == "cell" or cls in _MATLAB_NUMERIC
    return obj.dtype.kind in "biuf" or h5py.check_dtype(ref=obj.dtype) is not None


def _h5_collect(f, ds, p: Path, is_matlab: bool) -> list[np.ndarray]:
    import h5py

    matlab = is_matlab or _h5_class(ds) is not None
    if h5py.check_dtype(ref=ds.dtype) is not None:  # cell array: object references
        refs = np.asarray(ds[()])
        out = []
        for ref in refs.ravel():  # C order of h5py's (transposed) shape = MATLAB's linear order
            if not ref:
                raise InputError(f"{p}: empty cell in the kernel cell array")
            out.extend(_h5_collect(f, f[ref], p, is_matlab))
        return out
    if ds.attrs.get("MATLAB_empty", 0):
        return [np.zeros((0, 0))]
    if ds.dtype.kind not in "biuf":
        raise InputError(f"{p}: variable {ds.name!r} is not a real numeric array (dtype {ds.dtype})")
    a = np.asarray(ds[()], dtype=np.float64)
    if not matlab:
        return _split_stack(a, p, stack_axis=0)
    # MATLAB's kh x kw (x N) is stored as (N x) kw x kh: transpose back to MATLAB's orientation.
    return [s.T for s in _split_stack(a, p, stack_axis=0)]


# MATLAB v5 (scipy.io.loadmat) ----------------------------------------------------------------------
def _read_mat5(p: Path) -> list[np.ndarray]:
    import scipy.io
    import scipy.sparse

    try:
        m = scipy.io.loadmat(str(p), squeeze_me=False, struct_as_record=True)
    except NotImplementedError as e:  # e.g. a v7.3 file without HDF5 signature where expected
        raise InputError(f"cannot read MATLAB file {p}: {_reason(e)}") from e

    def candidate(v) -> bool:
        if scipy.sparse.issparse(v):
            return True
        return isinstance(v, np.ndarray) and v.size > 0 and (
            v.dtype == object or np.issubdtype(v.dtype, np.number) or v.dtype == np.bool_)

    names = [n for n, v in m.items() if not n.startswith("__") and candidate(v)]
    name = _pick_variable(names, p)
    return _mat5_collect(m[name], p)


def _mat5_collect(v, p: Path) -> list[np.ndarray]:
    import scipy.sparse

    if scipy.sparse.issparse(v):
        return [np.asarray(v.toarray(), dtype=np.float64)]
    v = np.asarray(v)
    if v.dtype == object:
        out = []
        for el in v.ravel(order="F"):  # MATLAB's linear (column-major) order
            out.extend(_mat5_collect(el, p))
        return out
    if v.dtype.kind == "c":
        raise InputError(f"{p}: complex values are not a valid blur kernel")
    if not (np.issubdtype(v.dtype, np.number) or v.dtype == np.bool_):
        raise InputError(f"{p}: cell element of type {v.dtype} is not a numeric matrix")
    return _split_stack(np.asarray(v, dtype=np.float64), p, stack_axis=2)


# numpy, images, text -------------------------------------------------------------------------------
def _read_npy(p: Path) -> list[np.ndarray]:
    a = np.load(p, allow_pickle=False)
    return _split_stack(np.asarray(a, dtype=np.float64), p, stack_axis=0)


def _read_npz(p: Path) -> list[np.ndarray]:
    with np.load(p, allow_pickle=False) as z:
        names = [n for n in z.files if z[n].size > 0 and np.issubdtype(z[n].dtype, np.number)]
        name = _pick_variable(names, p, what="array")
        return _split_stack(np.asarray(z[name], dtype=np.float64), p, stack_axis=0)


def _read_image_kernel(p: Path) -> list[np.ndarray]:
    from podm_cli.imageio import _load_array

    arr, _ = _load_array(p)  # (H, W, C) in [0, 1], alpha dropped
    return [arr.mean(axis=2)]


def _read_text(p: Path) -> list[np.ndarray]:
    try:
        text = p.read_text(encoding="utf-8")
    except UnicodeDecodeError:
        raise InputError(f"cannot read kernel file {p}: not a text, image, .npy or .mat file") from None
    rows = [ln.replace(",", " ").replace(";", " ").split() for ln in text.splitlines()]
    rows = [r for r in rows if r and not r[0].startswith(("#", "%"))]
    if not rows:
        raise InputError(f"{p}: the kernel file is empty")
    widths = {len(r) for r in rows}
    if len(widths) != 1:
        raise InputError(f"{p}: rows have different numbers of values ({sorted(widths)})")
    try:
        a = np.array([[float(v) for v in r] for r in rows], dtype=np.float64)
    except ValueError as e:
        raise InputError(f"{p}: not a table of numbers ({_reason(e)})") from e
    return [a]
