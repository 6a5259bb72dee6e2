"""Validation and normalisation of everything a visitor or API client sends. No gradio here: the tabs turn
`InputError` into `gr.Error`, so these functions stay testable without a server.

Each function returns clean values or raises `InputError`, whose message is one sentence a visitor understands.
The caps, chosen once and applied to every entry point:

- Files: at most 20 MB is read, and only PNG, JPEG, WebP, GIF, BMP or TIFF are decoded (never EPS and the like,
  which would run other programs). An animation gives its first frame.
- Image size, checked from the header before a single pixel is decoded, so a decompression bomb costs nothing:
  at most 40 megapixels (a 6000×6000 photo passes, 8000×8000 is refused), at least 8 pixels a side (1×1 is
  refused: no model sees anything in it), and at most 50:1 between the sides (10000×10 is refused: squeezed to a
  model's square input it would be a line).
- Pixels: always RGB. Alpha is laid over white; CMYK, palette, grayscale and 1-bit are converted. Samples deeper
  than 8 bits (16-bit, 32-bit, float) are used as they are if they already fit 0-255 (floats in 0-1 are scaled by
  255); otherwise 0, or the minimum if negative, becomes black and the brightest sample white. Stretching to the
  brightest sample keeps a 12-bit scan stored in 16 bits visible, where dividing by 65535 would leave it nearly
  black; a full-range 16-bit photo comes out the same either way.
- Text: control and invisible characters removed, whitespace collapsed, at most 1,000 characters kept (the rest
  is cut, with a notice); any script is welcome.
- Labels: 2 to 100, each at most 200 characters; repeats (ignoring case) are dropped with a notice.
"""
from __future__ import annotations

import base64
import io
import logging
import math
import re
import unicodedata
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image, ImageOps

log = logging.getLogger(__name__)

MAX_IMAGE_PIXELS = 40_000_000
MAX_UPLOAD_BYTES = 20 * 1024 * 1024
MIN_IMAGE_SIDE = 8
MAX_ASPECT_RATIO = 50
# Pillow's names; "JPEG" also opens the multi-picture JPEGs (MPO) many phone cameras write.
IMAGE_FORMATS = ("PNG", "JPEG", "WEBP", "GIF", "BMP", "TIFF")
FORMATS_TEXT = "PNG, JPEG, WebP, GIF, BMP or TIFF"

_NOT_AN_IMAGE = f"This file is not an image we can read ({FORMATS_TEXT}), or it is damaged."
_TOO_LARGE_FILE = f"The file is larger than {MAX_UPLOAD_BYTES // 2**20} MB; please upload a smaller image."
_FORBIDDEN_PATH = "That file cannot be read; please upload the image."


class InputError(ValueError):
    """Bad input; the message is one sentence meant for the visitor."""


# ---------------------------------------------------------------- images
def load_image(obj: Any, allowed_dirs: Sequence[Path | str] | None = None) -> Image.Image:
    """A fully decoded, upright RGB image, or InputError.

    `obj` may be a PIL image, a numpy array (H, W), (H, W, 1|3|4), raw bytes, a gradio FileData dict
    (`{"path": ...}`), or a path. A path is read only if it lies inside one of `allowed_dirs` (gradio's upload
    folder, say); with no `allowed_dirs` every path is refused, unread.
    """
    if isinstance(obj, np.ndarray):
        img = _from_array(obj)
    elif isinstance(obj, Image.Image):
        img = obj
    else:
        data = _read_bytes(obj, allowed_dirs)
        with _readable():
            img = Image.open(io.BytesIO(data), formats=IMAGE_FORMATS)  # lazy: reads the header only
    check_image_size(*img.size)
    with _readable():
        img.load()  # decode now, so a truncated file fails here and not inside a model
        return _to_rgb(_upright(img))


