"""core.inputs: every kind of bad input gets one clear sentence; every odd but valid one gets a correct answer.

Large images are made cheaply: a PNG header that only claims a size, or a 1-bit PNG compressed row by row,
so the battery stays fast and small in memory.
"""
import functools
import io
import pathlib
import struct
import warnings
import zlib

import numpy as np
import pytest
from PIL import Image, ImageFile

from core.inputs import (
    MAX_IMAGE_PIXELS, MAX_UPLOAD_BYTES, InputError, check_image_size, clean_text, image_to_png_bytes, load_image,
    parse_choice, parse_int_in_range, parse_k, parse_labels, png_data_uri,
)


# ---------------------------------------------------------------- helpers
def _encode(img: Image.Image, fmt: str = "PNG", **kw) -> bytes:
    buf = io.BytesIO()
    img.save(buf, format=fmt, **kw)
    return buf.getvalue()


def _chunk(kind: bytes, body: bytes) -> bytes:
    return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))


@functools.cache
def _png_1bit(w: int, h: int, pixels: bool = True) -> bytes:
    """A black 1-bit PNG claiming w×h. With pixels, its IDAT really holds w×h pixels, compressed row by row
    (a decompression bomb: kilobytes on disk); without, it is the header alone."""
    idat = b""
    if pixels:
        z, row = zlib.compressobj(9), bytes(1 + (w + 7) // 8)  # filter byte + packed bits
        idat = _chunk(b"IDAT", b"".join(z.compress(row) for _ in range(h)) + z.flush())
    ihdr = _chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, 1, 0, 0, 0, 0))
    return b"\x89PNG\r\n\x1a\n" + ihdr + idat + _chunk(b"IEND", b"")


def _noise(h: int = 64, w: int = 64) -> np.ndarray:
    return np.random.default_rng(0).integers(0, 256, (h, w, 3), dtype=np.uint8)


def _message(fn, *args, **kwargs) -> str:
    with pytest.raises(InputError) as info:
        fn(*args, **kwargs)
    return str(info.value)


@pytest.fixture
def uploads(tmp_path: pathlib.Path) -> pathlib.Path:
    folder = tmp_path / "uploads"
    folder.mkdir()
    return folder


# ---------------------------------------------------------------- modes and formats
MODES = {
    "cmyk-jpeg": lambda: _encode(Image.new("CMYK", (32, 32), (0, 255, 255, 0)), "JPEG"),
    "cmyk-tiff": lambda: _encode(Image.new("CMYK", (32, 32), (0, 255, 255, 0)), "TIFF"),
    "16bit-png": lambda: _encode(Image.fromarray(np.full((32, 32), 40000, np.uint16))),
    "16bit-big-endian-tiff": lambda: _encode(Image.fromarray(np.full((32, 32), 40000, ">u2")), "TIFF"),
    "32bit-int-tiff": lambda: _encode(Image.fromarray(np.full((32, 32), 10**6, np.int32)), "TIFF"),
    "float-tiff": lambda: _encode(Image.fromarray(np.linspace(0, 1, 1024, dtype=np.float32).reshape(32, 32)), "TIFF"),
    "palette-png": lambda: _encode(Image.new("RGB", (32, 32), "red").convert("P")),
    "palette-transparent-png": lambda: _encode(Image.new("P", (32, 32), 0), transparency=0),
    "la-png": lambda: _encode(Image.new("LA", (32, 32), (100, 255))),
    "rgba-png": lambda: _encode(Image.new("RGBA", (32, 32), (255, 0, 0, 255))),
    "gray-png": lambda: _encode(Image.new("L", (32, 32), 128)),
    "1bit-png": lambda: _encode(Image.new("1", (32, 32), 1)),
    "webp": lambda: _encode(Image.fromarray(_noise(32, 32)), "WEBP"),
    "gif": lambda: _encode(Image.fromarray(_noise(32, 32)), "GIF"),
    "bmp": lambda: _encode(Image.fromarray(_noise(32, 32)), "BMP"),
}


@pytest.mark.parametrize("make", MODES.values(), ids=MODES.keys())
def test_every_mode_and_format_becomes_rgb(make):
    out = load_image(make())
    assert out.mode == "RGB" and out.size == (32, 32)


