"""Pictures of the demo world through the frozen ImageNet trunk, cached on disk for the training pipelines.

    python -m pipelines.tower_cache --out runs/cache/lite0-192 --scenes 60000 --products 5600 --threads 2

The bundled image towers share one frozen trunk (EfficientNet-Lite0's stem and first five block groups, ImageNet
weights from pip) and train only what sits on top of it. So each training picture goes through the trunk once:
the world's seeded train stream (scenes, then products; val for model selection) is composed from pre-rendered
glyphs (`demo_world.glyphs`, train pictures augmented), and what is stored per picture is the trunk's output
(fp16, C x H/32 x W/32), its grid of concept labels (which concept is drawn in front at each cell centre of the
top's H/32 grid), its concepts and the texts it may be trained on. Files are written in chunks, each one renamed
into place when complete, so an interrupted run resumes from the last complete chunk.
"""
from __future__ import annotations

import json
import logging
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from demo_world.concepts import load_concepts
from demo_world.free_captions import free_partial_caption
from demo_world.free_corpus import iter_free_products, iter_free_scenes
from demo_world.free_scenes import FreeScene
from demo_world.glyphs import GlyphAtlas
from models.backbone import backbone_spec, load_backbone, normalise, trunk_forward
from pipelines.common import parse_config

log = logging.getLogger(__name__)
CHUNK = 2000


@dataclass
class CacheConfig:
    out: str = "runs/cache/lite0-192"
    backbone: str = "efficientnet-lite0"
    image_size: int = 192
    scenes: int = 60_000
    products: int = 5_600
    val_scenes: int = 1_000
    val_products: int = 700
    seed: int = 0
    threads: int = 2
    batch_size: int = 16


def cell_labels(scene: FreeScene, grid: int, index: dict[str, int]) -> np.ndarray:
    """(grid, grid) int16: the concept drawn in front at each cell's centre, -1 for background; an object too
    small to cover any cell centre still claims the cell holding its own centre if that cell is background."""
    out = np.full((grid, grid), -1, np.int16)
    centres = (np.arange(grid) + 0.5) / grid
    for item in scene.items:  # drawing order: later items overwrite (they are in front)
        x0, y0, x1, y1 = item.box
        cols = (centres >= x0) & (centres <= x1)
        rows = (centres >= y0) & (centres <= y1)
        out[np.ix_(rows, cols)] = index[item.concept.name]
    for item in scene.items:
        cx, cy = item.center
        r, c = min(int(cy * grid), grid - 1), min(int(cx * grid), grid - 1)
        if index[item.concept.name] not in out and out[r, c] == -1:
            out[r, c] = index[item.concept.name]
    return out


LOW_RES = (96, 112, 128, 144)  # the corpus and the app's collections hold 128 px pictures; visitors upload any size


def picture(atlas: GlyphAtlas, scene: FreeScene, px: int, rng: np.random.Generator, augment: bool) -> np.ndarray:
    """(px, px, 3) uint8; augmented training pictures are drawn at a lower resolution half of the time and
    resized up, as the model sees the 128 px pictures of the collections."""
    if not augment or rng.random() < 0.5:
        return atlas.compose(scene, px, rng, augment=augment)
    from PIL import Image

    low = atlas.compose(scene, int(rng.choice(LOW_RES)), rng, augment=True)
    return np.asarray(Image.fromarray(low).resize((px, px), Image.BICUBIC))


def _stream(split: str, n_scenes: int, n_products: int, seed: int):
    """(scene, texts, kind) for the split: scenes first, then products."""
    rng = np.random.default_rng([seed, 7])
    for scene, caps in iter_free_scenes(split, n_scenes, seed):
        picks = [caps[i] for i in rng.choice(len(caps), size=min(2, len(caps)), replace=False)]
        yield scene, picks + [free_partial_caption(scene, rng)], "scene"
    for scene, caps, desc in iter_free_products(split, n_products, seed):
        yield scene, [caps[int(rng.integers(len(caps)))], desc], "product"


def build(cfg: CacheConfig) -> Path:
    torch.set_num_threads(cfg.threads)
    out = Path(cfg.out)
    out.mkdir(parents=True, exist_ok=True)
    concepts = load_concepts()
    index = {c.name: i for i, c in enumerate(concepts)}
    net = load_backbone(cfg.backbone)
    stages = backbone_spec(cfg.backbone).trunk_stages
    atlas = GlyphAtlas(cfg.image_size, concepts, cache_dir=out.parent)
    grid = cfg.image_size // 32
    for split, n_s, n_p in (("val", cfg.val_scenes, cfg.val_products), ("train", cfg.scenes, cfg.products)):
        rng = np.random.default_rng([cfg.seed, 11, split == "train"])
        items = list(_stream(split, n_s, n_p, cfg.seed))
        for start in range(0, len(items), CHUNK):
            path = out / f"{split}-{start // CHUNK:04d}.npz"
            if path.exists():
                continue
            t0, chunk = time.time(), items[start : start + CHUNK]
            feats = []
            for b in range(0, len(chunk), cfg.batch_size):
                pics = np.stack([picture(atlas, s, cfg.image_size, rng, augment=split == "train")
                                 for s, _, _ in chunk[b : b + cfg.batch_size]])
                x = torch.from_numpy(pics).permute(0, 3, 1, 2).float().div(255)  # (B, 3, H, W)
                x = normalise(x, cfg.backbone).contiguous(memory_format=torch.channels_last)
                with torch.inference_mode():
                    feats.append(trunk_forward(net, x, stages).half().contiguous().numpy())  # (B, C, H/16, W/16)
            meta = [{"id": s.id, "kind": kind, "texts": texts, "category": s.category,
                     "concepts": [it.concept.name for it in s.items]} for s, texts, kind in chunk]
            tmp = path.with_suffix(".tmp.npz")
            np.savez(tmp, features=np.concatenate(feats), cells=np.stack([cell_labels(s, grid, index) for s, _, _ in chunk]),
                     meta=np.array(json.dumps(meta)))
            tmp.rename(path)
            log.info("%s: %d/%d cached (%.1f ms a picture)", split, start + len(chunk), len(items),
                     (time.time() - t0) / len(chunk) * 1000)
    (out / "cache.json").write_text(json.dumps({**cfg.__dict__, "grid": grid, "concepts": len(concepts)}, indent=2))
    return out


def load_split(folder: Path, split: str) -> tuple[np.ndarray, np.ndarray, list[dict]]:
    """(features (N, C, h, w) fp16, cell labels (N, g, g), meta) of one cached split, chunks in order."""
    parts = sorted(Path(folder).glob(f"{split}-[0-9][0-9][0-9][0-9].npz"))
    if not parts:
        raise FileNotFoundError(f"no cached {split} pictures in {folder}; run python -m pipelines.tower_cache")
    feats, cells, meta = [], [], []
    for p in parts:
        with np.load(p) as z:
            feats.append(z["features"])
            cells.append(z["cells"])
            meta += json.loads(str(z["meta"]))
    return np.concatenate(feats), np.concatenate(cells), meta


def main(argv: list[str] | None = None) -> None:
    cfg = parse_config(CacheConfig, argv, __doc__.split("\n")[0])
    build(cfg)


if __name__ == "__main__":
    main()
