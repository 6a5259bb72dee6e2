"""Train the demo show-attend-tell captioner on the demo world's training scenes (model selection on val only).

    python -m pipelines.train_captioner --out assets/models/demo-captioner
    # real photos: a pretrained timm ResNet from the Hub, a dataset of (image, captions) in the corpus layout
    python -m pipelines.train_captioner --encoder timm:resnet50 --image-size 224 \
        --init-encoder hf-hub:timm/resnet50.a1_in1k --dataset hf-hub:you/flickr8k --config captions --out ...

The demo encoder starts from the dual encoder's trained image tower (`--init-encoder`, the CNN trunk only), which
already tells the icons apart and where they are; it is frozen for the first `--frozen-steps` (grid features are
then computed once, which makes those steps cheap) and fine-tuned with the decoder afterwards at `--encoder-lr`.
The decoder learns with teacher forcing, cross-entropy plus the doubly-stochastic attention regulariser, and an
auxiliary object loss: from the attention context of each object word, predict which icon it is
(`--object-loss` weight), which teaches the attention to look at the object being named. With `--dataset`, the
train and val splits are read from that folder or Hub repo (`{config}/{split}-*.parquet`, columns `image` and
`captions`, optionally `objects` with names and boxes; without them the object loss is off and the model is
selected on val BLEU-4 alone).
"""
from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from tqdm import tqdm

from demo_world.free_corpus import IMAGE_PX, iter_free_scenes
from demo_world.free_scenes import render_free
from evaluation.captioning import caption_metrics
from models.captioner import (CaptionerConfig, ShowAttendTell, ShowAttendTellCaptioner, Vocabulary, caption_loss, once_words,
                              save_captioner, tokenize)
from models.dual_encoder import preprocess
from pipelines.common import BestWeights, cosine_lr, parse_config, training_record

log = logging.getLogger(__name__)
CACHE_BYTES = 2 * 2**30


@dataclass
class TrainConfig:
    out: str = "assets/models/demo-captioner"
    encoder: str = "demo_cnn"  # or "timm:<architecture>" (see models/captioner.py)
    image_size: int = 64
    # demo_cnn: a dual encoder folder; timm: timm weights (a folder or hf-hub:...); "": start from scratch
    init_encoder: str = "assets/models/dual-minilm-cnn"
    dataset: str = ""  # "": generate the demo world's scenes; else a dataset source in the corpus layout
    config: str = "scenes"
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
    for scene, caps in tqdm(iter_free_scenes(split, n, seed), total=n, desc=f"{split} scenes"):
        images.append(render_free(scene, IMAGE_PX))
        captions.append(caps)
        objects.append([{"name": it.concept.name, "box": list(it.box)} for it in scene.items])
    return images, captions, objects


def _known_objects() -> list[str]:
    """Every object name the captioner may learn: the world's train concepts."""
    from demo_world.concepts import load_concepts

    return sorted({c.name for c in load_concepts() if c.split == "train"})


def _dataset_split(cfg: "TrainConfig", split: str, n: int):
    from core.sources import resolve
    from demo_world.free_corpus import load_split, pil_images

    data = load_split(resolve(cfg.dataset, repo_type="dataset"), cfg.config, split)
    data = data.select(range(min(n, len(data))))
    images = pil_images(data, desc=f"{split} images")
    objects = data["objects"] if "objects" in data.column_names else [[] for _ in images]
    return images, data["captions"], objects


