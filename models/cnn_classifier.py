"""The supervised CNN baseline (the seeds' VGG16 / DenseNet121 role): an image tower with a classification head,
trained on the demo product train split by `pipelines.train_cnn_baseline`. The bundled one is fine-tuned from the
same ImageNet EfficientNet-Lite0 as the dual encoder (`image_cfg.image_tower`), as the seeds fine-tuned theirs.

Folder layout: `config.json` (image tower config + `classes`) + `model.safetensors` (for a pretrained backbone,
everything but its frozen trunk, which comes from pip, hash-checked).
"""
from __future__ import annotations

import json
from dataclasses import asdict
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from torch import nn

from models.dual_encoder import BackboneTower, DualEncoderConfig, ImageTower, input_scaling, preprocess
from models.registry import register_family


class CNNClassifierModel(nn.Module):
    def __init__(self, cfg: DualEncoderConfig, n_classes: int):
        super().__init__()
        self.cfg = cfg
        self.tower = ImageTower(cfg) if cfg.image_tower == "cnn" else BackboneTower(cfg)
        self.classify = nn.Linear(cfg.embed_dim, n_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classify(torch.relu(self.tower(x)))  # (B, n_classes) logits


class Classifier:
    """Images -> probabilities over a fixed list of classes."""

    def __init__(self, model: CNNClassifierModel, classes: list[str], name: str, revision: str | None):
        self.model = model.eval()
        self.classes = classes
        self.name = name
        self.revision = revision

    def image_tensor(self, images: list[Image.Image]) -> torch.Tensor:
        mean, std = input_scaling(self.model.cfg)
        return torch.stack([preprocess(im, self.model.cfg.image_size, mean, std) for im in images])  # (B, 3, H, W)

    def predict_proba(self, images: list[Image.Image], batch_size: int = 128) -> np.ndarray:
        out = []
        with torch.inference_mode():
            for s in range(0, len(images), batch_size):
                out.append(torch.softmax(self.model(self.image_tensor(images[s : s + batch_size])), dim=-1).numpy())
        return np.concatenate(out) if out else np.zeros((0, len(self.classes)), np.float32)  # (N, C)


def save_cnn_classifier(model: CNNClassifierModel, classes: list[str], out: Path, extra: dict | None = None) -> Path:
    from safetensors.torch import save_file

    from core.atomic import replace_folder

    state = model.state_dict()
    if isinstance(model.tower, BackboneTower):  # the trunk comes from pip: only what training changed, fp16
        state = {f"tower.{k}": v.detach().half() for k, v in model.tower.shipped_state_dict().items()}
        state |= {k: v for k, v in model.state_dict().items() if not k.startswith("tower.")}
    with replace_folder(out) as tmp:
        save_file({k: v.contiguous() for k, v in state.items()}, str(tmp / "model.safetensors"))
        config = {"image_cfg": asdict(model.cfg), "classes": classes, **(extra or {})}
        (tmp / "config.json").write_text(json.dumps(config, indent=2) + "\n")
    return out


@register_family("cnn_classifier", imports=["timm", "safetensors.torch", "models.backbone"])
def load_cnn_classifier(folder: Path, name: str) -> Classifier:
    from safetensors.torch import load_file

    from models.base import weights_digest

    for required in ("config.json", "model.safetensors"):
        if not (folder / required).is_file():
            raise FileNotFoundError(f"Model {name!r}: {required} is missing in {folder}; rebuild it with "
                                    "`python -m pipelines.train_cnn_baseline`.")
    raw = json.loads((folder / "config.json").read_text())
    model = CNNClassifierModel(DualEncoderConfig(**raw["image_cfg"]), len(raw["classes"]))
    state = {k: v.float() for k, v in load_file(str(folder / "model.safetensors")).items()}
    if isinstance(model.tower, BackboneTower):
        missing, unexpected = model.load_state_dict(state, strict=False)
        shipped = {f"tower.{k}" for k in model.tower.shipped_state_dict()}
        if [k for k in missing if k in shipped] or unexpected:
            raise RuntimeError(f"Model {name!r}: model.safetensors does not fit its config")
    else:
        model.load_state_dict(state)
    return Classifier(model, list(raw["classes"]), name, weights_digest(folder / "model.safetensors"))
