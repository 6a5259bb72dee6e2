"""Validation of everything a visitor or API client sends. No gradio here: tabs turn InputError into gr.Error.

Every function either returns clean values or raises `InputError` whose message is one sentence a visitor
understands. Caps (documented here, applied everywhere):
- uploads: at most 20 MB read; images at most 40 megapixels (8000×8000 is refused, a 6000×6000 photo is fine),
  at least 8 pixels a side, and no more than 50:1 between the sides;
- text: at most 1,000 characters kept (the rest is cut, with a notice);
- labels: 2 to 100, each at most 200 characters.
"""
from __future__ import annotations

import base64
import io
import math
import re
import unicodedata
import warnings
from collections.abc import Sequence
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

MAX_IMAGE_PIXELS = 40_000_000
MAX_UPLOAD_BYTES = 20 * 1024 * 1024
MIN_IMAGE_SIDE = 8
MAX_ASPECT_RATIO = 50
FORMATS = "PNG, JPEG, WebP, GIF, BMP or TIFF"


class InputError(ValueError):
    """Bad input; the message is meant for the visitor."""


# ---------------------------------------------------------------- images
def _read_bytes(obj, allowed_dirs: Sequence[Path] | None) -> bytes:
    if isinstance(obj, dict):
        obj = obj.get("path")
        if not obj:
            raise InputError("No image was received; please upload one.")
    if isinstance(obj, (bytes, bytearray)):
        data = bytes(obj)
    elif isinstance(obj, (str, Path)):
        path = Path(obj).resolve()
        if not allowed_dirs or not any(path.is_relative_to(Path(d).resolve()) for d in allowed_dirs):
            raise InputError("That file cannot be read; please upload the image.")
        if not path.is_file():
            raise InputError("The uploaded file was not found; please upload it again.")
        if path.stat().st_size > MAX_UPLOAD_BYTES:
            raise InputError(f"The file is larger than {MAX_UPLOAD_BYTES // 2**20} MB; please upload a smaller image.")
        data = path.read_bytes()
    else:
        raise InputError(f"This is not an image we can read ({FORMATS}).")
    if not data:
        raise InputError("The file is empty; please upload an image.")
    if len(data) > MAX_UPLOAD_BYTES:
        raise InputError(f"The file is larger than {MAX_UPLOAD_BYTES // 2**20} MB; please upload a smaller image.")
    return data


def _check_size(w: int, h: int) -> None:
    if w * h > MAX_IMAGE_PIXELS:
        raise InputError(
            f"The image is {w}×{h} pixels, above our limit of {MAX_IMAGE_PIXELS // 1_000_000} megapixels; "
            "please upload a smaller version."
        )
    if min(w, h) < MIN_IMAGE_SIDE:
        raise InputError(f"The image is too small ({w}×{h}); it needs at least {MIN_IMAGE_SIDE} pixels a side.")
    if max(w, h) / min(w, h) > MAX_ASPECT_RATIO:
        raise InputError(f"The image is too narrow ({w}×{h}); the long side may be at most {MAX_ASPECT_RATIO}× the short one.")


def _to_rgb(img: Image.Image) -> Image.Image:
    if img.mode in ("I;16", "I;16B", "I;16L", "I", "F"):
        # 16/32-bit and float images: stretch the actual range to 8 bits (a 12-bit scan stays visible).
        a = np.asarray(img, dtype=np.float64)
        lo, hi = float(np.nanmin(a)), float(np.nanmax(a))
        a = np.zeros_like(a) if hi <= lo else (a - lo) / (hi - lo) * 255
        img = Image.fromarray(np.nan_to_num(a).astype(np.uint8), "L")
    if img.mode == "P":
        img = img.convert("RGBA")
    if img.mode in ("RGBA", "LA", "PA") or (img.mode == "RGB" and "transparency" in img.info):
        rgba = img.convert("RGBA")
        background = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        return Image.alpha_composite(background, rgba).convert("RGB")  # alpha over white
    return img.convert("RGB")  # CMYK, L, 1, YCbCr, ...


def _from_array(a: np.ndarray) -> Image.Image:
    if a.ndim not in (2, 3) or (a.ndim == 3 and a.shape[2] not in (1, 3, 4)):
        raise InputError("This array is not an image (expected height × width × 1, 3 or 4 channels).")
    _check_size(a.shape[1], a.shape[0])
    if a.ndim == 3 and a.shape[2] == 1:
        a = a[..., 0]
    if a.dtype != np.uint8:
        a = a.astype(np.float64)
        hi = 1.0 if a.max() <= 1.0 else (255.0 if a.max() <= 255 else 65535.0)
        a = np.clip(np.nan_to_num(a) / hi * 255, 0, 255).astype(np.uint8)
    return _to_rgb(Image.fromarray(a))


