"""Fine-tune a CLIP-family (open_clip) model on the demo product catalogue, seed 000's experiment done properly.

    python -m pipelines.finetune_clip --base assets/models/demo-clip --unfreeze last --out assets/models/demo-clip-products

`--unfreeze` picks what learns, the rest stays frozen:
- `heads`: the projection heads only (text projection, the image tower's pooling/projection) and the temperature;
- `last`:  the heads plus the last transformer block of the text tower, its final norm, and the last stage of the
  image tower (the last residual stage of a ModifiedResNet, or the last block and final norm of a ViT);
- `all`:   every weight.
Training is float32 (the seeds saw NaN in fp16), contrastive on (product photo, one of its five captions or its
description), with optional augmentation (horizontal flips and mild random crops: a product is the same product
mirrored). Early stopping watches zero-shot accuracy with descriptive prompts on the *val* split, checked every
`--eval-every` steps, and stops after `--patience` checks without improvement; the best val weights are kept.
Measure before and after with `python -m evaluation.evaluate` (README, "Fine-tuning").
"""
from __future__ import annotations

import json
import logging
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from tqdm import tqdm

from demo_world.concepts import CATEGORIES
from demo_world.free_corpus import IMAGE_PX, PRODUCT_SPLITS, iter_free_products
from demo_world.free_scenes import render_free
from models.zero_shot import prompts_for
from pipelines.common import BestWeights, contrastive_update, cosine_lr, parse_config, training_record

log = logging.getLogger(__name__)
UNFREEZE = ("heads", "last", "all")


@dataclass
class FinetuneConfig:
    base: str = "assets/models/demo-clip"  # an open_clip folder or hf-hub: source
    out: str = "assets/models/demo-clip-products"
    unfreeze: str = "last"
    augment: int = 1  # 1: flips and mild random crops; 0: none
    seed: int = 0
    steps: int = 300
    batch_size: int = 128
    lr: float = 3e-4
    warmup: int = 20
    weight_decay: float = 0.1
    train_products: int = PRODUCT_SPLITS["train"]
    val_products: int = PRODUCT_SPLITS["val"]
    eval_every: int = 25
    patience: int = 4
    threads: int = 2


def trainable_names(model, unfreeze: str) -> list[str]:
    """Names of the parameters that learn at an unfreezing level, for ModifiedResNet and ViT image towers."""
    if unfreeze not in UNFREEZE:
        raise ValueError(f"unknown unfreeze level {unfreeze!r}; known: {', '.join(UNFREEZE)}")
    names = [n for n, _ in model.named_parameters()]
    if unfreeze == "all":
        return names
    heads = ("text_projection", "logit_scale", "visual.attnpool.", "visual.proj")
    last_text = f"transformer.resblocks.{len(model.transformer.resblocks) - 1}."
    if hasattr(model.visual, "layer4"):  # ModifiedResNet
        last_image: tuple[str, ...] = ("visual.layer4.",)
    else:  # VisionTransformer
        last_image = (f"visual.transformer.resblocks.{len(model.visual.transformer.resblocks) - 1}.", "visual.ln_post.")
    prefixes = heads if unfreeze == "heads" else heads + (last_text, "ln_final.") + last_image
    return [n for n in names if n.startswith(prefixes)]


def train_mode(model) -> None:
    """Train mode, except for normalisation layers that do not learn: frozen parts keep their statistics."""
    model.train()
    for m in model.modules():
        if isinstance(m, torch.nn.modules.batchnorm._BatchNorm) and not any(p.requires_grad for p in m.parameters()):
            m.eval()


def _products(split: str, n: int, seed: int, preprocess):
    images, texts, labels = [], [], []
    for scene, caps, desc in tqdm(iter_free_products(split, n, seed), total=n, desc=f"render products {split}",
                                  leave=False):
        images.append(preprocess(render_free(scene, IMAGE_PX)))
        texts.append(caps + [desc])
        labels.append(CATEGORIES.index(scene.category))
    return torch.stack(images), texts, np.array(labels)


def _augment(x: torch.Tensor, rng: np.random.Generator) -> torch.Tensor:
    """Random horizontal flips and crops of 80-100% of the side, resized back."""
    out = x.clone()
    flip = torch.from_numpy(rng.random(len(x)) < 0.5)
    out[flip] = out[flip].flip(-1)
    side = x.shape[-1]
    for i in range(len(out)):
        s = int(side * rng.uniform(0.8, 1.0))
        top, left = rng.integers(0, side - s + 1, size=2)
        crop = out[i : i + 1, :, top : top + s, left : left + s]
        out[i] = torch.nn.functional.interpolate(crop, size=(side, side), mode="bilinear", align_corners=False)[0]
    return out


