"""Free-layout scenes for the open-vocabulary demo world: continuous positions and sizes, any background colour.

A *free scene* holds one to four concepts (`demo_world.concepts`) in square boxes anywhere in the frame, from
small to filling it, drawn in order (later ones in front), partial overlaps allowed. The background is any RGB
colour, named by its nearest everyday colour name (CIELAB distance), plain or with a gradient, grain or stripes.
Everything is in normalised coordinates and the background texture is defined at a fixed resolution, so a scene
renders the same picture at 128 px and at any larger size (up to resampling).

The words a caption may use about geometry are decided here, from the boxes, with dead zones so that a word is
only used where it is clearly true: `position_label`, `size_label`, `relation`.
"""
from __future__ import annotations

from dataclasses import dataclass
import numpy as np
from PIL import Image

from demo_world.concepts import Concept
from demo_world.icons import render_icon

# Everyday colour names and a representative sRGB value each. None of them names a concept (checked by a test),
# so a colour word in a caption is never mistaken for an object.
COLOURS: dict[str, tuple[int, int, int]] = {
    "red": (215, 40, 40), "dark red": (125, 20, 25), "orange": (245, 140, 30), "yellow": (250, 220, 50),
    "beige": (225, 205, 165), "cream": (250, 242, 218), "brown": (130, 85, 45), "green": (60, 170, 60),
    "dark green": (25, 90, 40), "light green": (165, 225, 140), "teal": (0, 128, 128), "turquoise": (64, 210, 200),
    "light blue": (155, 200, 240), "blue": (40, 90, 220), "navy blue": (20, 30, 100), "purple": (130, 60, 170),
    "lavender": (200, 175, 230), "pink": (245, 150, 190), "magenta": (215, 40, 170), "white": (250, 250, 250),
    "light gray": (205, 205, 205), "gray": (128, 128, 128), "dark gray": (60, 60, 60), "black": (15, 15, 15),
}  # fmt: skip
COLOUR_NAMES = tuple(COLOURS)
LIGHT_COLOURS = ("white", "cream", "light gray", "light blue", "lavender", "beige")  # product backdrops
STYLES = {"plain": 0.55, "gradient": 0.25, "grain": 0.1, "stripes": 0.1}
TEXTURE_GRID = 16  # grain is drawn on a 16x16 grid and upsampled: the same texture at every output size
N_OBJECTS = {1: 0.25, 2: 0.3, 3: 0.25, 4: 0.2}
SIDE_RANGE = {1: (0.18, 0.95), 2: (0.15, 0.6), 3: (0.13, 0.5), 4: (0.12, 0.45)}  # box side / image side
MAX_PAIR_OVERLAP = 0.35  # intersection / smaller box area, for any two objects
MIN_VISIBLE = 0.6  # each object keeps at least this share of its box uncovered by later objects (box estimate)

# Geometry words. A word is used only when the object's centre is clearly inside its zone.
EDGE, MID = 0.3, 0.1  # "left" when cx < 0.3; "center" when |cx - 0.5| <= 0.1; nothing in between
FILLS_FRAME = 0.7  # a box this large (side) fills the picture: no position word, "filling the picture"
SMALL, LARGE = 0.25, 0.45  # size words: small <= 0.25 < (no word) < 0.45 <= large < 0.7 <= huge


def _srgb_to_lab(rgb: np.ndarray) -> np.ndarray:
    """(..., 3) sRGB in 0-255 -> CIELAB (D65)."""
    c = np.asarray(rgb, dtype=np.float64) / 255.0
    lin = np.where(c <= 0.04045, c / 12.92, ((c + 0.055) / 1.055) ** 2.4)
    m = np.array([[0.4124, 0.3576, 0.1805], [0.2126, 0.7152, 0.0722], [0.0193, 0.1192, 0.9505]])
    xyz = lin @ m.T / np.array([0.95047, 1.0, 1.08883])
    f = np.where(xyz > (6 / 29) ** 3, np.cbrt(xyz), xyz / (3 * (6 / 29) ** 2) + 4 / 29)
    return np.stack([116 * f[..., 1] - 16, 500 * (f[..., 0] - f[..., 1]), 200 * (f[..., 1] - f[..., 2])], -1)


_PALETTE_LAB = _srgb_to_lab(np.array(list(COLOURS.values())))


def colour_name(rgb) -> str:
    """The nearest everyday colour name (Euclidean distance in CIELAB)."""
    d = np.linalg.norm(_PALETTE_LAB - _srgb_to_lab(np.asarray(rgb)), axis=-1)
    return COLOUR_NAMES[int(np.argmin(d))]


