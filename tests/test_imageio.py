"""Tests for podm_cli.imageio: round trips, colour handling, corrupt files, atomic writes."""

from __future__ import annotations

import os
import struct
import zlib

import numpy as np
import pytest
import torch
from PIL import Image, ImageFile

from podm_cli import imageio
from podm_cli.errors import InputError
from podm_cli.imageio import read_image, write_image


def _ramp(c: int, h: int = 13, w: int = 17, seed: int = 0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return torch.rand(c, h, w, generator=g, dtype=torch.float64)


def _quantised(x: torch.Tensor, bits: int) -> torch.Tensor:
    levels = 2 ** bits - 1
    return torch.round(x.clamp(0, 1) * levels) / levels


# --------------------------------------------------------------------------------------- round trips
@pytest.mark.parametrize("suffix", [".png", ".tif", ".tiff"])
@pytest.mark.parametrize("bits", [8, 16])
@pytest.mark.parametrize("channels", [1, 3])
def test_lossless_round_trip(tmp_path, suffix, bits, channels):
    x = _ramp(channels)
    path = write_image(tmp_path / f"im{suffix}", x, bit_depth=bits)
    y, depth = read_image(path, mode="keep")
    assert depth == bits
    assert y.dtype == torch.float32 and tuple(y.shape) == tuple(x.shape)
    torch.testing.assert_close(y.double(), _quantised(x, bits), atol=1e-7, rtol=0)


def test_16_bit_keeps_precision(tmp_path):
    x = torch.linspace(0, 1, 3 * 4 * 300, dtype=torch.float64).reshape(3, 4, 300)
    y, depth = read_image(write_image(tmp_path / "fine.png", x, bit_depth=16), mode="keep")
    assert depth == 16
    assert (y.double() - x).abs().max() <= 0.5 / 65535 + 1e-7
    assert len(torch.unique(y)) > 1000  # 8 bits would leave at most 256 levels


def test_jpeg_round_trip_is_close(tmp_path):
    x = torch.ones(3, 32, 32, dtype=torch.float64) * torch.tensor([0.2, 0.5, 0.8]).view(3, 1, 1)
    y, depth = read_image(write_image(tmp_path / "im.jpg", x), mode="keep")
    assert depth == 8 and y.shape == (3, 32, 32)
    assert (y.double() - x).abs().max() < 0.02
    with pytest.raises(InputError, match="8-bit"):
        write_image(tmp_path / "deep.jpg", x, bit_depth=16)


def test_bmp_and_hw_and_batched_inputs(tmp_path):
    x = _ramp(1)[0]
    y, _ = read_image(write_image(tmp_path / "a.bmp", x))
    torch.testing.assert_close(y[0].double(), _quantised(x, 8), atol=1e-7, rtol=0)
    y, _ = read_image(write_image(tmp_path / "b.png", x[None, None]))
    assert y.shape == (1, *x.shape)


def test_write_clips_and_rounds(tmp_path):
    x = torch.tensor([[-0.5, 0.0, 0.4 / 255, 0.6 / 255, 1.0, 1.7]])
    y, _ = read_image(write_image(tmp_path / "c.png", x))
    assert (y[0, 0] * 255).round().tolist() == [0, 0, 0, 1, 255, 255]


# ------------------------------------------------------------------------------------- colour modes
def test_modes_gray_rgb_keep(tmp_path):
    rgb = np.zeros((4, 5, 3), np.uint8)
    rgb[..., 0], rgb[..., 1], rgb[..., 2] = 200, 100, 50
    Image.fromarray(rgb).save(tmp_path / "rgb.png")
    g, _ = read_image(tmp_path / "rgb.png")  # default mode: gray
    assert g.shape == (1, 4, 5)
    expected = (0.299 * 200 + 0.587 * 100 + 0.114 * 50) / 255
    assert torch.allclose(g, torch.full_like(g, expected), atol=1e-6)
    assert read_image(tmp_path / "rgb.png", mode="keep")[0].shape == (3, 4, 5)
    Image.fromarray(np.full((4, 5), 77, np.uint8)).save(tmp_path / "grey.png")
    c, _ = read_image(tmp_path / "grey.png", mode="rgb")
    assert c.shape == (3, 4, 5) and torch.allclose(c, torch.full_like(c, 77 / 255))
    with pytest.raises(ValueError):
        read_image(tmp_path / "grey.png", mode="cmyk")


def test_alpha_and_palette_and_bilevel(tmp_path):
    rgba = np.zeros((3, 3, 4), np.uint8)
    rgba[..., :3] = (10, 20, 30)
    rgba[..., 3] = 0  # fully transparent: alpha must be dropped, not composited
    Image.fromarray(rgba, "RGBA").save(tmp_path / "rgba.png")
    y, _ = read_image(tmp_path / "rgba.png", mode="keep")
    assert y.shape == (3, 3, 3)
    assert torch.allclose(y[:, 0, 0], torch.tensor([10, 20, 30]) / 255.0)
    Image.fromarray(np.full((3, 3, 2), 90, np.uint8), "LA").save(tmp_path / "la.png")
    assert read_image(tmp_path / "la.png", mode="keep")[0].shape == (1, 3, 3)
    pal = Image.fromarray(np.array([[0, 1], [1, 0]], np.uint8), "P")
    pal.putpalette([255, 0, 0, 0, 0, 255] + [0] * 762)
    pal.save(tmp_path / "pal.png")
    y, depth = read_image(tmp_path / "pal.png", mode="keep")
    assert depth == 8 and y.shape == (3, 2, 2)
    assert y[:, 0, 0].tolist() == [1.0, 0.0, 0.0] and y[:, 0, 1].tolist() == [0.0, 0.0, 1.0]
    Image.fromarray(np.array([[True, False]])).convert("1").save(tmp_path / "bw.png")
    assert read_image(tmp_path / "bw.png")[0].flatten().tolist() == [1.0, 0.0]


def test_float_and_planar_tiff(tmp_path):
    import tifffile

    a = np.array([[-0.5, 0.25], [0.75, 2.0]], np.float32)
    tifffile.imwrite(tmp_path / "f.tif", a)
    y, depth = read_image(tmp_path / "f.tif")
    assert depth == 16 and y[0].tolist() == [[0.0, 0.25], [0.75, 1.0]]
    planar = np.stack([np.full((6, 7), v, np.uint16) for v in (0, 30000, 65535)])
    tifffile.imwrite(tmp_path / "planar.tif", planar, photometric="rgb", planarconfig="separate")
    y, depth = read_image(tmp_path / "planar.tif", mode="keep")
    assert depth == 16 and y.shape == (3, 6, 7)
    assert torch.allclose(y[:, 0, 0], torch.tensor([0.0, 30000 / 65535, 1.0]))


# ------------------------------------------------------------------------------- 16-bit PNG decoding
_ADAM7 = ((0, 0, 8, 8), (0, 4, 8, 8), (4, 0, 8, 4), (0, 2, 4, 4), (2, 0, 4, 2), (0, 1, 2, 2), (1, 0, 2, 1))
_CHANNELS = {0: 1, 2: 3, 4: 2, 6: 4}


def _png_chunk(kind: bytes, body: bytes) -> bytes:
    return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body) & 0xFFFFFFFF)