@pytest.mark.parametrize(
    "img",
    [Image.new(m, (16, 16)) for m in ("CMYK", "P", "LA", "PA", "RGBA", "RGBa", "L", "1", "I", "I;16", "F",
                                      "YCbCr", "LAB", "HSV", "RGBX")],
    ids=lambda img: img.mode,
)
def test_pil_images_of_every_mode(img):
    out = load_image(img)
    assert out.mode == "RGB" and out.size == (16, 16)


def test_cmyk_colours_are_right():
    r, g, b = load_image(_encode(Image.new("CMYK", (16, 16), (0, 255, 255, 0)), "TIFF")).getpixel((8, 8))
    assert r > 240 and g < 15 and b < 15  # cyan 0, magenta and yellow full: red


@pytest.mark.parametrize(
    "alpha_image",
    [Image.new("RGBA", (16, 16), (255, 0, 0, 0)), Image.new("LA", (16, 16), (0, 0)),
     Image.open(io.BytesIO(_encode(Image.new("P", (16, 16), 0), transparency=0)))],
    ids=["rgba", "la", "palette"],
)
def test_transparent_pixels_are_laid_over_white(alpha_image):
    assert load_image(_encode(alpha_image)).getpixel((0, 0)) == (255, 255, 255)


def test_opaque_and_half_transparent_pixels():
    a = np.zeros((16, 16, 4), np.uint8)
    a[..., 0], a[:8, :, 3], a[8:, :, 3] = 255, 255, 128  # red: top opaque, bottom half transparent
    out = load_image(_encode(Image.fromarray(a)))
    assert out.getpixel((0, 0)) == (255, 0, 0)
    assert out.getpixel((0, 15)) in {(255, 127, 127), (255, 128, 128)}


@pytest.mark.parametrize(
    "samples, lo, hi",
    [
        (np.tile(np.linspace(0, 65535, 32).astype(np.uint16), (32, 1)), 0, 255),  # full range
        (np.tile(np.arange(0, 4096, 128, dtype=np.uint16), (32, 1)), 0, 255),  # 12-bit scan: stretched, visible
        (np.full((32, 32), 65535, np.uint16), 255, 255),  # white stays white
        (np.zeros((32, 32), np.uint16), 0, 0),  # black stays black
        (np.full((32, 32), 200, np.uint16), 200, 200),  # already 8-bit values: kept
    ],
    ids=["full-range", "12-bit", "white", "black", "8-bit-values"],
)
def test_16bit_scaling(samples, lo, hi):
    out = np.asarray(load_image(_encode(Image.fromarray(samples))))
    assert (int(out.min()), int(out.max())) == (lo, hi)
    if samples.max() == 65535:  # a full-range image comes out as if divided by 257
        assert np.abs(out[..., 0].astype(int) - samples / 257).max() <= 1


def test_animated_gif_gives_its_first_frame():
    frames = [Image.new("RGB", (16, 16), c) for c in ("red", "lime", "blue")]
    buf = io.BytesIO()
    frames[0].save(buf, format="GIF", save_all=True, append_images=frames[1:])
    assert load_image(buf.getvalue()).getpixel((8, 8)) == (255, 0, 0)


def test_exif_orientation_is_applied():
    img = Image.new("RGB", (40, 20), "red")
    exif = Image.Exif()
    exif[0x0112] = 6  # "rotate 90° clockwise to view"
    assert load_image(_encode(img, "JPEG", exif=exif)).size == (20, 40)


def test_damaged_exif_does_not_refuse_a_readable_photo(monkeypatch):
    import core.inputs

    def broken(img):
        raise SyntaxError("bad EXIF")

    monkeypatch.setattr(core.inputs.ImageOps, "exif_transpose", broken)
    assert load_image(_encode(Image.new("RGB", (20, 20), "red"), "JPEG")).size == (20, 20)


