"""Train the dual encoder: frozen all-MiniLM-L6-v2 text tower + an ImageNet EfficientNet-Lite0 image tower.

    python -m pipelines.tower_cache --out runs/cache/lite0-192            # the trunk's features, once
    python -m pipelines.train_dual_encoder --cache runs/cache/lite0-192 --out assets/models/dual-minilm-cnn

The image tower's trunk stays as pip ships it (ImageNet weights, hash-checked); its top block groups and two heads
are trained on the cached trunk features of the demo world's train stream, to land in MiniLM's own sentence space
(the text side is locked, as in LiT), with two losses at once:
- recognition: every cell of the top's grid classifies which seen concept is drawn in front there (or none),
  the classifier's weights being the frozen MiniLM embeddings of the concept names, so the image space is the
  text space and a name never trained on still has a meaningful place;
- alignment: the global image embedding against its captions (positions, sizes, backgrounds, product
  descriptions), symmetric InfoNCE (CLIP's loss) with a learned temperature.
Model selection uses the val split only. A checkpoint is written at every evaluation, and a run started again with
the same `--checkpoint` resumes from it.
"""
from __future__ import annotations

import hashlib
import logging
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch.nn import functional as F

from demo_world.concepts import CATEGORIES, load_concepts
from evaluation.retrieval import recall_at_k
from models.dual_encoder import (
    MINILM, DualEncoderConfig, DualEncoderModel, load_sentence_encoder, name_embeddings, save_dual_encoder,
)
from models.zero_shot import prompts_for
from pipelines.common import BestWeights, cosine_lr, parse_config, training_record
from pipelines.tower_cache import load_split

log = logging.getLogger(__name__)


@dataclass
class TrainConfig:
    out: str = "assets/models/dual-minilm-cnn"
    cache: str = "runs/cache/lite0-192"  # written by pipelines.tower_cache (its backbone and image size are used)
    checkpoint: str = "runs/checkpoints/dual-encoder.pt"
    seed: int = 0
    steps: int = 3000
    batch_size: int = 256
    lr: float = 1e-3  # heads
    top_lr: float = 3e-4  # the backbone's top block groups (pretrained)
    warmup: int = 100
    weight_decay: float = 0.05
    cell_weight: float = 1.0  # recognition loss weight, against 1.0 for alignment
    eval_every: int = 250
    threads: int = 2


def text_embeddings(st, texts: list[str], cache: Path) -> torch.Tensor:
    """MiniLM embeddings of `texts`, cached on disk by their content."""
    key = hashlib.sha256("\n".join(texts).encode()).hexdigest()[:16]
    path = cache / f"minilm-{key}.npy"
    if path.exists():
        return torch.from_numpy(np.load(path))
    emb = st.encode(texts, convert_to_numpy=True, normalize_embeddings=True, batch_size=256).astype(np.float32)
    np.save(path, emb)
    return torch.from_numpy(emb)


class Split:
    """A cached split in memory: trunk features, cell labels (as seen-class indices, 0 = background), texts."""

    def __init__(self, folder: Path, split: str, seen_row: np.ndarray):
        self.features, cells, self.meta = load_split(folder, split)
        self.cells = torch.from_numpy(np.where(cells < 0, 0, seen_row[np.maximum(cells, 0)] + 1).astype(np.int64))

    def __len__(self) -> int:
        return len(self.meta)

    def batch(self, idx: np.ndarray) -> torch.Tensor:
        x = torch.from_numpy(self.features[idx].astype(np.float32))  # (B, C, h, w)
        return x.contiguous(memory_format=torch.channels_last)


