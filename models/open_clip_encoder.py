"""open_clip models (CLIP-family) from a folder in open_clip's Hub layout.

The folder holds `open_clip_config.json` (`model_cfg` + `preprocess_cfg`) and `open_clip_model.safetensors`,
which is what `hf-hub:` open_clip repos contain, so a Hub snapshot and a local folder load the same way.
"""
from __future__ import annotations

import json
import logging
from pathlib import Path

import torch
from PIL import Image

from models.base import Encoder, TextCheck, weights_digest
from models.registry import register_family

log = logging.getLogger(__name__)
CONFIG_FILE = "open_clip_config.json"
WEIGHTS_FILE = "open_clip_model.safetensors"


class ModelFilesError(FileNotFoundError):
    pass


class OpenClipEncoder(Encoder):
    def __init__(self, model, preprocess, tokenizer, name: str, revision: str | None = None):
        self.model = model.eval()
        self.preprocess = preprocess
        self.tokenizer = tokenizer
        self.name = name
        self.revision = revision
        self.context_length = int(tokenizer.context_length)
        self.dim = int(model.text_projection.shape[1] if hasattr(model, "text_projection") else model.embed_dim)

    def check_text(self, text: str) -> TextCheck:
        ids = self.tokenizer.encode(text) if hasattr(self.tokenizer, "encode") else self.tokenizer.tokenizer(text).input_ids
        n = len(ids) + (2 if hasattr(self.tokenizer, "encode") else 0)  # SimpleTokenizer adds <sot> and <eot>
        return TextCheck(n, self.context_length)

    def _text_features(self, texts: list[str]) -> torch.Tensor:
        return self.model.encode_text(self.tokenizer(texts))  # (B, D)

    def _image_features(self, images: list[Image.Image]) -> torch.Tensor:
        x = torch.stack([self.preprocess(im.convert("RGB")) for im in images])  # (B, 3, H, W)
        return self.model.encode_image(x)  # (B, D)

    @property
    def logit_scale(self) -> float:
        return float(self.model.logit_scale.detach().exp())


# open_clip's Hub layout: its config and safetensors weights (its tokenizer is bundled with open_clip, or named in
# the config as an HF tokenizer, whose files then sit beside them).
@register_family("open_clip", files=[CONFIG_FILE, WEIGHTS_FILE, "tokenizer.json", "tokenizer_config.json",
                                     "special_tokens_map.json", "vocab.json", "merges.txt", "spiece.model"])
def load_open_clip(folder: Path, name: str) -> OpenClipEncoder:
    import open_clip

    for required in (CONFIG_FILE, WEIGHTS_FILE):
        if not (folder / required).is_file():
            raise ModelFilesError(
                f"Model {name!r}: {required} is missing in {folder}. Rebuild it with the training pipeline or "
                "point its catalog source at a complete open_clip folder or hf-hub: repo."
            )
    model, preprocess = open_clip.create_model_from_pretrained(f"local-dir:{folder}", device="cpu", precision="fp32")
    tokenizer = open_clip.get_tokenizer(f"local-dir:{folder}")
    revision = json.loads((folder / CONFIG_FILE).read_text()).get("revision") or weights_digest(folder / WEIGHTS_FILE)
    log.info("loaded open_clip model %s from %s", name, folder)
    return OpenClipEncoder(model, preprocess, tokenizer, name, revision)
