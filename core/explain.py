"""Explanations for every model family: where in an image a text (or any target embedding) matches, and which
words of the text mattered. The Search tab, `/explain` and the Categorise heat-map all use this module.

Heat-maps, on a (grid, grid) map over the image, in [0, 1]:
- **occlusion** (Zeiler & Fergus, 2014): grey out one region at a time (a patch two cells wide centred on each
  cell) and measure how much the cosine with the target drops. Works for any model that scores images, CNN or
  ViT; costs grid² + 1 image forwards (run as one batch). The honest baseline.
- **gradient** (gradient × input): one forward and one backward through the image tower; each pixel's
  gradient times its value (the normalised input, whose zero is the mean colour occlusion fills with), positive
  part, summed per cell, then spread over the same two-cell footprint as an occluding patch so both maps speak of
  the same regions. About 3 forwards' cost. Its agreement with occlusion and both pointing scores are measured
  by `evaluation.explanations` (stored by `evaluate`, shown in the Compare tab; timed by `python -m bench.explanations`).
- **auto**: occlusion for small image towers, gradient for large ones (`GRADIENT_ABOVE_PARAMS`).

Word relevance: each word is left out in turn, the shortened texts are encoded in one batch, and a word's weight
is how much the cosine with the image falls without it (negative: the text matches better without it).
"""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch
from PIL import Image

OCCLUSION_GRID = 6
METHODS = ("auto", "occlusion", "gradient")
# An image tower above this many parameters is explained by gradient: occlusion's 37 forwards of ViT-B/32 take
# seconds on 2 vCPUs. The bundled towers (about 4.7 M) keep occlusion: the demo CLIP's costs tens of milliseconds;
# the dual encoder's EfficientNet tower at 192 px about 1.2 s, but it points at the named object in 65% of test
# scenes against 53% for gradient x input (55 ms): `evaluate`'s explanation figures, shown in Compare.
GRADIENT_ABOVE_PARAMS = 20_000_000


@dataclass
class Explanation:
    heatmap: np.ndarray  # (grid, grid) in [0, 1], over the whole image
    tokens: list[tuple[str, float]]  # (word, drop in cosine without it), in the text's order
    score: float  # cosine of the image and the text
    method: str  # "occlusion" or "gradient"


def choose_method(encoder, method: str = "auto") -> str:
    if method not in METHODS:
        raise ValueError(f"unknown explanation method {method!r}; known: {', '.join(METHODS)}")
    if method != "auto":
        return method
    model = getattr(encoder, "model", None)
    params = sum(p.numel() for p in model.parameters()) if isinstance(model, torch.nn.Module) else 0
    return "gradient" if params > GRADIENT_ABOVE_PARAMS else "occlusion"


def explain(encoder, image: Image.Image, text: str, method: str = "auto", grid: int = OCCLUSION_GRID) -> Explanation:
    """Where `text` matches in `image` and which of its words mattered, for any `models.base.Encoder`."""
    method = choose_method(encoder, method)
    if method == "gradient":  # its forward gives the image embedding too: one image forward, not two
        forward = gradient_forward(encoder, image)
        target, score, tokens = word_weights(encoder, forward.embedding.detach().numpy()[0], text)
        return Explanation(gradient_map_from(forward, target, grid), tokens, score, method)
    target, score, tokens = word_weights(encoder, encoder.encode_image([image])[0], text)
    heat, method = heatmap(encoder, image, target, method, grid)
    return Explanation(heat, tokens, score, method)


def word_weights(encoder, image_emb: np.ndarray, text: str) -> tuple[np.ndarray, float, list[tuple[str, float]]]:
    """(text embedding, its cosine with `image_emb`, [(word, drop in cosine without it)]): the text and each
    leave-one-word-out variant are encoded in one batch. A one-word text has nothing to compare: weight 0."""
    words = text.split()
    texts = [text] + ([" ".join(words[:i] + words[i + 1 :]) for i in range(len(words))] if len(words) > 1 else [])
    emb = encoder.encode_text(texts)  # (1 + W, D)
    sims = emb @ image_emb  # (1 + W,)
    if len(words) < 2:
        return emb[0], float(sims[0]), [(w, 0.0) for w in words]
    return emb[0], float(sims[0]), [(w, float(sims[0] - s)) for w, s in zip(words, sims[1:])]


def heatmap(encoder, image: Image.Image, target: np.ndarray, method: str = "auto",
            grid: int = OCCLUSION_GRID) -> tuple[np.ndarray, str]:
    """(grid, grid) map of where `image` supports the normalised embedding `target`, and the method used."""
    method = choose_method(encoder, method)
    if method == "gradient":
        return gradient_map(encoder, image, target, grid), method
    return occlusion_map(lambda ims: encoder.encode_image(ims) @ target, image, grid), method


