"""Train the supervised CNN baseline on the demo product train split (model selection on val).

    python -m pipelines.tower_cache --out runs/cache/lite0-192            # the trunk's features, once
    python -m pipelines.train_cnn_baseline --cache runs/cache/lite0-192 --out assets/models/cnn-baseline

As the seeds fine-tuned VGG16 / DenseNet121, the baseline fine-tunes the same ImageNet EfficientNet-Lite0 as the
dual encoder: its trunk frozen as pip ships it, its top block groups, a global head and a seven-way classifier
trained with cross-entropy on the cached trunk features of the train stream's products.
"""
from __future__ import annotations

import json
import logging
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from demo_world.concepts import CATEGORIES
from models.cnn_classifier import CNNClassifierModel, save_cnn_classifier
from models.dual_encoder import DualEncoderConfig
from pipelines.common import BestWeights, cosine_lr, parse_config, training_record
from pipelines.tower_cache import load_split

log = logging.getLogger(__name__)


@dataclass
class TrainConfig:
    out: str = "assets/models/cnn-baseline"
    cache: str = "runs/cache/lite0-192"  # written by pipelines.tower_cache
    seed: int = 0
    steps: int = 300
    batch_size: int = 128
    lr: float = 1e-3
    warmup: int = 30
    weight_decay: float = 0.05
    eval_every: int = 50
    threads: int = 2


def _products(cache: Path, split: str) -> tuple[np.ndarray, torch.Tensor]:
    feats, _, meta = load_split(cache, split)
    rows = [i for i, m in enumerate(meta) if m["kind"] == "product"]
    return feats[rows], torch.tensor([CATEGORIES.index(meta[i]["category"]) for i in rows])


def _batch(feats: np.ndarray, idx) -> torch.Tensor:
    return torch.from_numpy(feats[idx].astype(np.float32)).contiguous(memory_format=torch.channels_last)


def train(cfg: TrainConfig) -> dict:
    torch.manual_seed(cfg.seed)
    torch.set_num_threads(cfg.threads)
    cache = Path(cfg.cache)
    info = json.loads((cache / "cache.json").read_text())
    (x, y), (vx, vy) = _products(cache, "train"), _products(cache, "val")
    log.info("cached products: %d train, %d val", len(x), len(vx))
    model = CNNClassifierModel(DualEncoderConfig(embed_dim=256, image_tower=info["backbone"],
                                                 image_size=info["image_size"]), len(CATEGORIES))
    opt = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=cfg.lr, weight_decay=cfg.weight_decay)
    rng, history, best, start = np.random.default_rng(cfg.seed), [], BestWeights(), time.time()

    def logits(t: torch.Tensor) -> torch.Tensor:
        return model.classify(torch.relu(model.tower.head(model.tower.top(t))))  # (B, 7)

    for step in range(cfg.steps):
        model.train()
        idx = rng.choice(len(x), size=cfg.batch_size, replace=False)
        loss = torch.nn.functional.cross_entropy(logits(_batch(x, idx)), y[idx])
        for g in opt.param_groups:
            g["lr"] = cosine_lr(step, cfg.lr, cfg.warmup, cfg.steps)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        if (step + 1) % cfg.eval_every == 0 or step + 1 == cfg.steps:
            model.eval()
            with torch.inference_mode():
                pred = torch.cat([logits(_batch(vx, np.arange(b, min(b + 256, len(vx))))).argmax(1)
                                  for b in range(0, len(vx), 256)])
            acc = float((pred == vy).float().mean() * 100)
            history.append({"step": step + 1, "loss": loss.item(), "val_accuracy": acc, "seconds": time.time() - start})
            log.info("step %d loss %.3f val accuracy %.1f", step + 1, loss.item(), acc)
            best.offer(model, acc)
    return {"model": best.restore(model), "history": history, "seconds": time.time() - start}


def main(argv: list[str] | None = None) -> None:
    cfg = parse_config(TrainConfig, argv, __doc__.split("\n")[0])
    result = train(cfg)
    save_cnn_classifier(result["model"], list(CATEGORIES), Path(cfg.out), training_record(cfg, result))
    log.info("saved %s", cfg.out)


if __name__ == "__main__":
    main()
