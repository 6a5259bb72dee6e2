"""Train the demo CLIP from scratch with open_clip on the demo world, and save it in open_clip's Hub layout.

    python -m pipelines.train_clip --out assets/models/demo-clip            # the bundled model
    python -m pipelines.train_clip --out /tmp/tiny --steps 20 --train-scenes 512   # a smoke run

Training scenes come from the endless `train` stream of the demo world (`demo_world.free_corpus`: seen concepts
only, never a val/test/heldout scene);
model selection uses the `val` split only. Weights are stored in float16 to keep the file small and loaded
back in float32.
"""
from __future__ import annotations

import json
import logging
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from tqdm import tqdm

from demo_world.free_captions import free_partial_caption
from demo_world.free_corpus import IMAGE_PX, iter_free_scenes
from demo_world.free_scenes import FreeScene, render_free
from evaluation.retrieval import recall_at_k
from pipelines.common import BestWeights, contrastive_update, cosine_lr, parse_config, training_record

log = logging.getLogger(__name__)

MODEL_CFG = {
    "embed_dim": 128,
    # ModifiedResNet: 4 stages of one bottleneck block, stem width 16, attention pooling at 2x2.
    "vision_cfg": {"image_size": 64, "layers": [1, 1, 1, 1], "width": 16},
    # The 49,408-token BPE embedding dominates the file; width 64 keeps the fp16 weights near 9 MB.
    "text_cfg": {"context_length": 64, "vocab_size": 49408, "width": 64, "heads": 4, "layers": 3},
}
PREPROCESS_CFG = {
    "mean": [0.48145466, 0.4578275, 0.40821073],
    "std": [0.26862954, 0.26130258, 0.27577711],
    "interpolation": "bicubic",
    "resize_mode": "shortest",
}


@dataclass
class TrainConfig:
    out: str = "assets/models/demo-clip"
    seed: int = 0
    steps: int = 2000
    batch_size: int = 256
    lr: float = 2e-3
    warmup: int = 100
    weight_decay: float = 0.1
    train_scenes: int = 40_000  # distinct training scenes, drawn once and reused across epochs
    partial_captions: float = 0.3  # share of training texts replaced by a short partial description
    val_scenes: int = 1_000
    eval_every: int = 250
    threads: int = 2
    context_length: int = 0  # text positions; 0 keeps MODEL_CFG's (the world's captions need 64)
    model_cfg: dict = field(default_factory=lambda: json.loads(json.dumps(MODEL_CFG)))


def _scene_tensors(split: str, n: int, seed: int, preprocess) -> tuple[torch.Tensor, list[list[str]], list[FreeScene]]:
    images, captions, scenes = [], [], []
    for scene, caps in tqdm(iter_free_scenes(split, n, seed), total=n, desc=f"render {split}", leave=False):
        images.append(preprocess(render_free(scene, IMAGE_PX)))
        captions.append(caps)
        scenes.append(scene)
    return torch.stack(images), captions, scenes  # (N, 3, H, W)


def _training_text(i: int, captions: list[list[str]], scenes: list[FreeScene], rng, cfg: "TrainConfig") -> str:
    if rng.random() < cfg.partial_captions:
        return free_partial_caption(scenes[i], rng)
    return captions[i][rng.integers(len(captions[i]))]


@torch.inference_mode()
def evaluate_recall(model, tokenizer, images: torch.Tensor, captions: list[list[str]]) -> dict[str, float]:
    model.eval()
    img = torch.cat([model.encode_image(images[i : i + 512], normalize=True) for i in range(0, len(images), 512)])
    flat = [c for caps in captions for c in caps]
    owner = np.repeat(np.arange(len(captions)), [len(c) for c in captions])
    txt = torch.cat([model.encode_text(tokenizer(flat[i : i + 1024]), normalize=True) for i in range(0, len(flat), 1024)])
    model.train()
    return recall_at_k(txt.numpy(), img.numpy(), owner)


