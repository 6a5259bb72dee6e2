"""Pictures our generator never makes: the visitor-like check of every bundled model.

    python -m demo_world.visitor_pictures --out data/visitor_check

A visitor's upload is not a square on a flat, gradient or striped background with upright icons. These pictures
are composed by this module alone, not by `demo_world.free_scenes`: non-square canvases of the sizes people
upload (320x240, 240x320, 400x300, 300x300), cloudy colour fields, noisy or two-tone backgrounds, icons rotated by
up to 30 degrees, and JPEG compression at quality 70, which the training pictures never had. Concepts are drawn
from the whole table, seen and held-out alike (each object's `concept_split` says which). Written in the corpus
layout (`scenes/test` with one to three objects, `products/test` with one product each), so `evaluate` scores them
exactly as the test splits: `python -m evaluation.evaluate --model M --dataset data/visitor_check --config C
--split test`.
"""
from __future__ import annotations

import argparse
import io
import logging
from pathlib import Path

import numpy as np
from PIL import Image

from demo_world.concepts import Concept, load_concepts
from demo_world.icons import render_icon

log = logging.getLogger(__name__)

SEED = 7  # another seed than the corpus's
CANVASES = ((320, 240), (240, 320), (400, 300), (300, 300))
JPEG_QUALITY = 70


def _background(rng: np.random.Generator, w: int, h: int) -> np.ndarray:
    """(h, w, 3) in [0, 1]: a cloudy colour field, a noisy plain colour, or two tones split on a slant."""
    kind = rng.integers(3)
    if kind == 0:
        low = Image.fromarray((rng.random((3, 4, 3)) * 255).astype(np.uint8))
        return np.asarray(low.resize((w, h), Image.BICUBIC), dtype=np.float32) / 255
    if kind == 1:
        base = rng.random(3)
        return np.clip(base + rng.normal(0, 0.08, size=(h, w, 3)), 0, 1).astype(np.float32)
    a, b = rng.random(3), rng.random(3)
    yy, xx = np.mgrid[0:h, 0:w]
    side = (xx * rng.uniform(-1, 1) + yy * rng.uniform(-1, 1)) > rng.uniform(0.2, 0.8) * (w + h) / 2
    return np.where(side[..., None], a, b).astype(np.float32)


def _paste(canvas: np.ndarray, concept: Concept, side: int, angle: float, x: int, y: int) -> list[float]:
    """Paste the icon rotated by `angle` with its top-left corner at (x, y); returns its normalised bounding box
    of visible pixels (x0, y0, x1, y1)."""
    h, w = canvas.shape[:2]
    icon = Image.fromarray((render_icon(concept.codepoint, side) * 255).astype(np.uint8), "RGBA")
    icon = icon.rotate(angle, resample=Image.BICUBIC, expand=True)
    if icon.width > w or icon.height > h:  # a large icon turned on its corner: shrink it into the frame
        icon.thumbnail((w, h), Image.BICUBIC)
    icon = np.asarray(icon, dtype=np.float32) / 255
    ih, iw = icon.shape[:2]
    x, y = min(max(0, x), w - iw), min(max(0, y), h - ih)
    alpha = icon[..., 3:4]
    region = canvas[y : y + ih, x : x + iw]
    region[:] = region * (1 - alpha) + icon[..., :3] * alpha
    ys, xs = np.nonzero(icon[..., 3] > 0.1)
    return [(x + xs.min()) / w, (y + ys.min()) / h, (x + xs.max() + 1) / w, (y + ys.max() + 1) / h]


def _jpeg(canvas: np.ndarray) -> bytes:
    buf = io.BytesIO()
    Image.fromarray((canvas * 255 + 0.5).astype(np.uint8)).save(buf, format="JPEG", quality=JPEG_QUALITY)
    return buf.getvalue()


def _record(rng: np.random.Generator, i: int, config: str, concepts: list[Concept]) -> dict:
    w, h = CANVASES[int(rng.integers(len(CANVASES)))]
    canvas = _background(rng, w, h)
    objects = []
    for concept in concepts:
        side = int(min(w, h) * (rng.uniform(0.45, 0.75) if config == "products" else rng.uniform(0.22, 0.45)))
        box = _paste(canvas, concept, side, float(rng.uniform(-30, 30)), int(rng.integers(0, w)), int(rng.integers(0, h)))
        objects.append({"name": concept.name, "group": concept.group, "category": concept.category, "position": "",
                        "size": "", "concept_split": concept.split, "box": box})
    names = " and ".join(f"a {c.name}" for c in concepts)
    return {
        "id": f"visitor-{config}-{i:05d}",
        "image": {"bytes": _jpeg(canvas), "path": None},
        "captions": [f"a picture of {names}", f"{names}", f"a photo showing {names}"],
        "objects": objects,
        "background": "",
        "category": concepts[0].category if config == "products" else "",
        "description": "",
        "background_style": "visitor",
    }


def build(config: str, n: int, seed: int = SEED):
    """`n` pictures of `config` ("scenes": 1-3 concepts, about a third of them held out; "products": one product
    concept, half of them held out) as a `datasets.Dataset` in the open-vocabulary corpus schema."""
    import datasets as ds

    from demo_world.free_corpus import free_features

    rng = np.random.default_rng([seed, 1 if config == "products" else 0])
    table = load_concepts()
    if config == "products":
        pools = {s: [c for c in table if c.is_product and c.split == s] for s in ("train", "heldout")}
        picks = [[pools["heldout" if i % 2 else "train"][int(rng.integers(len(pools["heldout" if i % 2 else "train"])))]]
                 for i in range(n)]
    elif config == "scenes":
        pools = {s: [c for c in table if c.split == s] for s in ("train", "heldout")}
        picks = []
        for _ in range(n):
            chosen: list[Concept] = []
            while len(chosen) < int(rng.integers(1, 4)):
                pool = pools["heldout" if rng.random() < 0.3 else "train"]
                c = pool[int(rng.integers(len(pool)))]
                if c not in chosen:
                    chosen.append(c)
            picks.append(chosen)
    else:
        raise ValueError(f"unknown config {config!r}; known: scenes, products")
    records = [_record(rng, i, config, concepts) for i, concepts in enumerate(picks)]
    return ds.Dataset.from_list(records, features=free_features())


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--out", type=Path, default=Path("data/visitor_check"))
    p.add_argument("--n", type=int, default=500, help="pictures per config")
    args = p.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    for config in ("scenes", "products"):
        path = args.out / config / "test-00000-of-00001.parquet"
        path.parent.mkdir(parents=True, exist_ok=True)
        build(config, args.n).to_parquet(str(path))
        log.info("wrote %s", path)


if __name__ == "__main__":
    main()
