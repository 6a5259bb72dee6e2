"""Zero-shot classification with prompt ensembling (the idea of open_clip's `build_zero_shot_classifier`).

Each class gets several prompts; their text embeddings are averaged and renormalised into one class vector.
Images are scored by cosine similarity to every class vector, scaled by the model's temperature, softmaxed.
"""
from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from demo_world.concepts import CATEGORIES

# Templates that use only the category name ("bare" style), chosen on the products *val* split by greedy forward
# selection over candidates (`python -m evaluation.prompt_selection`; mean val accuracy of the bundled zero-shot
# models 34.9%); the test split never took part.
BARE_TEMPLATES = ("a catalogue picture of {}", "a photo of a {} product", "a product photo of {}")
# Descriptive class prompts, as the seed wrote "timepieces including wristwatches and other types of watches".
DESCRIPTIONS: dict[str, tuple[str, ...]] = {
    "home furnishing": ("furniture such as a sofa, a bed or a chair", "fittings for the home such as a door, a window or a bathtub"),
    "baby care": ("baby products such as a baby bottle or a safety pin", "toys for children such as a teddy bear, a kite, a yo-yo or nesting dolls"),
    "watches": ("timepieces such as a watch or an alarm clock", "clocks and timers such as a stopwatch, a timer clock, a mantelpiece clock or an hourglass"),
    "home decor & festive": ("festive decorations such as a christmas tree, a gift, a balloon, a party popper or a jack-o-lantern", "home decor such as a candle, a framed picture or a potted plant"),
    "kitchen & dining": ("kitchen utensils such as a frying pan, a teapot, a kitchen knife or a spoon", "tableware such as a mug, a fork and knife, chopsticks or a wine glass"),
    "beauty & personal care": ("beauty products such as lipstick, nail polish or a lotion bottle", "personal care items such as soap, a toothbrush, a razor or a mirror"),
    "computers": ("computers such as a laptop or a desktop computer", "computer accessories such as a keyboard, a computer mouse, a printer, a floppy disk, an optical disc or a trackball"),
}
PROMPT_STYLES = ("descriptive", "bare")


def prompts_for(classnames: Sequence[str], style: str) -> dict[str, list[str]]:
    """The prompts of each class: bare templates around the name, or the catalogue's descriptions when known."""
    if style not in PROMPT_STYLES:
        raise ValueError(f"unknown prompt style {style!r}; known: {', '.join(PROMPT_STYLES)}")
    if style == "descriptive" and all(c in DESCRIPTIONS for c in classnames):
        return {c: list(DESCRIPTIONS[c]) for c in classnames}
    return {c: [t.format(c) for t in BARE_TEMPLATES] for c in classnames}


def build_zero_shot_classifier(encoder, prompts: dict[str, list[str]]) -> np.ndarray:
    """(C, D) class embeddings: mean of each class's normalised prompt embeddings, renormalised."""
    flat = [p for ps in prompts.values() for p in ps]
    emb = encoder.encode_text(flat)  # (P, D), rows normalised
    bounds = np.cumsum([0] + [len(ps) for ps in prompts.values()])
    classes = np.stack([emb[a:b].mean(axis=0) for a, b in zip(bounds[:-1], bounds[1:])])  # (C, D)
    return (classes / np.linalg.norm(classes, axis=1, keepdims=True)).astype(np.float32)


def zero_shot_probs(image_emb: np.ndarray, class_emb: np.ndarray, logit_scale: float) -> np.ndarray:
    """(N, C) class probabilities from (N, D) image and (C, D) class embeddings."""
    logits = logit_scale * image_emb @ class_emb.T  # (N, C)
    logits -= logits.max(axis=1, keepdims=True)
    p = np.exp(logits)
    return p / p.sum(axis=1, keepdims=True)


def catalogue_classes() -> list[str]:
    return list(CATEGORIES)
