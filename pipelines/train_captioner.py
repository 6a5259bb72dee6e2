"""Train the demo show-attend-tell captioner on the demo world's training scenes (model selection on val only).

    python -m pipelines.train_captioner --out assets/models/demo-captioner

The encoder starts from the dual encoder's trained image tower (`--init-encoder`, the CNN trunk only), which
already tells the icons apart and where they are; it is frozen for the first `--frozen-steps` (grid features are
then computed once, which makes those steps cheap) and fine-tuned with the decoder afterwards at `--encoder-lr`.
The decoder learns with teacher forcing, cross-entropy plus the doubly-stochastic attention regulariser, and an
auxiliary object loss: from the attention context of each object word, predict which icon it is
(`--object-loss` weight), which teaches the attention to look at the object being named.
"""
from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from tqdm import tqdm

from demo_world.corpus import IMAGE_PX, iter_scenes
from demo_world.scenes import render, scene_icons
from evaluation.captioning import caption_metrics
from models.captioner import (CaptionerConfig, ShowAttendTell, ShowAttendTellCaptioner, Vocabulary, caption_loss, once_words,
                              save_captioner, tokenize)
from models.dual_encoder import preprocess
from pipelines.common import BestWeights, cosine_lr, parse_config, training_record

log = logging.getLogger(__name__)


@dataclass
class TrainConfig:
    out: str = "assets/models/demo-captioner"
    init_encoder: str = "assets/models/dual-minilm-cnn"  # a dual encoder folder, or "" to start from scratch
    seed: int = 0
    train_scenes: int = 10_000
    steps: int = 4000
    frozen_steps: int = 1500  # steps with the encoder frozen; it is fine-tuned for the rest
    batch_size: int = 64
    lr: float = 3e-3
    encoder_lr: float = 5e-4
    warmup: int = 100
    weight_decay: float = 0.01
    alpha_c: float = 1.0  # doubly-stochastic regulariser weight
    object_loss: float = 0.5  # auxiliary: name the icon from the context attended at its word
    val_scenes: int = 300
    eval_every: int = 500
    threads: int = 2


def _scenes(split: str, n: int, seed: int):
    images, captions, objects = [], [], []
    for scene, caps in tqdm(iter_scenes(split, n, seed), total=n, desc=f"{split} scenes"):
        images.append(render(scene, IMAGE_PX))
        captions.append(caps)
        objects.append([{"name": p.icon.name, "box": list(p.box)} for p in scene.items])
    return images, captions, objects


def _object_targets(vocab: Vocabulary, tokens: torch.Tensor, objects: list[list[dict]], icon_ids: dict[str, int]) -> torch.Tensor:
    """(B, T-1) icon id expected at each predicted word (its last name word), -100 elsewhere."""
    out = torch.full((tokens.shape[0], tokens.shape[1] - 1), -100, dtype=torch.long)
    words = [[vocab.words[i] for i in row] for row in tokens[:, 1:].tolist()]
    for b, objs in enumerate(objects):
        for o in objs:
            name = tokenize(o["name"])
            for i in range(len(words[b]) - len(name) + 1):
                if words[b][i : i + len(name)] == name:
                    out[b, i + len(name) - 1] = icon_ids[o["name"]]
    return out


