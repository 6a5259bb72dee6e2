"""The open-vocabulary demo world as a Hugging Face `datasets` parquet corpus: splits, schema, the CLI that
writes it, and the readers of the corpus layout.

    python -m demo_world.free_corpus --out data/demo_world_free [--scale 0.1] [--px 128] [--splits val test]

The corpus layout is `<config>/<split>-NNNNN-of-NNNNN.parquet` (plus a README card), and its schema (`features`) is
shared with the real datasets the pipelines map to it (`core.layouts`), so one code path serves both:

| column      | type                                                        | meaning                              |
|-------------|-------------------------------------------------------------|--------------------------------------|
| id          | string                                                      | unique within the config             |
| image       | Image (PNG bytes)                                           | the picture                          |
| captions    | list<string>                                                | reference captions (5 for the demo)  |
| objects     | list<{name, group, position, size: string, box: list<float>}> | objects with normalised x0,y0,x1,y1 boxes (empty for real data) |
| background  | string                                                      | background colour name ("" if none)  |
| category    | string                                                      | catalogue category ("" for scenes)   |
| description | string                                                      | product description ("" for scenes)  |

The demo world's corpus (`free_features`) adds: each object's `category` and `concept_split` ("train" or
"heldout", from `demo_world/concepts.tsv`), and each row's `background_style` (plain, gradient, grain, stripes).
Objects' `position` and `size` are the geometry words of `demo_world.free_scenes` (`position` is "" where no
position word is clearly true).

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

from demo_world.concepts import CATEGORIES, Concept, load_concepts
from demo_world.free_captions import free_product_captions, free_product_description, free_scene_captions
from demo_world.free_scenes import (
    FreeScene, position_label, render_free, sample_free_product, sample_free_scene, size_label,
)

log = logging.getLogger(__name__)

DEFAULT_SEED = 0
IMAGE_PX = 128
SCENE_SPLITS = {"train": 20_000, "val": 1_000, "test": 1_000, "heldout": 1_000}
PRODUCT_SPLITS = {"train": 2_800, "val": 700, "test": 700, "heldout": 700}
TRAINING_SPLITS = ("train", "val")  # what a model may learn or be tuned on


def _rng(seed: int, config: str, split: str) -> np.random.Generator:
    return np.random.default_rng([seed, zlib.crc32(b"free-" + config.encode()), zlib.crc32(split.encode())])


def concept_pool(split: str, products: bool = False) -> list[Concept]:
    """The concepts a split draws from: train concepts, or held-out ones for the heldout split."""
    want = "heldout" if split == "heldout" else "train"
    return [c for c in load_concepts() if c.split == want and (c.is_product or not products)]


def iter_free_scenes(split: str, n: int, seed: int = DEFAULT_SEED) -> Iterator[tuple[FreeScene, list[str]]]:
    """The first `n` scenes of a split, with their captions; `train` is an endless stream (any n works)."""
    rng = _rng(seed, "scenes", split)
    seen = concept_pool("train")
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


def features():
    """The corpus layout's schema (see the module's docstring)."""
    import datasets as ds

    obj = {n: ds.Value("string") for n in ("name", "group", "position", "size")} | {"box": ds.List(ds.Value("float32"))}
    return ds.Features(
        {
            "id": ds.Value("string"),
            "image": ds.Image(),
            "captions": ds.List(ds.Value("string")),
            "objects": ds.List(obj),
            "background": ds.Value("string"),
            "category": ds.Value("string"),
            "description": ds.Value("string"),
        }
    )


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


def build_free_split(config: str, split: str, n: int, seed: int = DEFAULT_SEED, px: int = IMAGE_PX):
    """One split as a `datasets.Dataset`."""
    import datasets as ds

    if config == "scenes":
        records = [to_record(s, c, px=px) for s, c in iter_free_scenes(split, n, seed)]
    elif config == "products":
        records = [to_record(s, c, d, px=px) for s, c, d in iter_free_products(split, n, seed)]
    else:
        raise ValueError(f"unknown config {config!r}; known: scenes, products")
    return ds.Dataset.from_list(records, features=free_features())


def write_free_corpus(out: Path, seed: int = DEFAULT_SEED, scale: float = 1.0, px: int = IMAGE_PX,
                      splits: list[str] | None = None) -> Path:
    """Write every config and split (or only `splits`) as `<out>/<config>/<split>-00000-of-00001.parquet` plus a
    README card."""
    out.mkdir(parents=True, exist_ok=True)
    for config, sizes in (("scenes", SCENE_SPLITS), ("products", PRODUCT_SPLITS)):
        for split, n in sizes.items():
            if splits and split not in splits:
                continue
            n = max(7, int(n * scale))
            path = out / config / f"{split}-00000-of-00001.parquet"
            path.parent.mkdir(parents=True, exist_ok=True)
            build_free_split(config, split, n, seed, px).to_parquet(str(path))
            log.info("wrote %s (%d rows)", path, n)
    (out / "README.md").write_text(_card(seed, scale, px))
    return out


def _card(seed: int, scale: float, px: int) -> str:
    configs = "\n".join(
        f"- config_name: {c}\n  data_files:\n"
        + "\n".join(f"  - split: {s}\n    path: {c}/{s}-*.parquet" for s in sizes)
        for c, sizes in (("scenes", SCENE_SPLITS), ("products", PRODUCT_SPLITS))
    )
    return (
        f"---\nlicense: cc-by-sa-4.0\nconfigs:\n{configs}\n---\n# Vision-Language Studio open-vocabulary demo world\n\n"
        f"Generated by `python -m demo_world.free_corpus --seed {seed} --scale {scale} --px {px}`.\n"
        "Icons: OpenMoji (https://openmoji.org), CC BY-SA 4.0.\n\n" + (__doc__ or "")
    )


def undecoded(data):
    """`data` with its `image` column left as {"bytes", "path"}: decoded by us, where and when needed."""
    from datasets import Image as ImageFeature

    return data.cast_column("image", ImageFeature(decode=False))


def pil_images(data, desc: str | None = None) -> list:
    """Every row's image opened with PIL, in RGB (a progress bar when `desc` is given)."""
    from PIL import Image
    from tqdm import tqdm

    rows = undecoded(data)["image"]
    return [Image.open(io.BytesIO(r["bytes"])).convert("RGB") for r in (tqdm(rows, desc=desc) if desc else rows)]


def split_files(source_dir: Path, config: str, split: str) -> list[Path]:
    """The parquet files of one split, in row order (a folder in the corpus layout, or a repo snapshot)."""
    files = sorted((Path(source_dir) / config).glob(f"{split}-*.parquet"))
    if not files:
        raise FileNotFoundError(f"no parquet files for {config}/{split} under {source_dir}")
    return files


def load_split(source_dir: Path, config: str, split: str):
    """Load one split from a folder in the corpus layout (or a dataset repo snapshot)."""
    import datasets as ds

    return ds.Dataset.from_parquet([str(f) for f in split_files(source_dir, config, split)])


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description="Write the open-vocabulary demo world (free layouts) as datasets parquet.")
    p.add_argument("--out", type=Path, default=Path("data/demo_world_free"))
    p.add_argument("--seed", type=int, default=DEFAULT_SEED)
    p.add_argument("--scale", type=float, default=1.0, help="multiply every split size (for quick runs)")
    p.add_argument("--px", type=int, default=IMAGE_PX)
    p.add_argument("--splits", nargs="*", default=None, help="only these splits (default: all)")
    args = p.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    write_free_corpus(args.out, args.seed, args.scale, args.px, args.splits)


if __name__ == "__main__":
    main()