def _init_encoder(model: ShowAttendTell, cfg: "TrainConfig") -> None:
    from safetensors.torch import load_file

    from core.sources import resolve

    if not cfg.init_encoder:
        return
    if cfg.encoder == "demo_cnn":  # the dual encoder's CNN trunk
        state = load_file(str(Path(cfg.init_encoder) / "model.safetensors"))
        trunk = {k.removeprefix("image.features."): v for k, v in state.items() if k.startswith("image.features.")}
        if not trunk:
            raise SystemExit(f"{cfg.init_encoder} holds no small-CNN trunk (the bundled dual encoder now starts from "
                             "ImageNet EfficientNet-Lite0); pass --init-encoder '' to start from scratch, or the "
                             "folder of a small-CNN dual encoder (git history, commit e6c6768)")
        model.encoder.load_state_dict(trunk)
    else:
        model.encoder.load_pretrained(resolve(cfg.init_encoder, repo_type="model"))


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
    torch.manual_seed(cfg.seed)
    torch.set_num_threads(cfg.threads)
    if cfg.dataset:
        images, captions, objects = _dataset_split(cfg, "train", cfg.train_scenes)
        val = _dataset_split(cfg, "val", cfg.val_scenes)
        icons = sorted({o["name"] for objs in objects for o in objs})
    else:
        images, captions, objects = _scenes("train", cfg.train_scenes, cfg.seed)
        val = _scenes("val", cfg.val_scenes, cfg.seed)
        icons = _known_objects()
    vocab = Vocabulary.build([c for caps in captions for c in caps])
    icon_ids = {n: i for i, n in enumerate(icons)}
    object_loss = cfg.object_loss if icons else 0.0
    model_cfg = CaptionerConfig(image_size=cfg.image_size, encoder=cfg.encoder,
                                once_words=once_words([c for caps in captions for c in caps]))
    model = ShowAttendTell(model_cfg, len(vocab))
    object_head = torch.nn.Linear(model.feature_dim, max(1, len(icons)))  # training only, not saved
    _init_encoder(model, cfg)
    size = model.cfg.image_size
    # Pixels and the frozen encoder's features are computed once and kept when they fit CACHE_BYTES (the demo
    # world: ~0.5 GB each); otherwise (real photos at 224 px) each batch is preprocessed and encoded on the fly.
    pixels = None
    if len(images) * 3 * size * size * 4 <= CACHE_BYTES:
        pixels = torch.stack([preprocess(im, size) for im in images])  # (N, 3, H, W)

    def batch_pixels(idx) -> torch.Tensor:
        return pixels[idx] if pixels is not None else torch.stack([preprocess(images[i], size) for i in idx])

    max_words = model.cfg.max_len
    seqs = [[vocab.encode(c, max_words) for c in caps] for caps in captions]
    model.encoder.eval()
    frozen = None
    if cfg.frozen_steps and len(images) * (size // model.stride) ** 2 * model.feature_dim * 4 <= CACHE_BYTES:
        with torch.inference_mode():
            frozen = torch.cat([model.encode(batch_pixels(np.arange(s, min(s + 512, len(images)))))
                                for s in range(0, len(images), 512)])  # (N, P, C)

    decoder_params = [p for n, p in model.named_parameters() if not n.startswith("encoder.")] + list(object_head.parameters())
    opt = torch.optim.AdamW([{"params": decoder_params, "lr": cfg.lr, "base": cfg.lr}], weight_decay=cfg.weight_decay)
    lexicon = None
    if not cfg.dataset:  # val CHAIR-i counts in model selection: a captioner that invents objects loses
        from evaluation.hallucination import Lexicon

        lexicon = Lexicon.from_concept_table()
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
        if step >= cfg.frozen_steps:
            feats = model.encode(batch_pixels(idx))
        elif frozen is not None:
            feats = frozen[idx]
        else:
            with torch.no_grad():
                feats = model.encode(batch_pixels(idx))
        logits, alphas, contexts = model(feats, tokens)
        loss = caption_loss(logits, alphas, tokens[:, 1:], vocab.pad, cfg.alpha_c)
        if object_loss:
            targets = _object_targets(vocab, tokens, [objects[i] for i in idx], icon_ids)
            obj_logits = object_head(contexts)  # (B, T-1, n_icons)
            loss = loss + object_loss * torch.nn.functional.cross_entropy(obj_logits.transpose(1, 2), targets, ignore_index=-100)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 5.0)
        opt.step()
        bar.set_postfix(loss=f"{loss.item():.3f}")
        if (step + 1) % cfg.eval_every == 0 or step + 1 == cfg.steps:
            captioner = ShowAttendTellCaptioner(model, vocab, "val")
            results = [captioner.caption(im, beam_size=1) for im in val[0]]
            m = caption_metrics(results, val[1], val[2], lexicon)
            history.append({"step": step + 1, "loss": loss.item(), "seconds": time.time() - start, **m})
            log.info("step %d val BLEU-4 %.1f named %.1f pointing %.1f (chance %.1f) repeated %.1f", step + 1,
                     m["BLEU-4"], m["objects_named"], m["pointing"], m["pointing_chance"], m["repeated_phrase_rate"])
            best.offer(model, m["objects_named"] + m["pointing"] + m["BLEU-4"] - 2 * m.get("CHAIR_i", 0.0))  # val only
    return {"model": best.restore(model), "vocab": vocab, "history": history, "seconds": time.time() - start}


def main(argv: list[str] | None = None) -> None:
    cfg = parse_config(TrainConfig, argv, __doc__.split("\n")[0])
    result = train(cfg)
    save_captioner(result["model"], result["vocab"], Path(cfg.out), training_record(cfg, result))
    log.info("saved %s", cfg.out)


if __name__ == "__main__":
    main()
