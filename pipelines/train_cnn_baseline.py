"""Train the supervised CNN baseline on the demo product train split (model selection on val).

    python -m pipelines.train_cnn_baseline --out assets/models/cnn-baseline
"""
from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from tqdm import tqdm

from demo_world.corpus import IMAGE_PX
from demo_world.icons import CATEGORIES
from demo_world.worlds import get_world
from pipelines.common import BestWeights, parse_config, training_record
from models.cnn_classifier import CNNClassifierModel, save_cnn_classifier
from models.dual_encoder import DualEncoderConfig, preprocess

log = logging.getLogger(__name__)


@dataclass
class TrainConfig:
    out: str = "assets/models/cnn-baseline"
    seed: int = 0
    world: str = "grid"  # "grid" (the first world) or "free" (the open-vocabulary world, `demo_world.worlds`)
    steps: int = 300
    batch_size: int = 128
    lr: float = 2e-3
    weight_decay: float = 0.05
    eval_every: int = 50
    threads: int = 2


def _split(split: str, seed: int, world_name: str = "grid") -> tuple[torch.Tensor, torch.Tensor]:
    world = get_world(world_name)
    xs, ys = [], []
    for scene, _, _ in world.iter_products(split, world.product_splits[split], seed):
        xs.append(preprocess(world.render(scene, IMAGE_PX), 64))
        ys.append(CATEGORIES.index(scene.category))
    return torch.stack(xs), torch.tensor(ys)


def train(cfg: TrainConfig) -> dict:
    torch.manual_seed(cfg.seed)
    torch.set_num_threads(cfg.threads)
    (x, y), (vx, vy) = _split("train", cfg.seed, cfg.world), _split("val", cfg.seed, cfg.world)
    model = CNNClassifierModel(DualEncoderConfig(), len(CATEGORIES))
    opt = torch.optim.AdamW(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=cfg.lr, total_steps=cfg.steps)
    rng, history, best, start = np.random.default_rng(cfg.seed), [], BestWeights(), time.time()
    for step in (bar := tqdm(range(cfg.steps), desc="train CNN baseline")):
        model.train()
        idx = rng.choice(len(x), size=cfg.batch_size, replace=False)
        batch = x[idx]
        flip = torch.from_numpy(rng.random(len(idx)) < 0.5)
        batch[flip] = batch[flip].flip(-1)  # mirror half the batch: products look the same mirrored
        loss = torch.nn.functional.cross_entropy(model(batch), y[idx])
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        sched.step()
        bar.set_postfix(loss=f"{loss.item():.3f}")
        if (step + 1) % cfg.eval_every == 0 or step + 1 == cfg.steps:
            model.eval()
            with torch.inference_mode():
                acc = float((model(vx).argmax(1) == vy).float().mean() * 100)
            history.append({"step": step + 1, "loss": loss.item(), "val_accuracy": acc, "seconds": time.time() - start})
            log.info("step %d val accuracy %.1f", step + 1, acc)
            best.offer(model, acc)
    return {"model": best.restore(model), "history": history, "seconds": time.time() - start}


def main(argv: list[str] | None = None) -> None:
    cfg = parse_config(TrainConfig, argv, __doc__.split("\n")[0])
    result = train(cfg)
    save_cnn_classifier(result["model"], list(CATEGORIES), Path(cfg.out), training_record(cfg, result))
    log.info("saved %s", cfg.out)


if __name__ == "__main__":
    main()