def check_image_size(w: int, h: int) -> None:
    """Refuse images over MAX_IMAGE_PIXELS, under MIN_IMAGE_SIDE a side, or longer than MAX_ASPECT_RATIO:1."""
    if w * h > MAX_IMAGE_PIXELS:
        raise InputError(
            f"The image is {w}×{h} pixels ({w * h / 1e6:.0f} megapixels), above our limit of "
            f"{MAX_IMAGE_PIXELS // 1_000_000} megapixels; please upload a smaller version."
        )
    if min(w, h) < MIN_IMAGE_SIDE:
        raise InputError(f"The image is too small ({w}×{h}); it needs at least {MIN_IMAGE_SIDE} pixels on each side.")
    if max(w, h) > MAX_ASPECT_RATIO * min(w, h):
        raise InputError(
            f"The image is too long and thin ({w}×{h}); its long side may be at most "
            f"{MAX_ASPECT_RATIO} times its short side."
        )


@contextmanager
def _readable() -> Iterator[None]:
    """Pillow's decoders raise many kinds of exception on a broken file; to a visitor they all mean one thing."""
    try:
        yield
    except InputError:
        raise
    except (Image.DecompressionBombError, Image.DecompressionBombWarning):
        # Pillow's own guard (above 89 MP, warning; above 179 MP, error) fires inside Image.open, before our
        # header check. The warning is an exception only where warnings are errors; we never change the
        # global warning filters, which gradio's threads share.
        raise InputError(
            f"The image has too many pixels; our limit is {MAX_IMAGE_PIXELS // 1_000_000} megapixels."
        ) from None
    except Exception as e:
        log.info("unreadable image: %s: %s", type(e).__name__, e)
        raise InputError(_NOT_AN_IMAGE) from None


def _read_bytes(obj: Any, allowed_dirs: Sequence[Path | str] | None) -> bytes:
    if isinstance(obj, dict):  # gradio FileData, as an API client sends it
        obj = obj.get("path")
    if obj is None:
        raise InputError("No image was received; please upload one.")
    if isinstance(obj, (bytes, bytearray, memoryview)):
        data = bytes(obj[: MAX_UPLOAD_BYTES + 1])
    elif isinstance(obj, (str, Path)):
        data = _read_allowed_file(obj, allowed_dirs)
    else:
        raise InputError(f"This is not an image we can read ({FORMATS_TEXT}).")
    if not data:
        raise InputError("The file is empty; please upload an image.")
    if len(data) > MAX_UPLOAD_BYTES:
        raise InputError(_TOO_LARGE_FILE)
    return data


def _read_allowed_file(name: str | Path, allowed_dirs: Sequence[Path | str] | None) -> bytes:
    """At most MAX_UPLOAD_BYTES + 1 bytes (one more tells us it is too big) of a file inside `allowed_dirs`."""
    try:
        # resolve() follows ".." and symlinks, so neither can lead out of an allowed folder.
        path = Path(name).resolve()
        allowed = any(path.is_relative_to(Path(d).resolve()) for d in allowed_dirs or ())
    except (OSError, ValueError):  # a NUL byte in the name, a symlink loop
        allowed = False
    if not allowed:
        log.warning("refused to read %r: outside the upload folders", str(name)[:200])
        raise InputError(_FORBIDDEN_PATH)
    if not path.is_file():  # missing, a folder, or a device or pipe that could block
        raise InputError("The uploaded file was not found; please upload it again.")
    with path.open("rb") as f:
        return f.read(MAX_UPLOAD_BYTES + 1)


def _upright(img: Image.Image) -> Image.Image:
    """Apply the EXIF orientation; a damaged EXIF block is no reason to refuse a readable photo."""
    try:
        return ImageOps.exif_transpose(img)
    except Exception as e:
        log.info("ignored damaged EXIF: %s: %s", type(e).__name__, e)
        return img


def _to_rgb(img: Image.Image) -> Image.Image:
    if img.mode.startswith(("I", "F")):  # "I;16", "I;16B", "I" (32-bit), "F" (float)
        img = Image.fromarray(_to_uint8(np.asarray(img)), "L")
    if img.has_transparency_data:  # RGBA, LA, PA, or a palette / colour key with transparency
        rgba = img.convert("RGBA")
        white = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        return Image.alpha_composite(white, rgba).convert("RGB")
    return img if img.mode == "RGB" else img.convert("RGB")  # CMYK, P, L, 1, YCbCr, ...