def _filter_rows(rows: np.ndarray, bpp: int, filters) -> bytes:
    """PNG-filter the byte rows of one (sub)image, row i with filter ``filters[i % len(filters)]``."""
    out, prev = bytearray(), np.zeros(rows.shape[1], np.int64)
    for i, row in enumerate(rows.astype(np.int64)):
        ftype = filters[i % len(filters)]
        left = np.concatenate([np.zeros(bpp, np.int64), row[:-bpp]])
        ul = np.concatenate([np.zeros(bpp, np.int64), prev[:-bpp]])
        if ftype == 0:
            pred = np.zeros_like(row)
        elif ftype == 1:
            pred = left
        elif ftype == 2:
            pred = prev
        elif ftype == 3:
            pred = (left + prev) // 2
        else:
            pa, pb, pc = np.abs(prev - ul), np.abs(left - ul), np.abs(left + prev - 2 * ul)
            pred = np.where((pa <= pb) & (pa <= pc), left, np.where(pb <= pc, prev, ul))
        out += bytes([ftype]) + ((row - pred) % 256).astype(np.uint8).tobytes()
        prev = row
    return bytes(out)


def _png16(img: np.ndarray, colour_type: int, interlace: bool = False, filters=(0, 1, 2, 3, 4),
           extra: bytes = b"") -> bytes:
    """A hand-made 16-bit PNG of ``img`` (H, W, C) whose rows use the given row filters in turn."""
    h, w, c = img.shape
    assert c == _CHANNELS[colour_type]
    img = img.astype(">u2")
    raw = bytearray()
    for n, (y0, x0, dy, dx) in enumerate(_ADAM7 if interlace else ((0, 0, 1, 1),)):
        sub = img[y0::dy, x0::dx]
        if sub.size:
            raw += _filter_rows(sub.reshape(sub.shape[0], -1).view(np.uint8), 2 * c, filters[n % len(filters):]
                                + filters[:n % len(filters)])
    ihdr = struct.pack(">IIBBBBB", w, h, 16, colour_type, 0, 0, int(interlace))
    return (b"\x89PNG\r\n\x1a\n" + _png_chunk(b"IHDR", ihdr) + extra
            + _png_chunk(b"IDAT", zlib.compress(bytes(raw))) + _png_chunk(b"IEND", b""))


