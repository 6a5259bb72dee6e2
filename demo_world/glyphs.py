"""Fast picture composition for training: every glyph rasterised once, scenes composed with numpy.

`render_free` rasterises each icon with resvg at its exact pixel size, which is right for corpora and slow for
training loops that draw fresh pictures every epoch. A `GlyphAtlas` rasterises every concept once at `px` and
composes a `FreeScene` by resizing those arrays (Pillow resizes RGBA with premultiplied alpha), so a picture costs
about a millisecond. Optional augmentations make training pictures less like the generator's own: glyphs rotated,
canvases blurred or JPEG-compressed, noise on the background.

    atlas = GlyphAtlas(160)
    image = atlas.compose(scene, 160, rng=np.random.default_rng(0), augment=True)   # (160, 160, 3) uint8
"""
from __future__ import annotations

import io
import logging
from pathlib import Path

import numpy as np
from PIL import Image, ImageFilter

from demo_world.concepts import Concept, load_concepts
from demo_world.free_scenes import FreeScene
from demo_world.icons import render_icon

log = logging.getLogger(__name__)


class GlyphAtlas:
    """Every concept's glyph as (px, px, 4) uint8 RGBA, rendered once (and cached under `cache_dir` if given)."""

    def __init__(self, px: int, concepts: tuple[Concept, ...] | None = None, cache_dir: Path | None = None):
        self.px = px
        self.concepts = tuple(concepts or load_concepts())
        cache = Path(cache_dir) / f"glyphs-{px}-{len(self.concepts)}.npy" if cache_dir else None
        if cache is not None and cache.exists():
            self.rgba = np.load(cache)
        else:
            self.rgba = np.stack([(render_icon(c.codepoint, px) * 255 + 0.5).astype(np.uint8) for c in self.concepts])
            if cache is not None:
                cache.parent.mkdir(parents=True, exist_ok=True)
                np.save(cache, self.rgba)
        self.row = {c.codepoint: i for i, c in enumerate(self.concepts)}

    def glyph(self, concept: Concept, side: int, angle: float = 0.0) -> np.ndarray:
        """(side, side, 4) float32 in [0, 1], rotated by `angle` degrees about its centre (corners stay clear)."""
        im = Image.fromarray(self.rgba[self.row[concept.codepoint]], "RGBA")
        if angle:
            im = im.rotate(angle, resample=Image.BICUBIC)
        return np.asarray(im.resize((side, side), Image.LANCZOS), dtype=np.float32) / 255

    def compose(self, scene: FreeScene, px: int, rng: np.random.Generator | None = None,
                augment: bool = False) -> np.ndarray:
        """The scene at `px` x `px` as uint8 RGB; with `augment`, a randomly perturbed version of it."""
        canvas = scene.background.render(px)
        if augment and rng.random() < 0.3:
            canvas = np.clip(canvas + rng.normal(0, rng.uniform(0.01, 0.06), canvas.shape).astype(np.float32), 0, 1)
        for item in scene.items:
            side = max(1, round(item.side * px))
            x0, y0 = round(item.box[0] * px), round(item.box[1] * px)
            x0, y0 = min(max(0, x0), px - side), min(max(0, y0), px - side)
            angle = float(rng.uniform(-25, 25)) if augment and rng.random() < 0.4 else 0.0
            icon = self.glyph(item.concept, side, angle)
            alpha = icon[..., 3:4]
            region = canvas[y0 : y0 + side, x0 : x0 + side]
            region[:] = region * (1 - alpha) + icon[..., :3] * alpha
        out = (canvas * 255 + 0.5).astype(np.uint8)
        if augment:
            out = _perturb(out, rng)
        return out


def _perturb(image: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Photometric noise a visitor's copy of a picture picks up: blur, JPEG, brightness and contrast."""
    im = Image.fromarray(image)
    if rng.random() < 0.2:
        im = im.filter(ImageFilter.GaussianBlur(float(rng.uniform(0.3, 1.2))))
    if rng.random() < 0.3:
        buf = io.BytesIO()
        im.save(buf, format="JPEG", quality=int(rng.integers(40, 90)))
        im = Image.open(io.BytesIO(buf.getvalue())).convert("RGB")
    out = np.asarray(im, dtype=np.float32)
    if rng.random() < 0.3:
        out = (out - 128) * rng.uniform(0.8, 1.2) + 128 + rng.uniform(-20, 20)
    return np.clip(out + 0.5, 0, 255).astype(np.uint8)