def _from_array(a: np.ndarray) -> Image.Image:
    if a.ndim == 3 and a.shape[2] == 1:
        a = a[..., 0]
    if a.ndim not in (2, 3) or (a.ndim == 3 and a.shape[2] not in (3, 4)) or a.dtype.kind not in "biuf":
        raise InputError("This array is not an image (expected height × width, with 1, 3 or 4 channels of numbers).")
    check_image_size(a.shape[1], a.shape[0])  # before any arithmetic on a huge array
    return Image.fromarray(np.ascontiguousarray(_to_uint8(a)))


def _to_uint8(a: np.ndarray) -> np.ndarray:
    """Samples of any depth to 8 bits, by the rule in the module docstring."""
    if a.dtype == np.uint8:
        return a
    if a.dtype == np.bool_:
        return a.astype(np.uint8) * 255
    is_float = a.dtype.kind == "f"
    a = a.astype(np.float32)
    a[~np.isfinite(a)] = 0  # NaN and inf carry no brightness we could show
    lo, hi = float(a.min()), float(a.max())
    if is_float and 0 <= lo and hi <= 1:  # the usual convention for float images
        scale, lo = 255.0, 0.0
    elif 0 <= lo and hi <= 255:  # already 8-bit values in a wider type (numpy's int64, a float copy)
        scale, lo = 1.0, 0.0
    else:
        lo = min(lo, 0.0)
        scale = 255.0 / (hi - lo)
    return np.clip(np.rint((a - lo) * scale), 0, 255).astype(np.uint8)


def image_to_png_bytes(img: Image.Image, max_side: int | None = None) -> bytes:
    """PNG bytes of `img`, shrunk (keeping its shape) so its long side is at most `max_side`."""
    if img.mode not in ("L", "RGB", "RGBA"):
        img = img.convert("RGBA" if img.has_transparency_data else "RGB")
    if max_side is not None and max(img.size) > max_side:
        img = img.copy()  # thumbnail() works in place; the caller's image stays as it was
        img.thumbnail((max_side, max_side), Image.Resampling.LANCZOS)
    buf = io.BytesIO()
    img.save(buf, format="PNG")
    return buf.getvalue()


def png_data_uri(img: Image.Image, max_side: int | None = None) -> str:
    """`data:image/png;base64,...`, for JSON results that carry an image."""
    return "data:image/png;base64," + base64.b64encode(image_to_png_bytes(img, max_side)).decode("ascii")


# ---------------------------------------------------------------- text
# Removed outright: C0/C1 controls that are not whitespace, zero-width space, BOM, bidi overrides and isolates
# (they can make text display differently from what it is), and lone surrogates (JSON "\ud800"), which cannot
# be encoded. Whitespace controls (tab, newline, ...) become spaces when whitespace is collapsed.
_INVISIBLE = re.compile("[\x00-\x08\x0e-\x1b\x7f-\x84\x86-\x9f\u200b\u202a-\u202e\u2066-\u2069\ufeff\ud800-\udfff]")


def _normalise(text: str) -> str:
    text = _INVISIBLE.sub("", unicodedata.normalize("NFC", text))
    return " ".join(text.split())  # str.split() knows every Unicode space, the ideographic one included


def clean_text(text: Any, *, max_chars: int = 1000, field: str = "query") -> tuple[str, list[str]]:
    """(cleaned text, notices): stripped, invisible characters removed, whitespace collapsed, cut to
    `max_chars` with a notice. Empty after cleaning, or not text at all, raises InputError naming `field`."""
    if text is not None and not isinstance(text, str):
        raise InputError(f"The {field} must be text.")
    text = _normalise(text or "")
    if not text:
        article = "an" if field[:1].lower() in "aeio" else "a"
        raise InputError(f"Type {article} {field} first.")
    notices = []
    if len(text) > max_chars:
        notices.append(f"Your text was cut to {max_chars:,} characters (it had {len(text):,}).")
        text = text[:max_chars].rstrip()
    return text, notices