# ---------------------------------------------------------------- numpy arrays
@pytest.mark.parametrize(
    "array, pixel",
    [
        (np.full((20, 30), 7, np.uint8), (7, 7, 7)),
        (np.full((20, 30, 1), 7, np.uint8), (7, 7, 7)),
        (np.full((20, 30, 3), (1, 2, 3), np.uint8), (1, 2, 3)),
        (np.full((20, 30, 4), (255, 0, 0, 0), np.uint8), (255, 255, 255)),  # transparent: white
        (np.ones((20, 30, 3), np.float32), (255, 255, 255)),  # float in 0-1
        (np.full((20, 30), 0.5, np.float64), (128, 128, 128)),
        (np.full((20, 30, 3), 100.0, np.float32), (100, 100, 100)),  # float copy of 8-bit values
        (np.full((20, 30, 3), 100, np.int64), (100, 100, 100)),  # numpy's default integer
        (np.full((20, 30), 60000, np.uint16), (255, 255, 255)),
        (np.ones((20, 30), bool), (255, 255, 255)),
        (np.full((20, 30), np.nan, np.float32), (0, 0, 0)),
    ],
    ids=["gray", "gray-1ch", "rgb", "rgba", "float01", "float-half", "float255", "int64", "uint16", "bool", "nan"],
)
def test_arrays(array, pixel):
    out = load_image(array)
    assert out.mode == "RGB" and out.size == (30, 20) and out.getpixel((0, 0)) == pixel


@pytest.mark.parametrize(
    "array",
    [np.zeros((20, 30, 2), np.uint8), np.zeros(30, np.uint8), np.zeros((2, 20, 30, 3), np.uint8),
     np.array([["a"] * 30] * 20), np.zeros((20, 30), complex), np.zeros((20, 30), object)],
    ids=["2-channels", "1d", "4d", "strings", "complex", "object"],
)
def test_arrays_that_are_not_images(array):
    assert "not an image" in _message(load_image, array)


def test_tiny_and_huge_arrays_are_refused_by_shape():
    assert "too small" in _message(load_image, np.zeros((1, 1, 3), np.uint8))
    huge = np.lib.stride_tricks.as_strided(np.zeros(1, np.uint8), (8000, 8000, 3), (0, 0, 0))  # no memory
    assert "megapixels" in _message(load_image, huge)


# ---------------------------------------------------------------- sizes: 1×1, 10000×10, 8000×8000, bombs
@pytest.mark.parametrize(
    "w, h, words",
    [(1, 1, "too small (1×1)"), (7, 100, "too small"), (10000, 10, "too long and thin (10000×10)"),
     (10, 10000, "too long and thin"), (408, 8, "too long and thin"), (8000, 8000, "8000×8000 pixels (64 megapixels)"),
     (8000, 5001, "above our limit of 40 megapixels")],
)
def test_sizes_refused(w, h, words):
    assert words in _message(load_image, Image.new("1", (w, h)))  # a PIL image
    assert words in _message(load_image, _png_1bit(w, h, pixels=False))  # from the header, nothing decoded


@pytest.mark.parametrize("w, h", [(8, 8), (400, 8), (8, 400)])
def test_sizes_at_the_limits_pass(w, h):
    assert load_image(_png_1bit(w, h)).size == (w, h)


def test_exactly_the_pixel_cap_passes():
    w, h = 8000, MAX_IMAGE_PIXELS // 8000
    assert load_image(_png_1bit(w, h)).size == (w, h)


def test_real_pixels_above_the_cap_are_refused_before_decoding():
    bomb = _png_1bit(8000, 8000)  # 64 MP of real (compressed) pixels
    assert len(bomb) < 100_000
    assert "64 megapixels" in _message(load_image, bomb)


@pytest.mark.filterwarnings("ignore::PIL.Image.DecompressionBombWarning")
@pytest.mark.parametrize("side", [10_000, 20_000], ids=["100MP-pillow-warns", "400MP-pillow-errors"])
def test_decompression_bombs(side):
    bomb = _png_1bit(side, side)  # ~50 KB claiming up to 400 MP
    assert len(bomb) < 200_000
    assert "40 megapixels" in _message(load_image, bomb)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # where warnings are errors, Pillow's warning too becomes our message
        assert "40 megapixels" in _message(load_image, bomb)


def test_loading_changes_no_global_state():
    filters, cap = list(warnings.filters), Image.MAX_IMAGE_PIXELS
    load_image(_png_1bit(100, 100))
    with pytest.raises(InputError):
        load_image(_png_1bit(9000, 9000, pixels=False))
    assert warnings.filters == filters and Image.MAX_IMAGE_PIXELS == cap