def load_image(obj, allowed_dirs: Sequence[Path] | None = None) -> Image.Image:
    """A fully decoded RGB image from a PIL image, numpy array, bytes, an upload path under `allowed_dirs`
    or a gradio FileData dict. Anything else, or anything broken, raises InputError."""
    if isinstance(obj, Image.Image):
        _check_size(*obj.size)
        return _to_rgb(ImageOps.exif_transpose(obj))
    if isinstance(obj, np.ndarray):
        return _from_array(obj)
    data = _read_bytes(obj, allowed_dirs)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            img = Image.open(io.BytesIO(data))
            _check_size(*img.size)  # from the header, before decoding a single pixel
            img.seek(0)  # first frame of an animation
            img.load()
    except InputError:
        raise
    except (Image.DecompressionBombError, Image.DecompressionBombWarning):
        raise InputError(f"The image is too large once decoded; the limit is {MAX_IMAGE_PIXELS // 1_000_000} megapixels.") from None
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError, EOFError):
        raise InputError(f"This file is not an image we can read ({FORMATS}), or it is damaged.") from None
    return _to_rgb(ImageOps.exif_transpose(img))


def image_to_png_bytes(img: Image.Image, max_side: int | None = None) -> bytes:
    if max_side and max(img.size) > max_side:
        img = img.copy()
        img.thumbnail((max_side, max_side))
    buf = io.BytesIO()
    img.save(buf, format="PNG")
    return buf.getvalue()


def png_data_uri(img: Image.Image) -> str:
    return "data:image/png;base64," + base64.b64encode(image_to_png_bytes(img)).decode()


# ---------------------------------------------------------------- text and numbers
_CONTROL = re.compile(r"[\u0000-\u0008\u000b-\u001f\u007f-\u009f]")


def clean_text(text, *, max_chars: int = 1000, field: str = "description") -> tuple[str, list[str]]:
    """Strip, drop control characters, collapse whitespace; cut past `max_chars` with a notice."""
    if text is None or not isinstance(text, str):
        text = "" if text is None else str(text)
    text = unicodedata.normalize("NFC", _CONTROL.sub(" ", text))
    text = " ".join(text.split())
    if not text:
        raise InputError(f"Type a {field} first.")
    notices = []
    if len(text) > max_chars:
        text = text[:max_chars]
        notices.append(f"Your text was cut to {max_chars:,} characters.")
    return text, notices


def parse_int_in_range(value, name: str, lo: int, hi: int) -> int:
    message = f"{name} must be a whole number from {lo} to {hi}."
    if isinstance(value, bool) or value is None:
        raise InputError(message)
    if isinstance(value, str):
        try:
            value = float(value.strip())
        except ValueError:
            raise InputError(message) from None
    if not isinstance(value, (int, float, np.integer, np.floating)) or not math.isfinite(value) or value != int(value):
        raise InputError(message)
    if not lo <= int(value) <= hi:
        raise InputError(message)
    return int(value)


def parse_k(k, *, lo: int = 1, hi: int = 50) -> int:
    return parse_int_in_range(k, "k", lo, hi)


def parse_choice(value, choices: Sequence[str], name: str) -> str:
    if value not in choices:
        raise InputError(f"Unknown {name} {value!r}; choose one of: {', '.join(choices)}.")
    return value


def parse_labels(text_or_list, *, max_labels: int = 100, max_chars_each: int = 200) -> tuple[list[str], list[str]]:
    """Labels from a comma/newline-separated string or a list: cleaned, de-duplicated, 2..max_labels."""
    if text_or_list is None:
        raw: list[str] = []
    elif isinstance(text_or_list, str):
        raw = re.split(r"[,\n]", text_or_list)
    else:
        raw = [str(x) for x in text_or_list]
    labels, seen, notices = [], set(), []
    for label in (" ".join(_CONTROL.sub(" ", r).split()) for r in raw):
        if not label:
            continue
        if len(label) > max_chars_each:
            label = label[:max_chars_each]
            notices.append(f"A label was cut to {max_chars_each} characters.")
        if label.casefold() in seen:
            notices.append(f"The duplicate label {label!r} was dropped.")
            continue
        seen.add(label.casefold())
        labels.append(label)
    if len(labels) < 2:
        raise InputError("Give at least two labels, separated by commas.")
    if len(labels) > max_labels:
        raise InputError(f"Give at most {max_labels} labels (you gave {len(labels)}).")
    return labels, notices