# ---------------------------------------------------------------- numbers and choices
def parse_int_in_range(value: Any, name: str, lo: int, hi: int) -> int:
    """A whole number in [lo, hi], however a client spells it: 7, 7.0, "7", " 7 ", numpy integers.
    Bools, NaN, infinities, fractions and other text raise InputError naming `name` and the range."""
    n = _whole_number(value)
    if n is None or not lo <= n <= hi:
        raise InputError(f"{name} must be a whole number from {lo} to {hi}.")
    return n


def _whole_number(value: Any) -> int | None:
    if isinstance(value, (bool, np.bool_)):  # True is an int to Python, never a count anyone meant
        return None
    if isinstance(value, (int, np.integer)):
        return int(value)
    if isinstance(value, str):
        text = value.strip()
        if len(text) > 32:  # no honest count is this long; int() of a huge digit string is slow
            return None
        try:
            return int(text)
        except ValueError:
            try:
                value = float(text)  # "5.0", "1e1"
            except ValueError:
                return None
    if isinstance(value, (float, np.floating)) and math.isfinite(value) and float(value).is_integer():
        return int(value)
    return None


def parse_k(k: Any, *, lo: int = 1, hi: int = 50) -> int:
    """How many results to return: a whole number from lo to hi."""
    return parse_int_in_range(k, "k", lo, hi)


def parse_choice(value: Any, choices: Sequence[str], name: str) -> str:
    """`value` if it is one of `choices`; also matched ignoring case and surrounding spaces, so an API client's
    " Demo-CLIP" works. Anything else raises InputError listing the choices."""
    known = ", ".join(choices)
    if not isinstance(value, str) or not value.strip():
        raise InputError(f"Choose a {name}: {known}.")
    if value in choices:
        return value
    folded = {c.casefold(): c for c in choices}
    if value.strip().casefold() in folded:
        return folded[value.strip().casefold()]
    shown = value if len(value) <= 60 else value[:60] + "…"
    raise InputError(f"Unknown {name} {shown!r}; choose one of: {known}.")


# ---------------------------------------------------------------- labels
# Commas, newlines, and the full-width and ideographic commas that Chinese and Japanese keyboards type.
_LABEL_SEPARATORS = re.compile("[,\n\uff0c\u3001]")


def parse_labels(
    text_or_list: Any, *, max_labels: int = 100, max_chars_each: int = 200
) -> tuple[list[str], list[str]]:
    """(labels, notices) from a comma- or newline-separated string or a list of strings: each cleaned like
    `clean_text`, empties dropped, overlong ones cut, repeats (ignoring case) dropped keeping the first spelling.
    Fewer than 2 or more than `max_labels` labels raise InputError."""
    labels, seen, repeats, cut = [], set(), [], 0
    for raw in _raw_labels(text_or_list):
        label = _normalise(raw)
        if len(label) > max_chars_each:
            label, cut = label[:max_chars_each].rstrip(), cut + 1
        if not label:
            continue
        if label.casefold() in seen:
            repeats.append(label)
            continue
        seen.add(label.casefold())
        labels.append(label)
    if len(labels) < 2:
        raise InputError("Give at least two labels, separated by commas.")
    if len(labels) > max_labels:
        raise InputError(f"Give at most {max_labels} labels (you gave {len(labels)}).")
    return labels, _label_notices(repeats, cut, max_chars_each)


def _raw_labels(text_or_list: Any) -> list[str]:
    if text_or_list is None:
        return []
    if isinstance(text_or_list, str):
        return _LABEL_SEPARATORS.split(text_or_list)
    if isinstance(text_or_list, (list, tuple)) and all(isinstance(x, str) or x is None for x in text_or_list):
        return [x for x in text_or_list if x is not None]
    raise InputError("Give the labels as text, separated by commas.")


def _label_notices(repeats: list[str], cut: int, max_chars_each: int) -> list[str]:
    notices = []
    if repeats:
        shown = ", ".join(repr(r) for r in repeats[:5]) + (", …" if len(repeats) > 5 else "")
        s = "" if len(repeats) == 1 else "s"
        notices.append(f"Dropped {len(repeats)} duplicate label{s} (case is ignored): {shown}.")
    if cut:
        s, were = ("", "was") if cut == 1 else ("s", "were")
        notices.append(f"{cut} label{s} {were} cut to {max_chars_each} characters.")
    return notices