@pytest.mark.parametrize("colour_type", [0, 2, 4, 6])
def test_16_bit_png_all_row_filters_and_colour_types(tmp_path, colour_type):
    """Rows filtered with None, Sub, Up, Average and Paeth; grey (+ alpha) stays grey, alpha is dropped."""
    rng = np.random.default_rng(colour_type)
    c = _CHANNELS[colour_type]
    img = rng.integers(0, 65536, (12, 10, c))
    img[:6] = (np.arange(10)[None, :, None] * 4000 + np.arange(6)[:, None, None] * 300) % 65536  # smooth part
    (tmp_path / "f.png").write_bytes(_png16(img, colour_type))
    y, depth = read_image(tmp_path / "f.png", mode="keep")
    colour = img[..., :3] if c >= 3 else img[..., :1]
    assert depth == 16 and tuple(y.shape) == (colour.shape[2], 12, 10)
    np.testing.assert_array_equal(np.rint(y.double().numpy() * 65535).transpose(1, 2, 0), colour)


def test_png_decoder_interlaced_and_filtered_16_bit(tmp_path):
    """A hand-made Adam7 16-bit RGB PNG whose rows use the Paeth and Average filters."""
    img = np.random.default_rng(2).integers(0, 65536, (11, 9, 3))
    (tmp_path / "adam7.png").write_bytes(_png16(img, 2, interlace=True, filters=(3, 4)))
    y, depth = read_image(tmp_path / "adam7.png", mode="keep")
    assert depth == 16
    np.testing.assert_allclose(y.double().numpy().transpose(1, 2, 0), img.astype(np.float64) / 65535, atol=1e-7)


def test_16_bit_png_exif_orientation_is_not_applied(tmp_path):
    exif = b"MM\x00*" + struct.pack(">IHHHIHHI", 8, 1, 0x0112, 3, 1, 6, 0, 0)  # orientation 6: rotate 90
    img = np.random.default_rng(3).integers(0, 65536, (4, 7, 3))
    (tmp_path / "exif.png").write_bytes(_png16(img, 2, extra=_png_chunk(b"eXIf", exif)))
    with Image.open(tmp_path / "exif.png") as im:
        assert im.getexif().get(0x0112) == 6
    y, _ = read_image(tmp_path / "exif.png", mode="keep")
    np.testing.assert_array_equal(np.rint(y.double().numpy() * 65535).transpose(1, 2, 0), img)


