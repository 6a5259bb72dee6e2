"""The bad-input battery through the real API: every image endpoint gets every kind of bad or odd upload and
answers with a clear message or a correct result, never a stack trace; a normal request works right after."""
import io
import struct
import zlib
from pathlib import Path

import numpy as np
import pytest
from gradio_client import Client, handle_file
from gradio_client.exceptions import AppError
from PIL import Image

EXAMPLE = sorted(Path("assets/examples/products").glob("*.png"))[0]

# endpoint -> (args before the image, args after it): the image goes where each endpoint takes it
CALLS = {
    "/search": lambda f: ("", f, 5, "", ""),
    "/explain": lambda f: (f, "a dog", ""),
    "/categorise": lambda f: (f, "", "", "descriptive"),
    "/caption": lambda f: (f, "", 2),
    "/build_collection": lambda f: ([f], ""),  # your pictures: one file that fails says why, like the others
}


def _png_1bit(w: int, h: int) -> bytes:
    """A valid 1-bit PNG of w×h black pixels: tiny on disk, huge once decoded (a decompression bomb)."""
    raw = zlib.compress(b"".join(b"\x00" + bytes((w + 7) // 8) for _ in range(h)), 9)

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)

    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, 1, 0, 0, 0, 0)) + chunk(b"IDAT", raw) + chunk(b"IEND", b"")


def _save(img: Image.Image, fmt: str = "PNG") -> bytes:
    buf = io.BytesIO()
    img.save(buf, format=fmt)
    return buf.getvalue()


def _bad_files() -> dict[str, tuple[bytes, str]]:
    png = _save(Image.new("RGB", (64, 64), (10, 200, 10)))
    return {
        "text file": (b"hello, I am not a picture", "not an image"),
        "zero bytes": (b"", "empty|No image"),
        "truncated PNG": (png[: len(png) // 2], "not an image"),
        "decompression bomb": (_png_1bit(20_000, 20_000), "megapixels|too many pixels"),
        "1x1": (_save(Image.new("RGB", (1, 1))), "too small"),
        "10000x10": (_save(Image.new("L", (10000, 10))), "too long and thin"),
        "8000x8000": (_save(Image.new("L", (8000, 8000), 200)), "64 megapixels"),  # over our 40 MP cap
    }


def _odd_files() -> dict[str, bytes]:
    return {
        "CMYK JPEG": _save(Image.new("CMYK", (80, 60), (0, 200, 200, 0)), "JPEG"),
        "16-bit grey": _save(Image.fromarray((np.arange(64 * 64).reshape(64, 64) * 16).astype(np.uint16))),
        "palette": _save(Image.new("RGB", (64, 64), (200, 30, 30)).convert("P")),
        "alpha": _save(Image.new("RGBA", (64, 64), (30, 30, 200, 100))),
        "greyscale": _save(Image.new("L", (64, 48), 128)),
        "6000x6000": _save(Image.new("L", (6000, 6000), 200)),  # 36 MP, under the cap: answered
    }


@pytest.fixture(scope="module")
def client(app_url):
    return Client(app_url, verbose=False)


@pytest.mark.slow
@pytest.mark.parametrize("endpoint", list(CALLS))
def test_bad_uploads_get_clear_messages(client, endpoint, tmp_path):
    for kind, (data, message) in _bad_files().items():
        path = tmp_path / f"{kind.replace(' ', '_')}.png"
        path.write_bytes(data)
        with pytest.raises(AppError, match=message):
            client.predict(*CALLS[endpoint](handle_file(str(path))), api_name=endpoint)
    assert client.predict(*CALLS[endpoint](handle_file(str(EXAMPLE))), api_name=endpoint)  # still serving


@pytest.mark.slow
@pytest.mark.parametrize("endpoint", list(CALLS))
def test_odd_modes_and_sizes_are_answered(client, endpoint, tmp_path):
    for kind, data in _odd_files().items():
        path = tmp_path / f"{kind.replace(' ', '_')}.img"
        path.write_bytes(data)
        assert client.predict(*CALLS[endpoint](handle_file(str(path))), api_name=endpoint), kind
