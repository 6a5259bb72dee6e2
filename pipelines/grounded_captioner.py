"""Build the grounded captioner from a trained dual encoder, its naming threshold chosen on the val split.

    python -m pipelines.grounded_captioner --dual assets/models/dual-minilm-cnn --cache runs/cache/lite0-192 \
        --out assets/models/demo-captioner

The captioner (`models.grounded_captioner`) reads the dual encoder's per-cell concept recognition. What is chosen
here is the one number that decides what it names: the lowest threshold on a concept's best cell probability at
which, on the cached val pictures (scenes and products, seen concepts only), at least `precision` of the named
concepts are in the picture. The test and held-out splits take no part.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from demo_world.concepts import load_concepts
from models.dual_encoder import MINILM, load_sentence_encoder, name_embeddings
from models.grounded_captioner import GroundedConfig, save_grounded_captioner
from models.registry import create_model
from pipelines.common import parse_config
from pipelines.tower_cache import load_split

log = logging.getLogger(__name__)


@dataclass
class BuildConfig:
    dual: str = "assets/models/dual-minilm-cnn"
    cache: str = "runs/cache/lite0-192"
    out: str = "assets/models/demo-captioner"
    precision: float = 0.97  # of named concepts present in the picture, on val
    max_objects: int = 4
    threads: int = 2


def best_cell_scores(tower, feats: np.ndarray, names: torch.Tensor) -> np.ndarray:
    """(N, K) each concept's best cell probability per picture, from cached trunk features."""
    out = []
    with torch.inference_mode():
        for b in range(0, len(feats), 256):
            x = torch.from_numpy(feats[b : b + 256].astype(np.float32)).contiguous(memory_format=torch.channels_last)
            p = tower.cell_logits(tower.top(x), names).softmax(-1)[..., 1:]  # (B, h, w, K)
            out.append(p.flatten(1, 2).amax(1).numpy())
    return np.concatenate(out)


def choose_threshold(scores: np.ndarray, present: list[set[int]], precision: float, max_objects: int) -> dict:
    """The lowest threshold whose named concepts (at most `max_objects` a picture) reach `precision`."""
    order = np.argsort(-scores, axis=1)[:, :max_objects]
    top = np.take_along_axis(scores, order, axis=1)  # (N, m)
    hit = np.array([[k in present[i] for k in row] for i, row in enumerate(order)])
    n_present = sum(len(p) for p in present)
    rows = []
    for t in np.round(np.arange(0.05, 1.0, 0.01), 2):
        named = top >= t
        tp = int((named & hit).sum())
        rows.append({"threshold": float(t), "precision": tp / max(int(named.sum()), 1), "recall": tp / n_present})
    ok = [r for r in rows if r["precision"] >= precision]
    chosen = min(ok, key=lambda r: r["threshold"]) if ok else max(rows, key=lambda r: r["precision"])
    return {"chosen": chosen, "sweep": rows}


def build(cfg: BuildConfig) -> Path:
    torch.set_num_threads(cfg.threads)
    dual = create_model("dual_encoder", Path(cfg.dual), "dual")
    tower = dual.model.image.eval()
    concepts = load_concepts()
    seen = [c for c in concepts if c.split == "train"]
    names = name_embeddings(load_sentence_encoder(MINILM), [c.name for c in seen])
    feats, _, meta = load_split(Path(cfg.cache), "val")
    row = {c.name: i for i, c in enumerate(seen)}
    present = [{row[n] for n in m["concepts"]} for m in meta]
    choice = choose_threshold(best_cell_scores(tower, feats, names), present, cfg.precision, cfg.max_objects)
    log.info("threshold %s", choice["chosen"])
    gcfg = GroundedConfig(image_tower=dual.model.cfg.image_tower, image_size=dual.model.cfg.image_size,
                          embed_dim=dual.model.cfg.embed_dim, threshold=choice["chosen"]["threshold"],
                          max_objects=cfg.max_objects)
    extra = {"built_from": {"dual": cfg.dual, "dual_revision": dual.revision, "precision_goal": cfg.precision,
                            "val": choice}}
    return save_grounded_captioner(tower, [c.name for c in seen], names, gcfg, Path(cfg.out), extra)


def main(argv: list[str] | None = None) -> None:
    cfg = parse_config(BuildConfig, argv, __doc__.split("\n")[0])
    log.info("saved %s", build(cfg))


if __name__ == "__main__":
    main()