@torch.inference_mode()
def zero_shot_accuracy(model, tokenizer, images: torch.Tensor, labels: np.ndarray, style: str = "descriptive") -> float:
    model.eval()
    img = torch.nn.functional.normalize(model.encode_image(images), dim=-1)
    classes = []
    for prompts in prompts_for(list(CATEGORIES), style).values():
        emb = torch.nn.functional.normalize(model.encode_text(tokenizer(prompts)), dim=-1).mean(0)
        classes.append(emb / emb.norm())
    pred = (img @ torch.stack(classes).T).argmax(1).numpy()
    return float((pred == labels).mean() * 100)


def finetune(cfg: FinetuneConfig) -> dict:
    import open_clip
    from open_clip.loss import ClipLoss

    from core.sources import resolve

    torch.manual_seed(cfg.seed)
    torch.set_num_threads(cfg.threads)
    folder = resolve(cfg.base, repo_type="model")
    model, preprocess = open_clip.create_model_from_pretrained(f"local-dir:{folder}", device="cpu", precision="fp32")
    tokenizer = open_clip.get_tokenizer(f"local-dir:{folder}")
    learn = set(trainable_names(model, cfg.unfreeze))
    for n, p in model.named_parameters():
        p.requires_grad_(n in learn)
    n_learn = sum(p.numel() for p in model.parameters() if p.requires_grad)
    log.info("unfreeze=%s: %d of %d parameters learn", cfg.unfreeze, n_learn, sum(p.numel() for p in model.parameters()))
    x, texts, _ = _products("train", cfg.train_products, cfg.seed, preprocess)
    vx, _, vy = _products("val", cfg.val_products, cfg.seed, preprocess)

    params = [p for p in model.parameters() if p.requires_grad]
    opt = torch.optim.AdamW(params, lr=cfg.lr, weight_decay=cfg.weight_decay)
    loss_fn, rng = ClipLoss(), np.random.default_rng(cfg.seed)
    best, history, start = BestWeights(), [], time.time()
    before = zero_shot_accuracy(model, tokenizer, vx, vy)
    best.offer(model, before)  # fine-tuning must beat the base model on val to be kept
    history.append({"step": 0, "val_zero_shot_descriptive": before})
    log.info("val zero-shot (descriptive) before fine-tuning: %.1f", before)
    stale = 0
    for step in (bar := tqdm(range(cfg.steps), desc=f"fine-tune ({cfg.unfreeze})")):
        train_mode(model)
        idx = rng.choice(len(x), size=min(cfg.batch_size, len(x)), replace=False)
        batch = _augment(x[idx], rng) if cfg.augment else x[idx]
        caps = [texts[i][rng.integers(len(texts[i]))] for i in idx]
        out = model(batch, tokenizer(caps))
        image_f, text_f, scale = (out["image_features"], out["text_features"], out["logit_scale"]) if isinstance(out, dict) else out[:3]
        loss = loss_fn(image_f, text_f, scale)
        contrastive_update(opt, loss, cosine_lr(step, cfg.lr, cfg.warmup, cfg.steps), model.logit_scale)
        bar.set_postfix(loss=f"{loss.item():.3f}")
        if (step + 1) % cfg.eval_every == 0 or step + 1 == cfg.steps:
            acc = zero_shot_accuracy(model, tokenizer, vx, vy)
            history.append({"step": step + 1, "loss": loss.item(), "seconds": time.time() - start, "val_zero_shot_descriptive": acc})
            log.info("step %d loss %.3f val zero-shot %.1f", step + 1, loss.item(), acc)
            stale = 0 if acc > best.score else stale + 1
            best.offer(model, acc)
            if stale >= cfg.patience:
                log.info("early stop: %d checks without a better val accuracy", stale)
                break
    base_cfg = json.loads((folder / "open_clip_config.json").read_text())
    return {"model": best.restore(model), "history": history, "seconds": time.time() - start,
            "model_cfg": base_cfg["model_cfg"], "trainable_parameters": n_learn, "val_before": before, "val_best": best.score}


def main(argv: list[str] | None = None) -> None:
    from pipelines.train_clip import save_open_clip

    cfg = parse_config(FinetuneConfig, argv, __doc__.split("\n")[0])
    result = finetune(cfg)
    record = training_record(cfg, result)
    record["training"].update(trainable_parameters=result["trainable_parameters"], val_before=result["val_before"],
                              val_best=result["val_best"])
    save_open_clip(result["model"], Path(cfg.out), result["model_cfg"], record)
    log.info("saved %s (val zero-shot %.1f -> %.1f)", cfg.out, result["val_before"], result["val_best"])


if __name__ == "__main__":
    main()