def train(cfg: TrainConfig) -> dict:
    import open_clip
    from open_clip.loss import ClipLoss

    torch.manual_seed(cfg.seed)
    torch.set_num_threads(cfg.threads)
    if cfg.context_length:
        cfg.model_cfg["text_cfg"]["context_length"] = cfg.context_length
    model = open_clip.CLIP(**cfg.model_cfg, output_dict=True)
    preprocess = open_clip.image_transform(cfg.model_cfg["vision_cfg"]["image_size"], is_train=False, **_pp_kwargs())
    tokenizer = open_clip.SimpleTokenizer(context_length=cfg.model_cfg["text_cfg"]["context_length"])
    train_x, train_caps, train_scenes = _scene_tensors("train", cfg.train_scenes, cfg.seed, preprocess)
    val_x, val_caps, _ = _scene_tensors("val", cfg.val_scenes, cfg.seed, preprocess)

    decay = [p for n, p in model.named_parameters() if p.ndim >= 2 and "embedding" not in n]
    no_decay = [p for n, p in model.named_parameters() if not (p.ndim >= 2 and "embedding" not in n)]
    opt = torch.optim.AdamW(
        [{"params": decay, "weight_decay": cfg.weight_decay}, {"params": no_decay, "weight_decay": 0.0}], lr=cfg.lr
    )
    loss_fn = ClipLoss()
    rng = np.random.default_rng(cfg.seed)
    history, best = [], BestWeights()
    start = time.time()
    model.train()
    for step in (bar := tqdm(range(cfg.steps), desc="train demo CLIP")):
        idx = rng.choice(len(train_x), size=cfg.batch_size, replace=False)
        texts = [_training_text(i, train_caps, train_scenes, rng, cfg) for i in idx]
        out = model(train_x[idx], tokenizer(texts))
        loss = loss_fn(out["image_features"], out["text_features"], out["logit_scale"])
        contrastive_update(opt, loss, cosine_lr(step, cfg.lr, cfg.warmup, cfg.steps), model.logit_scale)
        bar.set_postfix(loss=f"{loss.item():.3f}")
        if (step + 1) % cfg.eval_every == 0 or step + 1 == cfg.steps:
            val = evaluate_recall(model, tokenizer, val_x, val_caps)
            history.append({"step": step + 1, "loss": loss.item(), "seconds": time.time() - start, **val})
            log.info("step %d val %s", step + 1, {k: round(v, 1) for k, v in val.items()})
            best.offer(model, val["t2i_R@1"])  # model selection on val only
    return {"model": best.restore(model), "history": history, "seconds": time.time() - start}


def _pp_kwargs() -> dict:
    return {"mean": PREPROCESS_CFG["mean"], "std": PREPROCESS_CFG["std"], "interpolation": "bicubic"}


def save_open_clip(model, out: Path, model_cfg: dict, extra: dict) -> Path:
    """Write `open_clip_config.json` + `open_clip_model.safetensors` (fp16) atomically into `out`."""
    from safetensors.torch import save_file

    from core.atomic import replace_folder

    with replace_folder(out) as tmp:
        state = {k: v.detach().to(torch.float16).contiguous() for k, v in model.state_dict().items()}
        save_file(state, str(tmp / "open_clip_model.safetensors"))
        config = {"model_cfg": model_cfg, "preprocess_cfg": PREPROCESS_CFG, **extra}
        (tmp / "open_clip_config.json").write_text(json.dumps(config, indent=2) + "\n")
    return out


def main(argv: list[str] | None = None) -> None:
    cfg = parse_config(TrainConfig, argv, __doc__.split("\n")[0])
    result = train(cfg)
    save_open_clip(result["model"], Path(cfg.out), cfg.model_cfg, training_record(cfg, result, skip=("model_cfg",)))
    log.info("saved %s after %.0f s", cfg.out, result["seconds"])


if __name__ == "__main__":
    main()