@dataclass(frozen=True)
class Background:
    style: str  # plain, gradient, grain or stripes
    rgb: tuple[int, int, int]
    rgb2: tuple[int, int, int] = (0, 0, 0)  # the gradient's other end
    angle: float = 0.0  # gradient direction or stripe orientation, radians
    seed: int = 0  # grain texture

    @property
    def name(self) -> str:
        return colour_name(self.rgb)

    @property
    def name2(self) -> str:
        return colour_name(self.rgb2)

    def label(self) -> str:
        """What the `background` column holds: the colour name, or "red to blue" for a two-colour gradient."""
        if self.style == "gradient" and self.name2 != self.name:
            return f"{self.name} to {self.name2}"
        return self.name

    def phrase(self) -> str:
        """A noun phrase for captions: "a red background", "a background fading from red to blue", ..."""
        if self.style == "gradient":
            if self.name2 != self.name:
                return f"a background fading from {self.name} to {self.name2}"
            return f"a {self.name} gradient background"
        if self.style == "grain":
            return f"a grainy {self.name} background"
        if self.style == "stripes":
            return f"a striped {self.name} background"
        return f"a {self.name} background"

    def render(self, px: int) -> np.ndarray:
        """(px, px, 3) float32 in [0, 1]."""
        y, x = (np.mgrid[0:px, 0:px].astype(np.float32) + 0.5) / px  # normalised pixel centres
        base = np.array(self.rgb, dtype=np.float32) / 255
        if self.style == "gradient":
            t = (x - 0.5) * np.cos(self.angle) + (y - 0.5) * np.sin(self.angle)
            t = np.clip(t / 1.42 + 0.5, 0, 1)[..., None]  # 0 at one corner side, 1 at the other
            return (base * (1 - t) + np.array(self.rgb2, dtype=np.float32) / 255 * t).astype(np.float32)
        img = np.broadcast_to(base, (px, px, 3)).astype(np.float32)
        if self.style == "grain":
            noise = np.random.default_rng(self.seed).uniform(-1, 1, (TEXTURE_GRID, TEXTURE_GRID)).astype(np.float32)
            up = np.asarray(Image.fromarray(noise, mode="F").resize((px, px), Image.BILINEAR))
            img = img + 0.07 * up[..., None]
        elif self.style == "stripes":
            u = x * np.cos(self.angle) + y * np.sin(self.angle)
            img = img + 0.06 * np.sign(np.sin(2 * np.pi * 6 * u))[..., None]  # six stripe pairs across the frame
        return np.clip(img, 0, 1)


@dataclass(frozen=True)
class FreeItem:
    concept: Concept
    box: tuple[float, float, float, float]  # normalised (x0, y0, x1, y1); square in pixels

    @property
    def side(self) -> float:
        return self.box[2] - self.box[0]

    @property
    def center(self) -> tuple[float, float]:
        return ((self.box[0] + self.box[2]) / 2, (self.box[1] + self.box[3]) / 2)


@dataclass(frozen=True)
class FreeScene:
    id: str
    background: Background
    items: tuple[FreeItem, ...]  # in drawing order: later items are in front
    kind: str = "scene"  # "scene" or "product"

    @property
    def category(self) -> str:
        return self.items[0].concept.category if self.kind == "product" else ""


# --- geometry words -----------------------------------------------------------------------------------------


def horizontal(cx: float) -> str | None:
    if cx < EDGE:
        return "left"
    if cx > 1 - EDGE:
        return "right"
    return "center" if abs(cx - 0.5) <= MID else None


def vertical(cy: float) -> str | None:
    if cy < EDGE:
        return "top"
    if cy > 1 - EDGE:
        return "bottom"
    return "middle" if abs(cy - 0.5) <= MID else None


def position_label(box: tuple[float, float, float, float]) -> str:
    """"top left", "top", "left", "center", ... or "" when no position word is clearly true."""
    if box[2] - box[0] >= FILLS_FRAME:
        return ""
    h, v = horizontal((box[0] + box[2]) / 2), vertical((box[1] + box[3]) / 2)
    if v in ("top", "bottom") and h in ("left", "right"):
        return f"{v} {h}"
    if v in ("top", "bottom"):
        return v
    if h in ("left", "right"):
        return h
    return "center" if (v, h) == ("middle", "center") else ""


def size_label(side: float) -> str:
    if side >= FILLS_FRAME:
        return "huge"
    if side >= LARGE:
        return "large"
    return "small" if side <= SMALL else "medium"


def overlap(a: tuple, b: tuple) -> float:
    """Intersection area as a fraction of the smaller box."""
    w = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    h = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    return w * h / min((a[2] - a[0]) * (a[3] - a[1]), (b[2] - b[0]) * (b[3] - b[1]))


RELATION_GAP = 0.02  # boxes must be apart by this much for "left of" / "above"