def test_check_image_size_directly():
    check_image_size(224, 224)
    with pytest.raises(InputError):
        check_image_size(0, 0)


# ---------------------------------------------------------------- broken files
@pytest.mark.parametrize(
    "data, words",
    [
        (b"", "empty"),
        (b"hello, this is text", "not an image"),
        (b"<!DOCTYPE html><html><body><img src=x></body></html>", "not an image"),
        (b"\x89PNG\r\n\x1a\n", "not an image"),  # a signature and nothing else
        (b"%!PS-Adobe-3.0 EPSF-3.0\n%%BoundingBox: 0 0 10 10\n", "not an image"),  # EPS would run Ghostscript
        (_encode(Image.new("RGB", (16, 16)), "PPM"), "not an image"),  # Pillow reads it; we do not accept it
        (_encode(Image.new("RGB", (16, 16)), "ICO"), "not an image"),
    ],
    ids=["zero-bytes", "text", "html", "png-signature-only", "eps", "ppm", "ico"],
)
def test_files_that_are_not_images(data, words):
    assert words in _message(load_image, data)


@pytest.mark.parametrize("fmt", ["PNG", "JPEG", "WEBP", "TIFF", "GIF", "BMP"])
def test_truncated_files_fail_at_load(fmt):
    assert not ImageFile.LOAD_TRUNCATED_IMAGES  # someone switching this on would hide damaged uploads
    data = _encode(Image.fromarray(_noise(128, 128)), fmt)
    assert "damaged" in _message(load_image, data[: len(data) // 2])


def test_oversized_bytes_are_refused():
    assert "larger than 20 MB" in _message(load_image, bytes(MAX_UPLOAD_BYTES + 1))


@pytest.mark.parametrize(
    "obj", [None, {}, {"path": None}, 42, [1, 2, 3], object()], ids=["none", "{}", "no-path", "int", "list", "object"]
)
def test_things_that_are_not_files(obj):
    message = _message(load_image, obj)
    assert "No image was received" in message or "not an image" in message


# ---------------------------------------------------------------- paths
def test_paths_inside_the_upload_folder_are_read(uploads):
    good = uploads / "a.png"
    Image.new("RGB", (20, 20), "blue").save(good)
    for obj in (str(good), good, {"path": str(good), "orig_name": "a.png"}):
        assert load_image(obj, allowed_dirs=[uploads]).getpixel((0, 0)) == (0, 0, 255)
    assert load_image(str(good), allowed_dirs=[str(uploads)]).size == (20, 20)


@pytest.fixture
def no_reading(monkeypatch):
    """Fail the test if any file is opened."""
    def refuse(*args, **kwargs):
        raise AssertionError("a refused path was opened")

    monkeypatch.setattr(pathlib.Path, "open", refuse)
    monkeypatch.setattr(pathlib.Path, "read_bytes", refuse)
    monkeypatch.setattr("builtins.open", refuse)


def test_paths_outside_are_refused_unread(uploads, tmp_path, no_reading):
    secret = tmp_path / "secret.png"
    link = uploads / "link.png"
    link.symlink_to("/etc/passwd")
    for obj, allowed in [
        ("/etc/passwd", [uploads]),
        ({"path": "/etc/passwd"}, [uploads]),
        (str(uploads / ".." / "secret.png"), [uploads]),  # climbing out with ..
        (str(link), [uploads]),  # a symlink inside pointing outside
        (str(uploads / "a.png"), None),  # no allowed folders: every path refused
        (str(uploads / "a.png"), []),
        (str(secret), [tmp_path / "elsewhere"]),
        ("uploads\x00/a.png", [uploads]),
    ]:
        assert "cannot be read" in _message(load_image, obj, allowed_dirs=allowed), obj


def test_missing_files_and_folders(uploads):
    assert "not found" in _message(load_image, str(uploads / "gone.png"), allowed_dirs=[uploads])
    assert "not found" in _message(load_image, str(uploads), allowed_dirs=[uploads])


def test_text_file_renamed_png(uploads):
    fake = uploads / "notes.png"
    fake.write_text("this is not an image")
    assert "not an image" in _message(load_image, str(fake), allowed_dirs=[uploads])


def test_oversized_file_is_refused_without_reading_it_all(uploads):
    big = uploads / "big.png"
    with big.open("wb") as f:
        f.truncate(MAX_UPLOAD_BYTES * 5)  # sparse: no disk used
    assert "larger than 20 MB" in _message(load_image, str(big), allowed_dirs=[uploads])


# ---------------------------------------------------------------- messages are for visitors
@pytest.mark.parametrize(
    "call",
    [
        lambda: load_image(b"junk"),
        lambda: load_image(_png_1bit(20_000, 20_000)),
        lambda: load_image("/etc/shadow", allowed_dirs=[pathlib.Path("/tmp")]),
        lambda: load_image(np.zeros((3, 3))),
        lambda: clean_text("   "),
        lambda: parse_k("abc"),
        lambda: parse_choice("x", ["a", "b"], "model"),
        lambda: parse_labels("one"),
    ],
)
@pytest.mark.filterwarnings("ignore::PIL.Image.DecompressionBombWarning")
def test_messages_are_one_plain_sentence(call):
    message = _message(call)
    assert message.endswith(".") and "\n" not in message and len(message) < 200
    for internal in ("Traceback", "Errno", "PIL", "cannot identify", "/etc", "/tmp", "Error"):
        assert internal not in message
    assert issubclass(InputError, ValueError)


# ---------------------------------------------------------------- text
@pytest.mark.parametrize("text", [None, "", "   ", "\n\t\r", "\x00\x01\x7f", "\u200b\ufeff", "\u3000"])
def test_empty_text(text):
    assert _message(clean_text, text, field="query") == "Type a query first."
    assert _message(clean_text, text, field="description") == "Type a description first."


def test_empty_text_message_reads_well():
    assert _message(clean_text, "", field="image caption") == "Type an image caption first."


@pytest.mark.parametrize("text", [5, b"a dog", ["a dog"]])
def test_text_that_is_not_text(text):
    assert _message(clean_text, text, field="query") == "The query must be text."


@pytest.mark.parametrize(
    "raw, clean",
    [
        ("  a   dog on\nblue\tgrass  ", "a dog on blue grass"),
        ("do\x00g\x07s", "dogs"),  # controls removed, not turned into gaps
        ("a\u202edog", "adog"),  # bidi override
        ("cafe\u0301", "café"),  # NFC
        ("犬 と 猫", "犬 と 猫"),
        ("犬\u3000猫", "犬 猫"),  # ideographic space
        ("Собака на траве", "Собака на траве"),
        ("كلب في الحديقة", "كلب في الحديقة"),
        ("👩\u200d🚀 in space", "👩\u200d🚀 in space"),  # emoji joiner kept
        ("bad \ud800 surrogate", "bad surrogate"),
    ],
)
def test_text_cleaning(raw, clean):
    assert clean_text(raw) == (clean, [])


def test_long_text_is_cut_with_a_notice():
    text, notices = clean_text("x" * 10_000)
    assert len(text) == 1000 and notices == ["Your text was cut to 1,000 characters (it had 10,000)."]
    text, notices = clean_text("word " * 100, max_chars=12)
    assert text == "word word wo" and "12 characters" in notices[0]
    assert clean_text("y" * 1000) == ("y" * 1000, [])


# ---------------------------------------------------------------- numbers
@pytest.mark.parametrize(
    "k, expected",
    [(1, 1), (50, 50), (5, 5), (5.0, 5), ("7", 7), (" 7 ", 7), ("5.0", 5), ("1e1", 10),
     (np.int64(3), 3), (np.float32(4.0), 4)],
)
def test_k_valid(k, expected):
    assert parse_k(k) == expected and type(parse_k(k)) is int


@pytest.mark.parametrize(
    "k",
    [0, -1, 51, 10**6, 10**400, 5.5, 0.999, float("nan"), float("inf"), float("-inf"), "abc", "", "nan", "inf",
     "5,0", "1" * 5000, None, True, False, np.bool_(True), [3], {"k": 3}],
)
def test_k_invalid(k):
    assert _message(parse_k, k) == "k must be a whole number from 1 to 50."


def test_k_with_another_range():
    assert parse_k(100, hi=100) == 100
    assert "from 1 to 20" in _message(parse_k, 21, hi=20)


@pytest.mark.parametrize("value, ok", [(1, True), (10, True), (4, True), (0, False), (11, False), (2.5, False)])
def test_int_in_range_for_beam_size(value, ok):
    if ok:
        assert parse_int_in_range(value, "beam size", 1, 10) == value
    else:
        message = _message(parse_int_in_range, value, "beam size", 1, 10)
        assert message == "beam size must be a whole number from 1 to 10."


# ---------------------------------------------------------------- choices
def test_choice():
    models = ["demo-clip", "cnn-baseline"]
    assert parse_choice("demo-clip", models, "model") == "demo-clip"
    assert parse_choice("  Demo-CLIP ", models, "model") == "demo-clip"
    assert _message(parse_choice, "nope", models, "model") == (
        "Unknown model 'nope'; choose one of: demo-clip, cnn-baseline."
    )
    for empty in (None, "", "  ", 3):
        assert _message(parse_choice, empty, models, "model") == "Choose a model: demo-clip, cnn-baseline."
    assert len(_message(parse_choice, "x" * 10_000, models, "model")) < 150


# ---------------------------------------------------------------- labels
def test_labels_from_text():
    assert parse_labels("cat, dog ,  bird") == (["cat", "dog", "bird"], [])
    assert parse_labels("cat\ndog\r\n\nbird\n") == (["cat", "dog", "bird"], [])
    assert parse_labels("犬，猫、鳥") == (["犬", "猫", "鳥"], [])  # full-width and ideographic commas
    assert parse_labels(["a red car", None, "  a  blue car "]) == (["a red car", "a blue car"], [])
    assert parse_labels(("x", "y")) == (["x", "y"], [])


def test_duplicate_labels_keep_the_first_spelling():
    labels, notices = parse_labels("Cat, dog, cat, CAT, Dog")
    assert labels == ["Cat", "dog"]
    assert notices == ["Dropped 3 duplicate labels (case is ignored): 'cat', 'CAT', 'Dog'."]


@pytest.mark.parametrize("bad", ["", "only-one", ", ,\n", None, "cat, Cat", ["x"], []])
def test_fewer_than_two_labels(bad):
    assert _message(parse_labels, bad) == "Give at least two labels, separated by commas."


def test_label_count_limits():
    assert len(parse_labels([f"l{i}" for i in range(100)])[0]) == 100
    assert _message(parse_labels, ",".join(f"l{i}" for i in range(101))) == "Give at most 100 labels (you gave 101)."
    assert len(parse_labels("a, b, c", max_labels=3)[0]) == 3


def test_overlong_labels_are_cut():
    labels, notices = parse_labels(["x" * 300, "y", "z" * 201])
    assert [len(label) for label in labels] == [200, 1, 200] and notices == ["2 labels were cut to 200 characters."]
    labels, notices = parse_labels(["x" * 300, "x" * 250, "y"])  # the same once cut
    assert labels == ["x" * 200, "y"] and len(notices) == 2


@pytest.mark.parametrize("bad", [42, [1, 2], ["a", {"b": 1}], {"a", "b"}])
def test_labels_that_are_not_text(bad):
    assert _message(parse_labels, bad) == "Give the labels as text, separated by commas."


# ---------------------------------------------------------------- results as PNG
def test_png_bytes():
    img = Image.new("RGB", (300, 100), "red")
    assert Image.open(io.BytesIO(image_to_png_bytes(img))).size == (300, 100)
    assert Image.open(io.BytesIO(image_to_png_bytes(img, max_side=150))).size == (150, 50)
    assert Image.open(io.BytesIO(image_to_png_bytes(img, max_side=1000))).size == (300, 100)
    assert img.size == (300, 100)  # the caller's image is untouched


@pytest.mark.parametrize("mode", ["CMYK", "I;16", "F", "P", "LA", "1", "RGBA"])
def test_png_bytes_of_any_mode(mode):
    assert Image.open(io.BytesIO(image_to_png_bytes(Image.new(mode, (10, 10))))).size == (10, 10)


def test_png_data_uri_round_trip():
    import base64

    uri = png_data_uri(Image.new("RGB", (40, 20), "lime"), max_side=20)
    assert uri.startswith("data:image/png;base64,")
    img = Image.open(io.BytesIO(base64.b64decode(uri.split(",", 1)[1])))
    assert img.size == (20, 10) and img.convert("RGB").getpixel((5, 5)) == (0, 255, 0)
