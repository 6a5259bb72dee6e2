"""Train the dual encoder (frozen all-MiniLM-L6-v2 text tower + small CNN image tower) on the demo world.

    python -m pipelines.train_dual_encoder --out assets/models/dual-minilm-cnn

Text embeddings of the frozen tower are computed once for every training text; only the image tower and the
text head (if any) are trained, contrastively. Model selection uses the val splits only.
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
from evaluation.retrieval import recall_at_k
from models.dual_encoder import MINILM, DualEncoderConfig, DualEncoderModel, load_sentence_encoder, preprocess, save_dual_encoder
from models.zero_shot import prompts_for
from pipelines.common import BestWeights, contrastive_update, cosine_lr, parse_config, training_record

log = logging.getLogger(__name__)


@dataclass
class TrainConfig:
    out: str = "assets/models/dual-minilm-cnn"
    seed: int = 0
    steps: int = 1000
    batch_size: int = 256
    lr: float = 2e-3
    warmup: int = 100
    weight_decay: float = 0.05
    train_scenes: int = 8_000
    captions_per_scene: int = 2  # of the five, plus one partial description
    train_products: int = 2_100
    val_scenes: int = 500
    eval_every: int = 250
    threads: int = 2
    text_head: str = "locked"  # "locked": image tower lands in MiniLM's space; "mlp": trained text head
    world: str = "grid"  # "grid" (the first world) or "free" (the open-vocabulary world, `demo_world.worlds`)


def _examples(cfg: TrainConfig):
    """(images (N, 3, H, W), texts per image) for scenes and products of the train splits."""
    rng = np.random.default_rng(cfg.seed)
    w = get_world(cfg.world)
    images, texts = [], []
    for scene, caps in tqdm(w.iter_scenes("train", cfg.train_scenes, cfg.seed), total=cfg.train_scenes, desc="scenes"):
        images.append(preprocess(w.render(scene, IMAGE_PX), 64))
        texts.append([caps[i] for i in rng.choice(5, cfg.captions_per_scene, replace=False)]
                     + [w.partial_caption(scene, rng)])
    for scene, caps, desc in tqdm(w.iter_products("train", cfg.train_products, cfg.seed), total=cfg.train_products,
                                  desc="products"):
        images.append(preprocess(w.render(scene, IMAGE_PX), 64))
        texts.append([caps[0], caps[1], desc])
    return torch.stack(images), texts


def _val(cfg: TrainConfig):
    w = get_world(cfg.world)
    images, caps = [], []
    for scene, c in w.iter_scenes("val", cfg.val_scenes, cfg.seed):
        images.append(preprocess(w.render(scene, IMAGE_PX), 64))
        caps.append(c)
    products = [(preprocess(w.render(s, IMAGE_PX), 64), CATEGORIES.index(s.category))
                for s, _, _ in w.iter_products("val", 350, cfg.seed)]
    return torch.stack(images), caps, torch.stack([p[0] for p in products]), np.array([p[1] for p in products])


@torch.inference_mode()
def _evaluate(model, st, val) -> dict:
    model.eval()
    images, caps, p_images, p_labels = val
    img = torch.nn.functional.normalize(model.image(images), dim=-1)
    flat = [c for cs in caps for c in cs]
    txt = torch.nn.functional.normalize(model.text(st.encode(flat, convert_to_tensor=True, normalize_embeddings=True)), dim=-1)
    out = recall_at_k(txt.numpy(), img.numpy(), np.repeat(np.arange(len(caps)), 5))
    p_img = torch.nn.functional.normalize(model.image(p_images), dim=-1)
    for style in ("bare", "descriptive"):
        prompts = prompts_for(list(CATEGORIES), style)
        cls = torch.stack([
            torch.nn.functional.normalize(model.text(st.encode(ps, convert_to_tensor=True, normalize_embeddings=True)), dim=-1).mean(0)
            for ps in prompts.values()
        ])
        out[f"zero_shot_{style}"] = float(((p_img @ cls.T).argmax(1).numpy() == p_labels).mean() * 100)
    model.train()
    return out


def train(cfg: TrainConfig) -> dict:
    from open_clip.loss import ClipLoss

    torch.manual_seed(cfg.seed)
    torch.set_num_threads(cfg.threads)
    st = load_sentence_encoder(MINILM)
    images, texts = _examples(cfg)
    val = _val(cfg)
    unique = sorted({t for ts in texts for t in ts})
    log.info("encoding %d distinct training texts with the frozen text tower", len(unique))
    emb = st.encode(unique, convert_to_tensor=True, normalize_embeddings=True, batch_size=256, show_progress_bar=True)
    row = {t: i for i, t in enumerate(unique)}
    text_ids = [[row[t] for t in ts] for ts in texts]

    model = DualEncoderModel(DualEncoderConfig(text_head=cfg.text_head, embed_dim=384 if cfg.text_head == "locked" else 128))
    opt = torch.optim.AdamW(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    loss_fn, rng = ClipLoss(), np.random.default_rng(cfg.seed)
    history, best, start = [], BestWeights(), time.time()
    model.train()
    for step in (bar := tqdm(range(cfg.steps), desc="train dual encoder")):
        idx = rng.choice(len(images), size=cfg.batch_size, replace=False)
        t_idx = [text_ids[i][rng.integers(len(text_ids[i]))] for i in idx]
        img = torch.nn.functional.normalize(model.image(images[idx]), dim=-1)
        txt = torch.nn.functional.normalize(model.text(emb[t_idx]), dim=-1)
        loss = loss_fn(img, txt, model.logit_scale.exp())
        contrastive_update(opt, loss, cosine_lr(step, cfg.lr, cfg.warmup, cfg.steps), model.logit_scale)
        bar.set_postfix(loss=f"{loss.item():.3f}")
        if (step + 1) % cfg.eval_every == 0 or step + 1 == cfg.steps:
            v = _evaluate(model, st, val)
            history.append({"step": step + 1, "loss": loss.item(), "seconds": time.time() - start, **v})
            log.info("step %d val %s", step + 1, {k: round(x, 1) for k, x in v.items()})
            best.offer(model, v["t2i_R@1"] + v["zero_shot_bare"] + v["zero_shot_descriptive"])  # val only
    return {"model": best.restore(model), "history": history, "seconds": time.time() - start}


def main(argv: list[str] | None = None) -> None:
    cfg = parse_config(TrainConfig, argv, __doc__.split("\n")[0])
    result = train(cfg)
    save_dual_encoder(result["model"], Path(cfg.out), training_record(cfg, result))
    log.info("saved %s", cfg.out)


if __name__ == "__main__":
    main()