def relation(a: FreeItem, b: FreeItem, a_in_front: bool) -> str | None:
    """A true spatial relation of `a` to `b`, or None: "to the left of", "to the right of", "above", "below",
    "in front of" (overlapping, `a` drawn later) or "behind"."""
    if a.box[2] + RELATION_GAP <= b.box[0]:
        return "to the left of"
    if b.box[2] + RELATION_GAP <= a.box[0]:
        return "to the right of"
    if a.box[3] + RELATION_GAP <= b.box[1]:
        return "above"
    if b.box[3] + RELATION_GAP <= a.box[1]:
        return "below"
    if overlap(a.box, b.box) >= 0.1:
        return "in front of" if a_in_front else "behind"
    return None


# --- sampling -----------------------------------------------------------------------------------------------


def _random_rgb(rng: np.random.Generator) -> tuple[int, int, int]:
    return tuple(int(v) for v in rng.integers(0, 256, size=3))


def sample_background(rng: np.random.Generator, colours: tuple[str, ...] | None = None) -> Background:
    """Any colour (uniform in RGB), or, for products, a jittered light colour from `colours`, always plain."""
    if colours is not None:
        base = np.array(COLOURS[colours[int(rng.integers(len(colours)))]])
        rgb = tuple(int(v) for v in np.clip(base + rng.integers(-6, 7, size=3), 0, 255))
        return Background("plain", rgb)
    style = str(rng.choice(list(STYLES), p=list(STYLES.values())))
    rgb = _random_rgb(rng)
    rgb2 = _random_rgb(rng) if style == "gradient" else (0, 0, 0)
    angle = float(rng.uniform(0, 2 * np.pi)) if style in ("gradient", "stripes") else 0.0
    seed = int(rng.integers(2**31)) if style == "grain" else 0
    return Background(style, rgb, rgb2, angle, seed)


def _fits(boxes: list[tuple]) -> bool:
    for i, a in enumerate(boxes):
        covered = 0.0
        for b in boxes[i + 1 :]:
            o = overlap(a, b)
            if o > MAX_PAIR_OVERLAP:
                return False
            covered += o * min(1.0, ((b[2] - b[0]) / (a[2] - a[0])) ** 2)  # share of a's own area
        if covered > 1 - MIN_VISIBLE:
            return False
    return True


def sample_boxes(rng: np.random.Generator, n: int, side_range: tuple[float, float] | None = None) -> list[tuple]:
    """`n` square boxes inside the frame, continuous positions and log-uniform sides, overlaps within bounds."""
    lo, hi = side_range or SIDE_RANGE[n]
    while True:
        boxes = []
        for side in np.exp(rng.uniform(np.log(lo), np.log(hi), size=n)):
            x0, y0 = rng.uniform(0, 1 - side, size=2)
            boxes.append((float(x0), float(y0), float(x0 + side), float(y0 + side)))
        if _fits(boxes):
            return boxes


def sample_free_scene(rng: np.random.Generator, scene_id: str, pool: list[Concept],
                      must_include: list[Concept] | None = None) -> FreeScene:
    """1-4 distinct concepts from `pool` (plus `must_include`, placed at a random drawing depth)."""
    n = int(rng.choice(list(N_OBJECTS), p=list(N_OBJECTS.values())))
    extra = list(must_include or [])
    n = max(n, len(extra))
    names = {c.name for c in extra}
    rest = [c for c in pool if c.name not in names]
    concepts = extra + [rest[i] for i in rng.choice(len(rest), size=n - len(extra), replace=False)]
    concepts = [concepts[i] for i in rng.permutation(n)]
    boxes = sample_boxes(rng, n)
    return FreeScene(scene_id, sample_background(rng), tuple(FreeItem(c, b) for c, b in zip(concepts, boxes)))


def sample_free_product(rng: np.random.Generator, scene_id: str, concept: Concept) -> FreeScene:
    """One product, 45-85% of the frame, centred within 0.1 (so "in the middle" is true), light plain background."""
    side = float(rng.uniform(0.45, 0.85))
    cx, cy = np.clip(0.5 + rng.uniform(-0.1, 0.1, size=2), side / 2, 1 - side / 2)
    box = (float(cx - side / 2), float(cy - side / 2), float(cx + side / 2), float(cy + side / 2))
    return FreeScene(scene_id, sample_background(rng, LIGHT_COLOURS), (FreeItem(concept, box),), kind="product")


# --- rendering ----------------------------------------------------------------------------------------------


def render_free(scene: FreeScene, px: int = 128) -> Image.Image:
    """Draw a free scene at `px` x `px` pixels."""
    canvas = scene.background.render(px)
    for item in scene.items:
        side = max(1, round(item.side * px))
        x0, y0 = round(item.box[0] * px), round(item.box[1] * px)
        x0, y0 = min(max(0, x0), px - side), min(max(0, y0), px - side)
        icon = render_icon(item.concept.codepoint, side)  # (side, side, 4)
        alpha = icon[..., 3:4]
        region = canvas[y0 : y0 + side, x0 : x0 + side]
        region[:] = region * (1 - alpha) + icon[..., :3] * alpha
    return Image.fromarray((canvas * 255 + 0.5).astype(np.uint8))