def _val_scores(model, val: Split, text_emb: torch.Tensor, text_rows: list[list[int]], names: torch.Tensor,
                category_classes: dict[str, torch.Tensor]) -> dict:
    model.eval()
    with torch.inference_mode():
        embs, correct, total = [], 0, 0
        for b in range(0, len(val), 256):
            idx = np.arange(b, min(b + 256, len(val)))
            fmap = model.image.top(val.batch(idx))
            embs.append(F.normalize(model.image.head(fmap), dim=-1))
            pred = model.image.cell_logits(fmap, names).argmax(-1)
            fg = val.cells[idx] > 0
            correct += int((pred[fg] == val.cells[idx][fg]).sum())
            total += int(fg.sum())
        img = torch.cat(embs)
    scenes = [i for i, m in enumerate(val.meta) if m["kind"] == "scene"]
    products = [i for i, m in enumerate(val.meta) if m["kind"] == "product"]
    q = [(r, i) for i in scenes for r in text_rows[i][:2]]  # the two full captions of each val scene
    out = recall_at_k(text_emb[[r for r, _ in q]].numpy(), img[scenes].numpy(),
                      np.array([scenes.index(i) for _, i in q]))
    labels = np.array([CATEGORIES.index(val.meta[i]["category"]) for i in products])
    for style, cls in category_classes.items():
        out[f"zero_shot_{style}"] = float(((img[products] @ cls.T).argmax(1).numpy() == labels).mean() * 100)
    out["cell_accuracy"] = correct / max(total, 1) * 100
    model.train()
    return out


