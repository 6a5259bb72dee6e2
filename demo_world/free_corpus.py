"""The open-vocabulary demo world as a `datasets` parquet corpus, in the first world's layout and schema family.

    python -m demo_world.free_corpus --out data/demo_world_free [--scale 0.1] [--px 128]
    python -m demo_world.free_corpus --out data/demo_world_free_legacy --legacy-icons --splits test --px 224

Same configs and columns as `demo_world.corpus` (so every pipeline and `evaluate` reads it with
`--dataset data/demo_world_free`), with two additions: each object also carries `category` and `concept_split`
("train" or "heldout", from `demo_world/concepts.tsv`), and each row a `background_style` (plain, gradient,
grain, stripes). Objects' `position` and `size` are the geometry words of `demo_world.free_scenes`
(`position` is "" where no position word is clearly true).

| config   | split   | rows   | concepts                                                             |
|----------|---------|--------|----------------------------------------------------------------------|
| scenes   | train   | 20,000 | train concepts only (an endless stream: any n)                       |
| scenes   | val     | 1,000  | train concepts only                                                  |
| scenes   | test    | 1,000  | train concepts only                                                  |
| scenes   | heldout | 1,000  | exactly one held-out concept each, with 0-3 train concepts           |
| products | train   | 2,800  | train product concepts, balanced over the seven categories           |
| products | val     | 700    | train product concepts                                               |
| products | test    | 700    | train product concepts                                               |
| products | heldout | 700    | held-out product concepts only, balanced over the seven categories   |

Held-out concepts never occur in a train or val split of either config (a test checks it), so a model trained
on train (and tuned on val) has never seen them.
"""
from __future__ import annotations

import argparse
import io
import logging
import zlib
from collections.abc import Iterator
from pathlib import Path

import numpy as np

from demo_world.concepts import Concept, load_concepts
from demo_world.corpus import DEFAULT_SEED, IMAGE_PX, features
from demo_world.free_captions import free_product_captions, free_product_description, free_scene_captions
from demo_world.free_scenes import (
    FreeScene, position_label, render_free, sample_free_product, sample_free_scene, size_label,
)
from demo_world.icons import CATEGORIES, load_icons

log = logging.getLogger(__name__)

SCENE_SPLITS = {"train": 20_000, "val": 1_000, "test": 1_000, "heldout": 1_000}
PRODUCT_SPLITS = {"train": 2_800, "val": 700, "test": 700, "heldout": 700}
TRAINING_SPLITS = ("train", "val")  # what a model may learn or be tuned on


def _rng(seed: int, config: str, split: str) -> np.random.Generator:
    return np.random.default_rng([seed, zlib.crc32(b"free-" + config.encode()), zlib.crc32(split.encode())])


def concept_pool(split: str, products: bool = False, legacy: bool = False) -> list[Concept]:
    """The concepts a split draws from: train concepts, or held-out ones for the heldout split; with `legacy`,
    only the first world's 103 icons (free layouts of the old vocabulary, to tell layout from vocabulary)."""
    want = "heldout" if split == "heldout" else "train"
    old = {i.codepoint for i in load_icons()} if legacy else None
    return [c for c in load_concepts()
            if c.split == want and (c.is_product or not products) and (old is None or c.codepoint in old)]


def iter_free_scenes(
    split: str, n: int, seed: int = DEFAULT_SEED, legacy: bool = False
) -> Iterator[tuple[FreeScene, list[str]]]:
    if legacy and split == "heldout":
        raise ValueError("the first world's icons hold no held-out concept")
    rng = _rng(seed, "scenes-legacy" if legacy else "scenes", split)
    seen = concept_pool("train", legacy=legacy)
    held = concept_pool("heldout") if split == "heldout" else None
    for i in range(n):
        extra = [held[int(rng.integers(len(held)))]] if held else None
        scene = sample_free_scene(rng, f"free-{split}-{i:06d}", seen, must_include=extra)
        yield scene, free_scene_captions(scene, rng)