def occlusion_map(score: Callable[[list[Image.Image]], np.ndarray], image: Image.Image,
                  grid: int = OCCLUSION_GRID) -> np.ndarray:
    """(grid, grid) map in [0, 1]: how much greying out each region lowers the score. `score` takes a list of
    images and returns one score each (it is called once, on the image and its grid² occluded copies)."""
    image = image.convert("RGB")
    image.thumbnail((256, 256))  # the models see 64-384 px; 37 full-size copies of a photo would not fit memory
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
    scores = np.asarray(score([image] + variants))
    drop = np.clip(scores[0] - scores[1:], 0, None).reshape(grid, grid)  # (grid, grid)
    return _unit(drop)


@dataclass
class GradientForward:
    """One forward through the image tower with autograd on: the image's embedding, and the graph its gradient
    map is read from (`gradient_map_from`, once the target is known). Categorise scores the classes with this
    embedding, so its heat-map costs one backward on top of the forward it needs anyway."""

    pixels: torch.Tensor  # (1, 3, H, W), requires grad
    embedding: torch.Tensor  # (1, D) L2-normalised, attached to the graph
    box: tuple[float, float, float, float]  # where the model's square input lies on the image


def gradient_forward(encoder, image: Image.Image) -> GradientForward:
    image = image.convert("RGB")
    with torch.enable_grad():
        x = encoder.pixels([image]).detach().requires_grad_(True)  # (1, 3, H, W)
        emb = torch.nn.functional.normalize(encoder.image_tower(x).float(), dim=-1)  # (1, D)
    return GradientForward(x, emb, encoder.view_box(image.size))


def gradient_map_from(forward: GradientForward, target: np.ndarray, grid: int = OCCLUSION_GRID) -> np.ndarray:
    """(grid, grid) gradient × input map of the cosine with `target`. Only the input's gradient is computed
    (`autograd.grad` with inputs=pixels): no weight gradients, none left accumulated on the shared model, which
    concurrent requests would otherwise race on."""
    emb = forward.embedding
    with torch.enable_grad():
        (grad,) = torch.autograd.grad(emb[0] @ torch.as_tensor(target, dtype=emb.dtype), forward.pixels)
    rel = (grad * forward.pixels.detach()).sum(dim=1)[0].clamp_min(0).numpy()  # (H, W), positive evidence only
    cells = _onto_image_grid(rel, forward.box, grid)  # (grid, grid)
    return _unit(_patch_footprint(cells))


def gradient_map(encoder, image: Image.Image, target: np.ndarray, grid: int = OCCLUSION_GRID) -> np.ndarray:
    """(grid, grid) gradient × input map of the cosine with `target`, in the image's own coordinates."""
    return gradient_map_from(gradient_forward(encoder, image), target, grid)


def _onto_image_grid(rel: np.ndarray, box: tuple[float, float, float, float], grid: int, fine: int = 8) -> np.ndarray:
    """Relevance over the model's square input -> (grid, grid) means over the image's cells. `box` is where that
    square lies on the image (fractions); image regions the model never saw get 0."""
    n = grid * fine
    centres = (np.arange(n) + 0.5) / n  # sample points across the image, as fractions
    x0, y0, x1, y1 = box
    u, v = (centres - x0) / (x1 - x0), (centres - y0) / (y1 - y0)  # the same points in the square's fractions
    H, W = rel.shape
    cols, rows = np.floor(u * W).astype(int), np.floor(v * H).astype(int)
    seen_c, seen_r = (cols >= 0) & (cols < W), (rows >= 0) & (rows < H)
    dense = rel[np.clip(rows, 0, H - 1)][:, np.clip(cols, 0, W - 1)] * np.outer(seen_r, seen_c)  # (n, n)
    return dense.reshape(grid, fine, grid, fine).mean(axis=(1, 3))


def _patch_footprint(cells: np.ndarray) -> np.ndarray:
    """Each cell's value summed over the two-cell-wide patch an occlusion greys out there (weights ½, 1, ½)."""
    k = np.array([0.5, 1.0, 0.5])
    rows = np.apply_along_axis(lambda r: np.convolve(r, k, mode="same"), 1, cells)
    return np.apply_along_axis(lambda c: np.convolve(c, k, mode="same"), 0, rows)


def _unit(m: np.ndarray) -> np.ndarray:
    top = float(m.max())
    return (m / top if top > 0 else m).astype(np.float32)


def overlay(image: Image.Image, heat: np.ndarray, alpha: float = 0.5) -> Image.Image:
    """The heat-map upsampled to the image's size, coloured and blended over it."""
    from matplotlib import colormaps

    small = Image.fromarray((np.clip(heat, 0, 1) * 255).astype(np.uint8))
    big = np.asarray(small.resize(image.size, Image.BICUBIC), dtype=np.float32) / 255  # (H, W)
    colour = colormaps["inferno"](big)[..., :3] * 255  # (H, W, 3)
    blended = (1 - alpha) * np.asarray(image.convert("RGB"), dtype=np.float32) + alpha * colour
    return Image.fromarray(blended.clip(0, 255).astype(np.uint8))