def train(cfg: TrainConfig) -> dict:
    import json

    torch.manual_seed(cfg.seed)
    torch.set_num_threads(cfg.threads)
    cache = Path(cfg.cache)
    info = json.loads((cache / "cache.json").read_text())
    concepts = load_concepts()
    seen = [i for i, c in enumerate(concepts) if c.split == "train"]
    seen_row = np.full(len(concepts), -1)
    seen_row[seen] = np.arange(len(seen))
    train_set, val = Split(cache, "train", seen_row), Split(cache, "val", seen_row)
    log.info("cached pictures: %d train, %d val", len(train_set), len(val))

    st = load_sentence_encoder(MINILM)
    names = name_embeddings(st, [concepts[i].name for i in seen])  # (K, 384)
    category_classes = {}
    for style in ("bare", "descriptive"):
        prompts = prompts_for(list(CATEGORIES), style)
        category_classes[style] = torch.stack([
            F.normalize(st.encode(ps, convert_to_tensor=True, normalize_embeddings=True).mean(0), dim=0)
            for ps in prompts.values()])

    def texts_of(split: Split):
        flat = [t for m in split.meta for t in m["texts"]]
        bounds = np.cumsum([0] + [len(m["texts"]) for m in split.meta])
        return text_embeddings(st, flat, cache), [list(range(a, b)) for a, b in zip(bounds[:-1], bounds[1:])]

    train_emb, train_rows = texts_of(train_set)
    val_emb, val_rows = texts_of(val)
    model = DualEncoderModel(DualEncoderConfig(embed_dim=384, text_head="locked", image_tower=info["backbone"],
                                               image_size=info["image_size"]))
    heads = [p for n, p in model.named_parameters() if p.requires_grad and not n.startswith("image.net.")]
    top = [p for n, p in model.named_parameters() if p.requires_grad and n.startswith("image.net.")]
    opt = torch.optim.AdamW([{"params": heads, "base": cfg.lr}, {"params": top, "base": cfg.top_lr}],
                            weight_decay=cfg.weight_decay)
    rng, history, best, step0, spent = np.random.default_rng(cfg.seed), [], BestWeights(), 0, 0.0
    ckpt = Path(cfg.checkpoint)
    if ckpt.exists():
        state = torch.load(ckpt, map_location="cpu", weights_only=False)  # our own file, written below
        if state.get("config") != {**cfg.__dict__, "cache_info": info}:
            raise SystemExit(f"{ckpt} was written by another configuration or cache; remove it to start afresh")
        model.load_state_dict(state["model"])
        opt.load_state_dict(state["opt"])
        rng.bit_generator.state = state["rng"]
        step0, history, spent = state["step"], state["history"], state["seconds"]
        best.score, best.state = state["best_score"], state["best_state"]
        log.info("resumed from %s at step %d", ckpt, step0)
    model.train()
    start = time.time() - spent
    for step in range(step0, cfg.steps):
        idx = rng.choice(len(train_set), size=cfg.batch_size, replace=False)
        t_idx = [train_rows[i][rng.integers(len(train_rows[i]))] for i in idx]
        fmap = model.image.top(train_set.batch(idx))  # (B, 1280, h, w)
        img = F.normalize(model.image.head(fmap), dim=-1)
        txt = train_emb[t_idx]
        logits = model.logit_scale.exp() * img @ txt.T
        target = torch.arange(len(idx))
        align = (F.cross_entropy(logits, target) + F.cross_entropy(logits.T, target)) / 2
        cells = model.image.cell_logits(fmap, names)  # (B, h, w, 1 + K)
        recog = F.cross_entropy(cells.reshape(-1, cells.shape[-1]), train_set.cells[idx].reshape(-1))
        loss = align + cfg.cell_weight * recog
        factor = cosine_lr(step, 1.0, cfg.warmup, cfg.steps)
        for g in opt.param_groups:
            g["lr"] = g["base"] * factor
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        with torch.no_grad():
            model.logit_scale.clamp_(0, np.log(100))
        if step % 25 == 0:
            log.info("step %d align %.3f recog %.3f (%.1f s)", step, align.item(), recog.item(), time.time() - start)
        if (step + 1) % cfg.eval_every == 0 or step + 1 == cfg.steps:
            v = _val_scores(model, val, val_emb, val_rows, names, category_classes)
            history.append({"step": step + 1, "align": align.item(), "recog": recog.item(),
                            "seconds": time.time() - start, **v})
            log.info("step %d val %s", step + 1, {k: round(x, 1) for k, x in v.items()})
            best.offer(model, v["t2i_R@1"] + v["zero_shot_bare"] + v["cell_accuracy"])  # val only
            ckpt.parent.mkdir(parents=True, exist_ok=True)
            torch.save({"config": {**cfg.__dict__, "cache_info": info}, "model": model.state_dict(), "opt": opt.state_dict(), "rng": rng.bit_generator.state,
                        "step": step + 1, "history": history, "seconds": time.time() - start,
                        "best_score": best.score, "best_state": best.state}, ckpt.with_suffix(".tmp"))
            ckpt.with_suffix(".tmp").replace(ckpt)
    return {"model": best.restore(model), "history": history, "seconds": time.time() - start}


def export_best(cfg: TrainConfig) -> dict:
    """The best weights of an unfinished run, from its checkpoint (a run stopped early on purpose, or cut off)."""
    state = torch.load(cfg.checkpoint, map_location="cpu", weights_only=False)  # our own file
    info = state["config"]["cache_info"]
    model = DualEncoderModel(DualEncoderConfig(embed_dim=384, text_head="locked", image_tower=info["backbone"],
                                               image_size=info["image_size"]))
    model.load_state_dict(state["best_state"])
    log.info("exporting the best weights of %s (stopped at step %d of %d)", cfg.checkpoint, state["step"], cfg.steps)
    return {"model": model.eval(), "history": state["history"], "seconds": state["seconds"]}


def main(argv: list[str] | None = None) -> None:
    argv = list(argv if argv is not None else __import__("sys").argv[1:])
    early = "--export-best" in argv  # save the checkpoint's best weights now, without training further
    cfg = parse_config(TrainConfig, [a for a in argv if a != "--export-best"], __doc__.split("\n")[0])
    result = export_best(cfg) if early else train(cfg)
    save_dual_encoder(result["model"], Path(cfg.out), training_record(cfg, result))
    log.info("saved %s", cfg.out)


if __name__ == "__main__":
    main()