def iter_free_products(split: str, n: int, seed: int = DEFAULT_SEED) -> Iterator[tuple[FreeScene, list[str], str]]:
    """Balanced over the seven categories; within a category, its concepts take turns."""
    rng = _rng(seed, "products", split)
    pool = concept_pool(split, products=True)
    by_category = {c: [p for p in pool if p.category == c] for c in CATEGORIES}
    for i, slot in enumerate(rng.permutation(n)):
        concepts = by_category[CATEGORIES[int(slot) % len(CATEGORIES)]]
        concept = concepts[(int(slot) // len(CATEGORIES)) % len(concepts)]
        scene = sample_free_product(rng, f"free-prod-{split}-{i:05d}", concept)
        yield scene, free_product_captions(scene, rng), free_product_description(scene, rng)


def free_features():
    import datasets as ds

    base = features()
    obj = {n: ds.Value("string") for n in ("name", "group", "category", "position", "size", "concept_split")}
    return ds.Features({**base, "objects": ds.List(obj | {"box": ds.List(ds.Value("float32"))}),
                        "background_style": ds.Value("string")})


def _png(scene: FreeScene, px: int) -> bytes:
    buf = io.BytesIO()
    render_free(scene, px).save(buf, format="PNG", optimize=True)
    return buf.getvalue()


def to_record(scene: FreeScene, captions: list[str], description: str = "", px: int = IMAGE_PX) -> dict:
    return {
        "id": scene.id,
        "image": {"bytes": _png(scene, px), "path": None},
        "captions": captions,
        "objects": [
            {"name": it.concept.name, "group": it.concept.group, "category": it.concept.category,
             "position": position_label(it.box), "size": size_label(it.side), "concept_split": it.concept.split,
             "box": list(it.box)}
            for it in scene.items
        ],
        "background": scene.background.label(),
        "category": scene.category,
        "description": description,
        "background_style": scene.background.style,
    }


def build_free_split(
    config: str, split: str, n: int, seed: int = DEFAULT_SEED, px: int = IMAGE_PX, legacy: bool = False
):
    import datasets as ds

    if config == "scenes":
        records = [to_record(s, c, px=px) for s, c in iter_free_scenes(split, n, seed, legacy)]
    elif config == "products":
        records = [to_record(s, c, d, px=px) for s, c, d in iter_free_products(split, n, seed)]
    else:
        raise ValueError(f"unknown config {config!r}; known: scenes, products")
    return ds.Dataset.from_list(records, features=free_features())


def write_free_corpus(out: Path, seed: int = DEFAULT_SEED, scale: float = 1.0, px: int = IMAGE_PX,
                      splits: list[str] | None = None, legacy: bool = False) -> Path:
    out.mkdir(parents=True, exist_ok=True)
    for config, sizes in (("scenes", SCENE_SPLITS), ("products", PRODUCT_SPLITS)):
        for split, n in sizes.items():
            if (splits and split not in splits) or (legacy and (config == "products" or split == "heldout")):
                continue
            n = max(7, int(n * scale))
            path = out / config / f"{split}-00000-of-00001.parquet"
            path.parent.mkdir(parents=True, exist_ok=True)
            build_free_split(config, split, n, seed, px, legacy).to_parquet(str(path))
            log.info("wrote %s (%d rows)", path, n)
    (out / "README.md").write_text(_card(seed, scale, px, legacy))
    return out


def _card(seed: int, scale: float, px: int, legacy: bool = False) -> str:
    configs = "\n".join(
        f"- config_name: {c}\n  data_files:\n"
        + "\n".join(f"  - split: {s}\n    path: {c}/{s}-*.parquet" for s in sizes)
        for c, sizes in (("scenes", SCENE_SPLITS), ("products", PRODUCT_SPLITS))
    )
    return (
        f"---\nlicense: cc-by-sa-4.0\nconfigs:\n{configs}\n---\n# Vision-Language Studio open-vocabulary demo world\n\n"
        f"Generated by `python -m demo_world.free_corpus --seed {seed} --scale {scale} --px {px}"
        f"{' --legacy-icons' if legacy else ''}`.\n"
        "Icons: OpenMoji (https://openmoji.org), CC BY-SA 4.0.\n\n" + (__doc__ or "")
    )


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description="Write the open-vocabulary demo world (free layouts) as datasets parquet.")
    p.add_argument("--out", type=Path, default=Path("data/demo_world_free"))
    p.add_argument("--seed", type=int, default=DEFAULT_SEED)
    p.add_argument("--scale", type=float, default=1.0, help="multiply every split size (for quick runs)")
    p.add_argument("--px", type=int, default=IMAGE_PX)
    p.add_argument("--splits", nargs="*", default=None, help="only these splits (default: all)")
    p.add_argument("--legacy-icons", action="store_true",
                   help="scenes of the first world's 103 icons only, in free layouts (no products, no heldout split)")
    args = p.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    write_free_corpus(args.out, args.seed, args.scale, args.px, args.splits, args.legacy_icons)


if __name__ == "__main__":
    main()
