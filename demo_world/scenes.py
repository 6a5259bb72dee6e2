"""Scene specifications for the demo world: sampling, captions and rendering.

A *scene* is a coloured background with one to three OpenMoji icons at named positions and sizes; a
*product* is one catalogue item on a light background. Everything is a pure function of a seed, so the
corpus, its splits and its held-out combinations can be rebuilt bit for bit.
"""
from __future__ import annotations

import itertools
from dataclasses import dataclass
from functools import lru_cache

import numpy as np
from PIL import Image

from demo_world.icons import Icon, load_icons, render_icon

BACKGROUNDS: dict[str, tuple[int, int, int]] = {
    "red": (215, 48, 39),
    "orange": (245, 140, 40),
    "yellow": (250, 215, 60),
    "green": (70, 165, 75),
    "blue": (45, 105, 215),
    "purple": (135, 75, 180),
    "pink": (245, 150, 195),
    "brown": (135, 90, 55),
    "gray": (145, 145, 145),
    "white": (250, 250, 250),
}
PRODUCT_BACKGROUNDS: dict[str, tuple[int, int, int]] = {
    "white": (252, 252, 252),
    "light gray": (232, 232, 232),
    "cream": (250, 242, 222),
    "pale blue": (224, 236, 250),
}
# Named positions: the centre of each cell of a 3x3 grid, in normalised (x, y).
POSITIONS: dict[str, tuple[float, float]] = {
    "top left": (1 / 6, 1 / 6), "top": (3 / 6, 1 / 6), "top right": (5 / 6, 1 / 6),
    "left": (1 / 6, 3 / 6), "center": (3 / 6, 3 / 6), "right": (5 / 6, 3 / 6),
    "bottom left": (1 / 6, 5 / 6), "bottom": (3 / 6, 5 / 6), "bottom right": (5 / 6, 5 / 6),
}  # fmt: skip
SIZES: dict[str, float] = {"small": 0.30, "large": 0.46}  # icon side as a fraction of the image side
POSITION_JITTER = 0.04
MAX_OVERLAP = 0.15  # largest allowed intersection, as a fraction of the smaller icon's area


@dataclass(frozen=True)
class Placed:
    icon: Icon
    position: str
    size: str
    box: tuple[float, float, float, float]  # normalised (x0, y0, x1, y1)


@dataclass(frozen=True)
class Scene:
    id: str
    background: str
    items: tuple[Placed, ...]
    kind: str = "scene"  # "scene" or "product"

    @property
    def category(self) -> str:
        return self.items[0].icon.group if self.kind == "product" else ""

    def key(self) -> tuple:
        """Identity of the scene up to jitter, used to keep training scenes out of the test splits."""
        return (self.kind, self.background, tuple(sorted((p.icon.name, p.position, p.size) for p in self.items)))

    def background_rgb(self) -> tuple[int, int, int]:
        table = PRODUCT_BACKGROUNDS if self.kind == "product" else BACKGROUNDS
        return table[self.background]


def scene_icons() -> tuple[Icon, ...]:
    """Icons that appear in scenes: every icon, products included, so scene captions teach product words."""
    return load_icons()


def product_icons() -> tuple[Icon, ...]:
    return tuple(i for i in load_icons() if i.is_product)


def _box(center: tuple[float, float], side: float) -> tuple[float, float, float, float]:
    x = min(max(center[0], side / 2), 1 - side / 2)  # shift inside the image rather than crop
    y = min(max(center[1], side / 2), 1 - side / 2)
    return (x - side / 2, y - side / 2, x + side / 2, y + side / 2)


def _overlap(a: tuple, b: tuple) -> float:
    w = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    h = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    smaller = min((a[2] - a[0]) * (a[3] - a[1]), (b[2] - b[0]) * (b[3] - b[1]))
    return w * h / smaller


