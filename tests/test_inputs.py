import io
import math
import struct
import zlib

import numpy as np
import pytest
from PIL import Image

from core.inputs import (
    InputError, MAX_IMAGE_PIXELS, clean_text, image_to_png_bytes, load_image, parse_choice, parse_k, parse_labels,
    png_data_uri,
)


def _png_bytes(img: Image.Image, fmt="PNG", **kw) -> bytes:
    buf = io.BytesIO()
    img.save(buf, format=fmt, **kw)
    return buf.getvalue()


def _header_only_png(w: int, h: int) -> bytes:
    """A PNG whose header claims w×h; it is refused before any pixel is decoded."""
    def chunk(kind, data):
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, 8, 2, 0, 0, 0)) + chunk(b"IEND", b"")


@pytest.mark.parametrize(
    "make",
    [
        lambda: Image.new("CMYK", (32, 32), (0, 255, 255, 0)),
        lambda: Image.fromarray(np.full((32, 32), 40000, dtype=np.uint16)),
        lambda: Image.new("P", (32, 32), 3),
        lambda: Image.new("LA", (32, 32), (100, 50)),
        lambda: Image.new("RGBA", (32, 32), (255, 0, 0, 0)),
        lambda: Image.new("L", (32, 32), 128),
        lambda: Image.new("1", (32, 32), 1),
        lambda: Image.fromarray(np.linspace(0, 1, 32 * 32, dtype=np.float32).reshape(32, 32), "F"),
    ],
    ids=["cmyk", "16bit", "palette", "la", "rgba", "gray", "1bit", "float"],
)
def test_odd_modes_become_rgb(make):
    img = make()
    for obj in (img, _png_bytes(img, "TIFF")):
        out = load_image(obj)
        assert out.mode == "RGB" and out.size == (32, 32)


def test_transparent_pixels_composite_on_white():
    out = load_image(_png_bytes(Image.new("RGBA", (16, 16), (255, 0, 0, 0))))
    assert out.getpixel((0, 0)) == (255, 255, 255)


def test_16bit_keeps_contrast():
    a = np.tile(np.arange(0, 4096, 128, dtype=np.uint16), (32, 1))  # a 12-bit ramp
    out = np.asarray(load_image(Image.fromarray(a)))
    assert out.min() == 0 and out.max() == 255


@pytest.mark.parametrize(
    "array",
    [np.zeros((20, 30), np.uint8), np.zeros((20, 30, 3), np.uint8), np.zeros((20, 30, 4), np.uint8),
     np.ones((20, 30, 3), np.float32), np.full((20, 30), 60000, np.uint16)],
)
def test_arrays(array):
    assert load_image(array).size == (30, 20)


@pytest.mark.parametrize(
    "data, message",
    [
        (b"", "empty"),
        (b"hello, this is text", "not an image"),
        (b"<html><body>hi</body></html>", "not an image"),
        (_header_only_png(8000, 8000), "megapixels"),
        (_header_only_png(1, 1), "too small"),
        (_header_only_png(10000, 10), "too narrow"),
    ],
    ids=["zero-bytes", "text", "html", "8000x8000", "1x1", "10000x10"],
)
def test_bad_files(data, message):
    with pytest.raises(InputError, match=message):
        load_image(data)


def test_truncated_png():
    data = _png_bytes(Image.fromarray(np.random.default_rng(0).integers(0, 255, (64, 64, 3), dtype=np.uint8)))
    with pytest.raises(InputError, match="damaged"):
        load_image(data[: len(data) // 2])


def test_decompression_bomb_is_refused_quickly():
    side = int(math.sqrt(MAX_IMAGE_PIXELS)) + 2000
    bomb = _png_bytes(Image.new("1", (side, side)), optimize=True)
    assert len(bomb) < 2_000_000  # small on disk, huge in memory
    with pytest.raises(InputError, match="megapixels"):
        load_image(bomb)


def test_paths_only_inside_allowed_dirs(tmp_path):
    uploads = tmp_path / "uploads"
    uploads.mkdir()
    good = uploads / "a.png"
    Image.new("RGB", (20, 20), "blue").save(good)
    assert load_image(str(good), allowed_dirs=[uploads]).getpixel((0, 0)) == (0, 0, 255)
    assert load_image({"path": str(good)}, allowed_dirs=[uploads]).size == (20, 20)
    for outside in ("/etc/passwd", str(uploads / ".." / "x.png"), str(good)):
        with pytest.raises(InputError, match="cannot be read"):
            load_image(outside, allowed_dirs=[tmp_path / "elsewhere"] if outside == str(good) else [uploads])


def test_animated_gif_first_frame():
    frames = [Image.new("RGB", (16, 16), c) for c in ("red", "green")]
    buf = io.BytesIO()
    frames[0].save(buf, format="GIF", save_all=True, append_images=frames[1:])
    assert load_image(buf.getvalue()).getpixel((0, 0))[0] > 200


def test_png_helpers():
    img = Image.new("RGB", (300, 100), "red")
    assert Image.open(io.BytesIO(image_to_png_bytes(img, max_side=150))).size == (150, 50)
    assert png_data_uri(img).startswith("data:image/png;base64,")


@pytest.mark.parametrize("text", [None, "", "   ", "\n\t", "\x00\x01"])
def test_empty_text(text):
    with pytest.raises(InputError, match="Type a query"):
        clean_text(text, field="query")


def test_text_cleaning():
    assert clean_text("  a   dog\x07 on\nblue ") == ("a dog on blue", [])
    assert clean_text("犬 と 猫") == ("犬 と 猫", [])
    long, notices = clean_text("x" * 10_000)
    assert len(long) == 1000 and "1,000 characters" in notices[0]


@pytest.mark.parametrize("k, ok", [(1, 1), (50, 50), (5.0, 5), ("7", 7), (np.int64(3), 3)])
def test_k_valid(k, ok):
    assert parse_k(k) == ok


@pytest.mark.parametrize("k", [0, -1, 51, 10**6, 5.5, float("nan"), float("inf"), "abc", None, True, [3]])
def test_k_invalid(k):
    with pytest.raises(InputError, match="from 1 to 50"):
        parse_k(k)


def test_choice():
    assert parse_choice("a", ["a", "b"], "model") == "a"
    with pytest.raises(InputError, match="choose one of: a, b"):
        parse_choice("c", ["a", "b"], "model")


def test_labels():
    assert parse_labels("cat, dog ,  bird") == (["cat", "dog", "bird"], [])
    labels, notices = parse_labels("Cat\ncat\ndog")
    assert labels == ["Cat", "dog"] and "duplicate" in notices[0]
    assert len(parse_labels([f"l{i}" for i in range(100)])[0]) == 100
    labels, notices = parse_labels(["x" * 300, "y"])
    assert len(labels[0]) == 200 and notices
    for bad in ("", "only-one", ", ,", None, [f"l{i}" for i in range(101)]):
        with pytest.raises(InputError):
            parse_labels(bad)
