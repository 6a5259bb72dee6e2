"""The demo corpus as a Hugging Face `datasets` parquet: splits, schema and the CLI that writes it.

Schema (shared with the real datasets the pipelines map to it, so one code path serves both):

| column      | type                                                        | meaning                              |
|-------------|-------------------------------------------------------------|--------------------------------------|
| id          | string                                                      | unique within the config             |
| image       | Image (PNG bytes)                                           | the picture                          |
| captions    | list<string>                                                | reference captions (5 for the demo)  |
| objects     | list<{name, group, position, size: string, box: list<float>}> | icons with normalised x0,y0,x1,y1 boxes (empty for real data) |
| background  | string                                                      | background colour name ("" if none)  |
| category    | string                                                      | catalogue category ("" for scenes)   |
| description | string                                                      | product description ("" for scenes)  |

Configs: `scenes` (splits train, val, test, heldout) and `products` (train, val, test). `heldout` scenes
each contain an (icon, background) or (icon, icon) combination that no other split ever shows.
"""
from __future__ import annotations

import argparse
import io
import logging
import zlib
from collections.abc import Iterator
from pathlib import Path

import numpy as np

from demo_world.captions import product_captions, product_description, scene_captions
from demo_world.icons import CATEGORIES
from demo_world.scenes import Scene, held_out_combinations, product_icons, render, sample_product, sample_scene

log = logging.getLogger(__name__)

DEFAULT_SEED = 0
IMAGE_PX = 128
SCENE_SPLITS = {"train": 20_000, "val": 1_000, "test": 1_000, "heldout": 1_000}
PRODUCT_SPLITS = {"train": 2_100, "val": 350, "test": 700}  # balanced over the 7 categories


def _rng(seed: int, config: str, split: str) -> np.random.Generator:
    # crc32 rather than hash(): Python salts str hashes per process.
    return np.random.default_rng([seed, zlib.crc32(config.encode()), zlib.crc32(split.encode())])


def _evaluation_keys(seed: int) -> frozenset:
    keys = set()
    for split in ("val", "test"):
        keys.update(s.key() for s, _ in iter_scenes(split, SCENE_SPLITS[split], seed))
    return frozenset(keys)


def iter_scenes(split: str, n: int, seed: int = DEFAULT_SEED) -> Iterator[tuple[Scene, list[str]]]:
    """The first `n` scenes of a split, with their captions. `train` is an endless stream: any n works,
    and training scenes identical (up to jitter) to a val/test scene are skipped."""
    rng = _rng(seed, "scenes", split)
    held_out = held_out_combinations(seed)
    exclude = _evaluation_keys(seed) if split == "train" else frozenset()
    made = 0
    while made < n:
        scene = sample_scene(rng, f"{split}-{made:06d}", held_out, want_held_out=split == "heldout")
        if scene.key() in exclude:
            continue
        yield scene, scene_captions(scene, rng)
        made += 1


def iter_products(split: str, n: int, seed: int = DEFAULT_SEED) -> Iterator[tuple[Scene, list[str], str]]:
    """Products balanced over the seven categories; within a category, its icons take turns."""
    rng = _rng(seed, "products", split)
    by_category = {c: [i for i in product_icons() if i.group == c] for c in CATEGORIES}
    for i, slot in enumerate(rng.permutation(n)):
        category = CATEGORIES[int(slot) % len(CATEGORIES)]
        icons = by_category[category]
        icon = icons[(int(slot) // len(CATEGORIES)) % len(icons)]
        scene = sample_product(rng, f"prod-{split}-{i:05d}", icon)
        yield scene, product_captions(scene, rng), product_description(scene, rng)


def _png(scene: Scene, px: int) -> bytes:
    buf = io.BytesIO()
    render(scene, px, rng_jitter=zlib.crc32(scene.id.encode())).save(buf, format="PNG", optimize=True)
    return buf.getvalue()


def to_record(scene: Scene, captions: list[str], description: str = "", px: int = IMAGE_PX) -> dict:
    return {
        "id": scene.id,
        "image": {"bytes": _png(scene, px), "path": None},
        "captions": captions,
        "objects": [
            {"name": p.icon.name, "group": p.icon.group, "position": p.position, "size": p.size, "box": list(p.box)}
            for p in scene.items
        ],
        "background": scene.background,
        "category": scene.category,
        "description": description,
    }


def features():
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


def build_split(config: str, split: str, n: int, seed: int = DEFAULT_SEED, px: int = IMAGE_PX):
    """One split as a `datasets.Dataset`."""
    import datasets as ds

    if config == "scenes":
        records = [to_record(s, c, px=px) for s, c in iter_scenes(split, n, seed)]
    elif config == "products":
        records = [to_record(s, c, d, px=px) for s, c, d in iter_products(split, n, seed)]
    else:
        raise ValueError(f"unknown config {config!r}; known: scenes, products")
    return ds.Dataset.from_list(records, features=features())


def write_corpus(out: Path, seed: int = DEFAULT_SEED, scale: float = 1.0, px: int = IMAGE_PX) -> Path:
    """Write every config and split as `<out>/<config>/<split>-00000-of-00001.parquet` plus a README card."""
    out.mkdir(parents=True, exist_ok=True)
    for config, splits in (("scenes", SCENE_SPLITS), ("products", PRODUCT_SPLITS)):
        for split, n in splits.items():
            n = max(7, int(n * scale))
            path = out / config / f"{split}-00000-of-00001.parquet"
            path.parent.mkdir(parents=True, exist_ok=True)
            build_split(config, split, n, seed, px).to_parquet(str(path))
            log.info("wrote %s (%d rows)", path, n)
    (out / "README.md").write_text(_card(seed, scale, px))
    return out


def _card(seed: int, scale: float, px: int) -> str:
    configs = "\n".join(
        f"- config_name: {c}\n  data_files:\n"
        + "\n".join(f"  - split: {s}\n    path: {c}/{s}-*.parquet" for s in splits)
        for c, splits in (("scenes", SCENE_SPLITS), ("products", PRODUCT_SPLITS))
    )
    return (
        f"---\nlicense: cc-by-sa-4.0\nconfigs:\n{configs}\n---\n# Vision-Language Studio demo world\n\n"
        f"Generated by `python -m demo_world.corpus --seed {seed} --scale {scale} --px {px}`.\n"
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
    """The parquet files of one split, in row order (a folder laid out by `write_corpus`, or a repo snapshot)."""
    files = sorted((Path(source_dir) / config).glob(f"{split}-*.parquet"))
    if not files:
        raise FileNotFoundError(f"no parquet files for {config}/{split} under {source_dir}")
    return files


def load_split(source_dir: Path, config: str, split: str):
    """Load one split from a folder laid out by `write_corpus` (or a dataset repo snapshot)."""
    import datasets as ds

    return ds.Dataset.from_parquet([str(f) for f in split_files(source_dir, config, split)])


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description="Write the demo-world corpus as datasets parquet.")
    p.add_argument("--out", type=Path, default=Path("data/demo_world"))
    p.add_argument("--seed", type=int, default=DEFAULT_SEED)
    p.add_argument("--scale", type=float, default=1.0, help="multiply every split size (for quick runs)")
    p.add_argument("--px", type=int, default=IMAGE_PX)
    args = p.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    write_corpus(args.out, args.seed, args.scale, args.px)


if __name__ == "__main__":
    main()
