"""transformers CLIP and SigLIP models from a folder in the transformers layout.

The folder holds `config.json`, `model.safetensors`, the tokenizer files and `preprocessor_config.json`,
which is what a Hub repo such as `openai/clip-vit-base-patch32` or `google/siglip-base-patch16-224` holds.
Remote code is never trusted; only safetensors weights are accepted.
"""
from __future__ import annotations

import logging
from pathlib import Path

import torch
from PIL import Image

from models.base import Encoder, TextCheck, require_safetensors
from models.registry import TRANSFORMERS_FILES, register_family

log = logging.getLogger(__name__)


class HFClipEncoder(Encoder):
    def __init__(self, model, processor, name: str, revision: str | None = None):
        self.model = model.eval()
        self.processor = processor
        self.name = name
        self.revision = revision
        self.is_siglip = "siglip" in model.config.model_type
        self.context_length = int(model.config.text_config.max_position_embeddings)
        self.dim = int(getattr(model.config, "projection_dim", None) or model.config.text_config.hidden_size)

    def check_text(self, text: str) -> TextCheck:
        n = len(self.processor.tokenizer(text, add_special_tokens=True).input_ids)
        return TextCheck(n, self.context_length)

    def _text_features(self, texts: list[str]) -> torch.Tensor:
        # SigLIP was trained on max_length padding; CLIP on the longest in the batch.
        padding = "max_length" if self.is_siglip else True
        tok = self.processor.tokenizer(
            texts, padding=padding, truncation=True, max_length=self.context_length, return_tensors="pt"
        )
        return _as_tensor(self.model.get_text_features(**tok))  # (B, D)

    def pixels(self, images: list[Image.Image]) -> torch.Tensor:
        out = self.processor.image_processor([im.convert("RGB") for im in images], return_tensors="pt")
        return out["pixel_values"]  # (B, 3, H, W)

    def image_tower(self, pixels: torch.Tensor) -> torch.Tensor:
        return _as_tensor(self.model.get_image_features(pixel_values=pixels))  # (B, D)

    def view_box(self, size: tuple[int, int]) -> tuple[float, float, float, float]:
        if getattr(self.processor.image_processor, "do_center_crop", False):
            return super().view_box(size)  # CLIP: shortest edge resized, centre crop
        return 0.0, 0.0, 1.0, 1.0  # SigLIP: the whole image resized to the square

    @property
    def logit_scale(self) -> float:
        return float(self.model.logit_scale.detach().exp())


def _as_tensor(out) -> torch.Tensor:
    # transformers 5 may return a model output with `pooler_output` instead of a bare tensor.
    return out if isinstance(out, torch.Tensor) else out.pooler_output


def _load(folder: Path, name: str) -> HFClipEncoder:
    from transformers import AutoModel, AutoProcessor

    require_safetensors(folder, name)
    model = AutoModel.from_pretrained(folder, use_safetensors=True, trust_remote_code=False, dtype=torch.float32)
    processor = AutoProcessor.from_pretrained(folder, trust_remote_code=False)
    log.info("loaded transformers model %s from %s", name, folder)
    return HFClipEncoder(model, processor, name)


HF_IMPORTS = ["transformers:AutoModel", "transformers:AutoProcessor"]
register_family("hf_clip", files=TRANSFORMERS_FILES, imports=HF_IMPORTS)(_load)
register_family("siglip", files=TRANSFORMERS_FILES, imports=HF_IMPORTS)(_load)