def test_16_bit_png_with_valid_chunks_but_bad_image_data(tmp_path):
    """Chunk CRCs and IEND intact (Pillow's verify() passes): the pixel decoder must still notice."""
    img = np.random.default_rng(4).integers(0, 65536, (20, 16, 3)).astype(">u2")
    raw = np.concatenate([np.zeros((20, 1), np.uint8), img.reshape(20, -1).view(np.uint8)], 1).tobytes()
    bad_filter = bytearray(raw)
    bad_filter[5 * (16 * 6 + 1)] = 7  # no such row filter
    ihdr = _png_chunk(b"IHDR", struct.pack(">IIBBBBB", 16, 20, 16, 2, 0, 0, 0))
    for name, idat in (("short.png", zlib.compress(raw[: len(raw) // 2])), ("cut.png", zlib.compress(raw)[:-200]),
                       ("filter.png", zlib.compress(bytes(bad_filter)))):
        (tmp_path / name).write_bytes(b"\x89PNG\r\n\x1a\n" + ihdr + _png_chunk(b"IDAT", idat)
                                      + _png_chunk(b"IEND", b""))
        with Image.open(tmp_path / name) as im:
            im.verify()
        with pytest.raises(InputError, match=name) as err:
            read_image(tmp_path / name)
        assert "\n" not in str(err.value)


def test_16_bit_grey_png_is_readable_by_pillow(tmp_path):
    x = _ramp(1)
    path = write_image(tmp_path / "g16.png", x, bit_depth=16)
    with Image.open(path) as im:
        assert im.mode.startswith("I")
        np.testing.assert_array_equal(np.asarray(im), np.round(x[0].numpy() * 65535).astype(np.uint16))


# ------------------------------------------------------------------------------------ bad input files
@pytest.mark.parametrize("bits,channels", [(8, 1), (8, 3), (16, 1), (16, 3)])
def test_truncated_png_raises_input_error(tmp_path, monkeypatch, bits, channels):
    path = write_image(tmp_path / "full.png", _ramp(channels, 64, 64), bit_depth=bits)
    data = path.read_bytes()
    cut = tmp_path / "cut.png"
    cut.write_bytes(data[: len(data) * 2 // 3])
    with pytest.raises(InputError, match="cut.png"):
        read_image(cut)
    monkeypatch.setattr(ImageFile, "LOAD_TRUNCATED_IMAGES", True)  # someone else's global switch
    with pytest.raises(InputError):
        read_image(cut)


def test_corrupt_png_and_truncated_jpeg(tmp_path):
    data = bytearray(write_image(tmp_path / "a.png", _ramp(3, 32, 32)).read_bytes())
    data[len(data) // 2] ^= 0xFF
    (tmp_path / "flip.png").write_bytes(bytes(data))
    with pytest.raises(InputError):
        read_image(tmp_path / "flip.png")
    jpg = write_image(tmp_path / "a.jpg", _ramp(3, 64, 64)).read_bytes()
    (tmp_path / "cut.jpg").write_bytes(jpg[: len(jpg) // 2])
    with pytest.raises(InputError):
        read_image(tmp_path / "cut.jpg")


def test_missing_and_non_image_files(tmp_path):
    (tmp_path / "notes.png").write_text("not an image\n")
    (tmp_path / "empty.png").write_bytes(b"")
    (tmp_path / "bad.tif").write_bytes(b"II*\x00" + b"\x00" * 20)
    for bad in ("missing.png", "notes.png", "empty.png", "bad.tif", "."):
        with pytest.raises(InputError) as err:
            read_image(tmp_path / bad)
        assert "\n" not in str(err.value)


# ------------------------------------------------------------------------------------ atomic writes
def test_refuses_to_overwrite_unless_asked(tmp_path):
    path = write_image(tmp_path / "out.png", torch.zeros(1, 4, 4))
    with pytest.raises(InputError, match="exists"):
        write_image(path, torch.ones(1, 4, 4))
    assert read_image(path)[0].max() == 0
    write_image(path, torch.ones(1, 4, 4), overwrite=True)
    assert read_image(path)[0].min() == 1
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out.png"]  # no temp files left
    assert (path.stat().st_mode & 0o777) == (0o666 & ~imageio._UMASK)


def test_creates_missing_directories(tmp_path):
    path = write_image(tmp_path / "a" / "b" / "out.tif", torch.zeros(1, 2, 2), bit_depth=16)
    assert path.is_file()


def test_unwritable_destination_raises_input_error(tmp_path):
    (tmp_path / "file").write_text("x")
    with pytest.raises(InputError):
        write_image(tmp_path / "file" / "out.png", torch.zeros(1, 2, 2))  # parent is a file
    (tmp_path / "d.png").mkdir()
    with pytest.raises(InputError, match="directory"):
        write_image(tmp_path / "d.png", torch.zeros(1, 2, 2))
    if os.name == "posix" and os.geteuid() != 0:  # root ignores directory permissions
        locked = tmp_path / "locked"
        locked.mkdir(mode=0o500)
        with pytest.raises(InputError):
            write_image(locked / "out.png", torch.zeros(1, 2, 2))


def test_failed_write_leaves_nothing_behind(tmp_path, monkeypatch):
    def boom(_):
        raise RuntimeError("disk on fire")

    monkeypatch.setattr(imageio, "_encode_png16", boom)
    with pytest.raises(RuntimeError):
        write_image(tmp_path / "new.png", torch.zeros(1, 4, 4), bit_depth=16)
    assert list(tmp_path.iterdir()) == []
    old = write_image(tmp_path / "old.png", torch.ones(1, 4, 4))
    with pytest.raises(RuntimeError):
        write_image(old, torch.zeros(1, 4, 4), bit_depth=16, overwrite=True)
    assert [p.name for p in tmp_path.iterdir()] == ["old.png"] and read_image(old)[0].min() == 1


def test_bad_write_arguments(tmp_path):
    for bad in (torch.zeros(2, 4, 4), torch.zeros(4), torch.zeros(2, 1, 4, 4)):
        with pytest.raises(InputError):
            write_image(tmp_path / "x.png", bad)
    with pytest.raises(InputError, match="NaN"):
        write_image(tmp_path / "x.png", torch.full((1, 2, 2), float("nan")))
    with pytest.raises(InputError, match="unsupported"):
        write_image(tmp_path / "x.gif", torch.zeros(1, 2, 2))
    with pytest.raises(InputError):
        write_image(tmp_path / "x.png", torch.zeros(1, 2, 2), bit_depth=12)
    assert list(tmp_path.iterdir()) == []
