"""What the training pipelines share: a CLI built from a config dataclass, the learning-rate schedule,
keeping the best weights by a validation score, and the training record saved beside the weights."""
from __future__ import annotations

import argparse
import logging
import math
from dataclasses import asdict, fields


def parse_config(cls, argv: list[str] | None, description: str):
    """`--field-name value` for every scalar field of the dataclass `cls`; logging set up for a CLI run."""
    p = argparse.ArgumentParser(description=description)
    for f in fields(cls):
        default = getattr(cls(), f.name)
        if isinstance(default, (int, float, str)):
            p.add_argument(f"--{f.name.replace('_', '-')}", type=type(default), default=default)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    return cls(**vars(p.parse_args(argv)))


def cosine_lr(step: int, lr: float, warmup: int, steps: int) -> float:
    """Linear warm-up, then cosine decay to zero."""
    if step < warmup:
        return lr * (step + 1) / warmup
    return lr * 0.5 * (1 + math.cos(math.pi * (step - warmup) / max(1, steps - warmup)))


def contrastive_update(opt, loss, lr: float, logit_scale=None) -> None:
    """One optimiser step at learning rate `lr`; a CLIP-style temperature is kept within [1, 100] (as CLIP)."""
    import torch

    for g in opt.param_groups:
        g["lr"] = lr
    opt.zero_grad(set_to_none=True)
    loss.backward()
    opt.step()
    if logit_scale is not None:
        with torch.no_grad():
            logit_scale.clamp_(0, math.log(100))


class BestWeights:
    """Keeps a copy of the weights with the highest validation score seen so far."""

    def __init__(self):
        self.score, self.state = -math.inf, None

    def offer(self, model, score: float) -> None:
        if score > self.score:
            self.score, self.state = score, {k: v.detach().clone() for k, v in model.state_dict().items()}

    def restore(self, model):
        model.load_state_dict(self.state)
        return model.eval()


def training_record(cfg, result: dict, skip: tuple[str, ...] = ()) -> dict:
    config = {k: v for k, v in asdict(cfg).items() if k not in skip}
    return {"training": {"config": config, "history": result["history"], "seconds": round(result["seconds"], 1)}}
