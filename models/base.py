"""The encoder interface every image-text model family implements."""
from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Sequence
import hashlib
import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from PIL import Image


@dataclass(frozen=True)
class TextCheck:
    """How a text fits the model's context window."""

    n_tokens: int  # tokens the text needs, special tokens included
    context_length: int

    @property
    def truncated(self) -> bool:
        return self.n_tokens > self.context_length


class Encoder(ABC):
    """Maps texts and images to L2-normalised float32 vectors in one shared space.

    Implementations run batched, in `torch.inference_mode()`, in float32 (the seeds saw NaN in fp16).
    """

    name: str
    dim: int
    context_length: int
    revision: str | None = None

    @abstractmethod
    def check_text(self, text: str) -> TextCheck:
        """Token count of `text` against the context window (longer texts are truncated when encoded)."""

    @abstractmethod
    def _text_features(self, texts: list[str]) -> torch.Tensor:
        """(B, D) unnormalised text features."""

    @abstractmethod
    def pixels(self, images: list[Image.Image]) -> torch.Tensor:
        """(B, 3, H, W) the model's input: the images preprocessed as the model was trained."""

    @abstractmethod
    def image_tower(self, pixels: torch.Tensor) -> torch.Tensor:
        """(B, 3, H, W) -> (B, D) unnormalised image features; differentiable (the gradient explanation uses it)."""

    def _image_features(self, images: list[Image.Image]) -> torch.Tensor:
        return self.image_tower(self.pixels(images))  # (B, D)

    def view_box(self, size: tuple[int, int]) -> tuple[float, float, float, float]:
        """Where the model's square input lies on an image of `size` (w, h), as fractions (x0, y0, x1, y1) of the
        image's width and height: the central square for a centre crop (the default), beyond [0, 1] when padded."""
        w, h = size
        side = min(w, h)
        x0, y0 = (w - side) / 2 / w, (h - side) / 2 / h
        return x0, y0, 1 - x0, 1 - y0

    def encode_text(self, texts: Sequence[str], batch_size: int = 256) -> np.ndarray:
        return self._encode(list(texts), self._text_features, batch_size)

    def encode_image(self, images: Sequence[Image.Image], batch_size: int = 64) -> np.ndarray:
        return self._encode(list(images), self._image_features, batch_size)

    def _encode(self, items: list, features, batch_size: int) -> np.ndarray:
        if not items:
            return np.zeros((0, self.dim), dtype=np.float32)
        out = []
        with torch.inference_mode():
            for start in range(0, len(items), batch_size):
                x = features(items[start : start + batch_size]).float()  # (B, D)
                out.append(torch.nn.functional.normalize(x, dim=-1).numpy())
        return np.ascontiguousarray(np.concatenate(out), dtype=np.float32)  # (N, D)

    @property
    def logit_scale(self) -> float:
        """Temperature the model was trained with (cosine -> logit), used for zero-shot probabilities."""
        return 100.0


def weights_digest(path: Path) -> str:
    """A short content hash of the weights: the model's revision when the folder names none, so an index
    built with other weights of the same name is caught at load time."""
    return "sha256:" + hashlib.sha256(Path(path).read_bytes()).hexdigest()[:16]


def require_safetensors(folder: Path, name: str) -> None:
    """Refuse a transformers folder without `model.safetensors`: its other weight formats are pickles."""
    if not (folder / "model.safetensors").is_file():
        raise FileNotFoundError(
            f"Model {name!r}: model.safetensors is missing in {folder}; only safetensors weights are loaded."
        )


def read_config(folder: Path, name: str, cls, required: tuple[str, ...], pipeline: str):
    """The dataclass `cls` from `folder/config.json` (unknown keys such as the training record ignored), after
    checking every `required` file is there; its revision defaults to the weights' digest."""
    for f in required:
        if not (folder / f).is_file():
            raise FileNotFoundError(f"Model {name!r}: {f} is missing in {folder}; rebuild it with `python -m {pipeline}`.")
    raw = json.loads((folder / "config.json").read_text())
    cfg = cls(**{k: v for k, v in raw.items() if k in cls.__dataclass_fields__})
    if getattr(cfg, "revision", None) is None:
        cfg.revision = weights_digest(folder / "model.safetensors")
    return cfg