def _place(rng: np.random.Generator, icons: list[Icon]) -> tuple[Placed, ...] | None:
    names = rng.choice(list(POSITIONS), size=len(icons), replace=False)
    placed = []
    for icon, pos in zip(icons, names):
        size = str(rng.choice(list(SIZES)))
        cx, cy = POSITIONS[str(pos)]
        jitter = rng.uniform(-POSITION_JITTER, POSITION_JITTER, size=2)
        box = _box((cx + jitter[0], cy + jitter[1]), SIZES[size])
        if any(_overlap(box, p.box) > MAX_OVERLAP for p in placed):
            return None
        placed.append(Placed(icon, str(pos), size, box))
    return tuple(placed)


@dataclass(frozen=True)
class HeldOut:
    """Combinations never shown in training: an icon on a background, or two icons together."""

    icon_background: frozenset[tuple[str, str]]
    icon_pairs: frozenset[frozenset[str]]

    def hits(self, background: str, names: list[str]) -> bool:
        if any((n, background) in self.icon_background for n in names):
            return True
        return any(frozenset(p) in self.icon_pairs for p in itertools.combinations(names, 2))


@lru_cache(maxsize=8)
def held_out_combinations(seed: int = 0, frac_background: float = 0.08, n_pairs: int = 80) -> HeldOut:
    rng = np.random.default_rng([seed, 7])
    names = [i.name for i in scene_icons()]
    pairs = [(n, b) for n in names for b in BACKGROUNDS]
    chosen = rng.choice(len(pairs), size=int(len(pairs) * frac_background), replace=False)
    combos = list(itertools.combinations(names, 2))
    chosen_pairs = rng.choice(len(combos), size=n_pairs, replace=False)
    return HeldOut(
        frozenset(pairs[i] for i in chosen),
        frozenset(frozenset(combos[i]) for i in chosen_pairs),
    )


def sample_scene(rng: np.random.Generator, scene_id: str, held_out: HeldOut, want_held_out: bool) -> Scene:
    """One scene; rejection-sampled so it contains a held-out combination iff `want_held_out`."""
    icons = scene_icons()
    while True:
        n = int(rng.choice([1, 2, 3], p=[0.3, 0.4, 0.3]))
        chosen = [icons[i] for i in rng.choice(len(icons), size=n, replace=False)]
        background = str(rng.choice(list(BACKGROUNDS)))
        if held_out.hits(background, [i.name for i in chosen]) != want_held_out:
            continue
        items = _place(rng, chosen)
        if items is not None:
            return Scene(scene_id, background, items)


def sample_product(rng: np.random.Generator, scene_id: str, icon: Icon) -> Scene:
    side = float(rng.uniform(0.55, 0.8))
    center = (0.5 + rng.uniform(-0.06, 0.06), 0.5 + rng.uniform(-0.06, 0.06))
    background = str(rng.choice(list(PRODUCT_BACKGROUNDS)))
    return Scene(scene_id, background, (Placed(icon, "center", "large", _box(center, side)),), kind="product")


def render(scene: Scene, px: int = 128, rng_jitter: int | None = None) -> Image.Image:
    """Draw a scene at `px` x `px` pixels. `rng_jitter` seeds a small background-tint variation."""
    rgb = np.array(scene.background_rgb(), dtype=np.float32)
    if rng_jitter is not None:
        rgb = np.clip(rgb + np.random.default_rng(rng_jitter).integers(-12, 13, size=3), 0, 255)
    canvas = np.empty((px, px, 3), dtype=np.float32)
    canvas[:] = rgb / 255.0
    for item in scene.items:
        x0, y0, x1, y1 = (round(v * px) for v in item.box)
        side = min(x1 - x0, y1 - y0)
        icon = render_icon(item.icon.codepoint, side)  # (side, side, 4)
        alpha = icon[..., 3:4]
        region = canvas[y0 : y0 + side, x0 : x0 + side]
        region[:] = region * (1 - alpha) + icon[..., :3] * alpha
    return Image.fromarray((canvas * 255 + 0.5).astype(np.uint8))
