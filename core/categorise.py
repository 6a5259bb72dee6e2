"""Categorise one image: zero-shot against catalogue categories or visitor labels, or with a supervised
classifier; plus a "doubtful" flag for human review and an occlusion heat-map of what supports the answer.

The heat-map is occlusion sensitivity (Zeiler & Fergus, 2014): grey out one region at a time and measure how
much the score of the predicted class drops. It works for every model family alike, CNN or ViT.
"""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
from PIL import Image

from core.inputs import InputError
from core.services import BoundedCache
from models.zero_shot import build_zero_shot_classifier, catalogue_classes, prompts_for, zero_shot_probs

# A prediction whose top-two probabilities are closer than this is flagged for human review (seed 003's idea).
DOUBT_MARGIN = 0.20
OCCLUSION_GRID = 6
_class_cache = BoundedCache(64)  # class embeddings per (model, revision, labels, style): label sets are reused


@dataclass
class Categorisation:
    probs: dict[str, float]  # label -> probability, best first
    margin: float  # top-1 minus top-2 probability
    prompts: dict[str, list[str]] = field(default_factory=dict)  # empty for supervised classifiers
    heatmap: np.ndarray | None = None  # (g, g) in [0, 1]
    notices: list[str] = field(default_factory=list)

    @property
    def top(self) -> str:
        return next(iter(self.probs))

    @property
    def doubtful(self) -> bool:
        return self.margin < DOUBT_MARGIN


def class_embeddings(encoder, labels: list[str], style: str) -> tuple[np.ndarray, dict[str, list[str]]]:
    prompts = prompts_for(labels, style)
    key = (encoder.name, encoder.revision, tuple(labels), style)
    return _class_cache.get(key, lambda: build_zero_shot_classifier(encoder, prompts)), prompts


def _ranked(labels: list[str], p: np.ndarray) -> tuple[dict[str, float], float]:
    order = np.argsort(-p)
    probs = {labels[i]: float(p[i]) for i in order}
    second = float(p[order[1]]) if len(order) > 1 else 0.0
    return probs, float(p[order[0]]) - second


def categorise(model, image: Image.Image, labels: list[str] | None, style: str, heatmap: bool = True) -> Categorisation:
    """`labels=None` means the catalogue's categories; `style` is "descriptive" or "bare" (custom labels
    always use the bare templates)."""
    if hasattr(model, "predict_proba"):  # a supervised classifier knows only its own classes
        if labels is not None and [x.casefold() for x in labels] != [c.casefold() for c in model.classes]:
            raise InputError(f"{model.name} is a supervised classifier: it only knows the catalogue's categories. "
                             "Choose a zero-shot model to use your own labels.")
        p = model.predict_proba([image])[0]
        probs, margin = _ranked(model.classes, p)
        top = model.classes.index(next(iter(probs)))
        score = lambda ims: np.log(model.predict_proba(ims)[:, top] + 1e-9)  # noqa: E731
        return Categorisation(probs, margin, {}, occlusion_map(score, image) if heatmap else None)
    labels = labels or catalogue_classes()
    class_emb, prompts = class_embeddings(model, labels, style if labels == catalogue_classes() else "bare")
    p = zero_shot_probs(model.encode_image([image]), class_emb, model.logit_scale)[0]
    probs, margin = _ranked(labels, p)
    top_emb = class_emb[labels.index(next(iter(probs)))]
    score = lambda ims: model.encode_image(ims) @ top_emb  # noqa: E731
    return Categorisation(probs, margin, prompts, occlusion_map(score, image) if heatmap else None)


def occlusion_map(score: Callable[[list[Image.Image]], np.ndarray], image: Image.Image, grid: int = OCCLUSION_GRID) -> np.ndarray:
    """(grid, grid) map in [0, 1]: how much greying out each region lowers the score."""
    image = image.copy()
    image.thumbnail((256, 256))  # the models see 64-224 px; 37 full-size copies of a photo would not fit memory
    w, h = image.size
    fill = tuple(int(c) for c in np.asarray(image).reshape(-1, 3).mean(axis=0))
    variants = []
    for i in range(grid):
        for j in range(grid):
            # a patch two cells wide centred on cell (i, j): overlapping patches give a smoother map
            x0, y0 = int((j - 0.5) * w / grid), int((i - 0.5) * h / grid)
            x1, y1 = int((j + 1.5) * w / grid), int((i + 1.5) * h / grid)
            im = image.copy()
            im.paste(fill, (max(0, x0), max(0, y0), min(w, x1), min(h, y1)))
            variants.append(im)
    scores = score([image] + variants)
    drop = np.clip(scores[0] - scores[1:], 0, None).reshape(grid, grid)  # (grid, grid)
    return (drop / drop.max()).astype(np.float32) if drop.max() > 0 else drop.astype(np.float32)


def overlay(image: Image.Image, heat: np.ndarray, alpha: float = 0.5) -> Image.Image:
    """The heat-map upsampled to the image's size, coloured and blended over it."""
    from matplotlib import colormaps

    small = Image.fromarray((np.clip(heat, 0, 1) * 255).astype(np.uint8))
    big = np.asarray(small.resize(image.size, Image.BICUBIC), dtype=np.float32) / 255  # (H, W)
    colour = colormaps["inferno"](big)[..., :3] * 255  # (H, W, 3)
    blended = (1 - alpha) * np.asarray(image.convert("RGB"), dtype=np.float32) + alpha * colour
    return Image.fromarray(blended.clip(0, 255).astype(np.uint8))