def train(cfg: TrainConfig) -> dict:
    from safetensors.torch import load_file

    torch.manual_seed(cfg.seed)
    torch.set_num_threads(cfg.threads)
    images, captions, objects = _scenes("train", cfg.train_scenes, cfg.seed)
    val = _scenes("val", cfg.val_scenes, cfg.seed)
    vocab = Vocabulary.build([c for caps in captions for c in caps])
    icons = sorted({i.name for i in scene_icons()})
    icon_ids = {n: i for i, n in enumerate(icons)}
    model = ShowAttendTell(CaptionerConfig(once_words=once_words([c for caps in captions for c in caps])), len(vocab))
    object_head = torch.nn.Linear(model.cfg.channels[-1], len(icons))  # training only, not saved
    if cfg.init_encoder:
        state = load_file(str(Path(cfg.init_encoder) / "model.safetensors"))
        model.encoder.load_state_dict({k.removeprefix("image.features."): v for k, v in state.items()
                                       if k.startswith("image.features.")})
    pixels = torch.stack([preprocess(im, model.cfg.image_size) for im in images])  # (N, 3, H, W)
    max_words = model.cfg.max_len
    seqs = [[vocab.encode(c, max_words) for c in caps] for caps in captions]
    model.encoder.eval()
    with torch.inference_mode():
        frozen = torch.cat([model.encode(pixels[s : s + 512]) for s in range(0, len(pixels), 512)])  # (N, P, C)

    decoder_params = [p for n, p in model.named_parameters() if not n.startswith("encoder.")] + list(object_head.parameters())
    opt = torch.optim.AdamW([{"params": decoder_params, "lr": cfg.lr, "base": cfg.lr}], weight_decay=cfg.weight_decay)
    rng, history, best, start = np.random.default_rng(cfg.seed), [], BestWeights(), time.time()
    for step in (bar := tqdm(range(cfg.steps), desc="train captioner")):
        if step == cfg.frozen_steps:  # from here on the encoder learns too (its BatchNorm statistics stay frozen)
            opt.add_param_group({"params": list(model.encoder.parameters()), "lr": cfg.encoder_lr, "base": cfg.encoder_lr})
        for g in opt.param_groups:
            g["lr"] = cosine_lr(step, g["base"], cfg.warmup, cfg.steps)
        idx = rng.choice(len(seqs), size=cfg.batch_size, replace=False)
        rows = [seqs[i][rng.integers(len(seqs[i]))] for i in idx]
        tokens = torch.zeros((len(rows), max(map(len, rows))), dtype=torch.long)
        for r, ids in enumerate(rows):
            tokens[r, : len(ids)] = torch.tensor(ids)
        model.train()
        model.encoder.eval()
        feats = frozen[idx] if step < cfg.frozen_steps else model.encode(pixels[idx])
        logits, alphas, contexts = model(feats, tokens)
        loss = caption_loss(logits, alphas, tokens[:, 1:], vocab.pad, cfg.alpha_c)
        if cfg.object_loss:
            targets = _object_targets(vocab, tokens, [objects[i] for i in idx], icon_ids)
            obj_logits = object_head(contexts)  # (B, T-1, n_icons)
            loss = loss + cfg.object_loss * torch.nn.functional.cross_entropy(obj_logits.transpose(1, 2), targets, ignore_index=-100)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 5.0)
        opt.step()
        bar.set_postfix(loss=f"{loss.item():.3f}")
        if (step + 1) % cfg.eval_every == 0 or step + 1 == cfg.steps:
            captioner = ShowAttendTellCaptioner(model, vocab, "val")
            results = [captioner.caption(im, beam_size=1) for im in val[0]]
            m = caption_metrics(results, val[1], val[2])
            history.append({"step": step + 1, "loss": loss.item(), "seconds": time.time() - start, **m})
            log.info("step %d val BLEU-4 %.1f named %.1f pointing %.1f (chance %.1f) repeated %.1f", step + 1,
                     m["BLEU-4"], m["objects_named"], m["pointing"], m["pointing_chance"], m["repeated_phrase_rate"])
            best.offer(model, m["objects_named"] + m["pointing"] + m["BLEU-4"])  # val only
    return {"model": best.restore(model), "vocab": vocab, "history": history, "seconds": time.time() - start}


def main(argv: list[str] | None = None) -> None:
    cfg = parse_config(TrainConfig, argv, __doc__.split("\n")[0])
    result = train(cfg)
    save_captioner(result["model"], result["vocab"], Path(cfg.out), training_record(cfg, result))
    log.info("saved %s", cfg.out)


if __name__ == "__main__":
    main()
