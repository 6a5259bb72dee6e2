"""Categorise one image: zero-shot against catalogue categories or visitor labels, or with a supervised
classifier; plus a "doubtful" flag for human review and a heat-map of what supports the answer.

The heat-map comes from `core.explain` (the one explanation module, also behind Search's explanations): the
top class's embedding is the target; occlusion for small towers and supervised classifiers, gradient × input
for large image towers, as `core.explain.choose_method` decides.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from PIL import Image

from core.explain import heatmap as explain_heatmap
from core.explain import occlusion_map
from core.inputs import InputError
from core.services import BoundedCache
from models.zero_shot import build_zero_shot_classifier, catalogue_classes, prompts_for, zero_shot_probs

# A prediction whose top-two probabilities are closer than this is flagged for human review (seed 003's idea).
DOUBT_MARGIN = 0.20
_class_cache = BoundedCache(64)  # class embeddings per (model, revision, labels, style): label sets are reused


@dataclass
class Categorisation:
    probs: dict[str, float]  # label -> probability, best first
    margin: float  # top-1 minus top-2 probability
    prompts: dict[str, list[str]] = field(default_factory=dict)  # empty for supervised classifiers
    heatmap: np.ndarray | None = None  # (g, g) in [0, 1]
    notices: list[str] = field(default_factory=list)
    heatmap_method: str = ""  # "occlusion" or "gradient" (core.explain)
    image_embedding: np.ndarray | None = None  # (D,) zero-shot models only: reused by the familiarity check

    @property
    def top(self) -> str:
        return next(iter(self.probs))

    @property
    def doubtful(self) -> bool:
        return self.margin < DOUBT_MARGIN


def class_embeddings(encoder, labels: list[str], style: str, catalogue=None) -> tuple[np.ndarray, dict[str, list[str]]]:
    """(C, D) class embeddings and the prompts behind them: a catalogue's (`core.catalog.CatalogueSpec`) in
    `style`, else the demo world's prompts for `labels`."""
    prompts = catalogue.prompts(style) if catalogue is not None else prompts_for(labels, style)
    key = (encoder.name, encoder.revision, tuple((c, tuple(p)) for c, p in prompts.items()))
    return _class_cache.get(key, lambda: build_zero_shot_classifier(encoder, prompts)), prompts


def _ranked(labels: list[str], p: np.ndarray) -> tuple[dict[str, float], float]:
    order = np.argsort(-p)
    probs = {labels[i]: float(p[i]) for i in order}
    second = float(p[order[1]]) if len(order) > 1 else 0.0
    return probs, float(p[order[0]]) - second


def categorise(model, image: Image.Image, labels: list[str] | None, style: str, heatmap: bool = True,
               method: str = "auto", catalogue=None) -> Categorisation:
    """`labels=None` means the catalogue's categories (`catalogue`, a `core.catalog.CatalogueSpec`; None: the demo
    world's); `style` is "descriptive" or "bare" (custom labels always use the bare templates); `method` is the
    heat-map's (`core.explain.METHODS`)."""
    if hasattr(model, "predict_proba"):  # a supervised classifier knows only its own classes
        if labels is None and catalogue is not None:
            labels = catalogue.classes
        if labels is not None and [x.casefold() for x in labels] != [c.casefold() for c in model.classes]:
            raise InputError(f"{model.name} is a supervised classifier: it only knows the catalogue's categories. "
                             "Choose a zero-shot model to use your own labels.")
        p = model.predict_proba([image])[0]
        probs, margin = _ranked(model.classes, p)
        top = model.classes.index(next(iter(probs)))
        score = lambda ims: np.log(model.predict_proba(ims)[:, top] + 1e-9)  # noqa: E731
        return Categorisation(probs, margin, {}, occlusion_map(score, image) if heatmap else None,
                              heatmap_method="occlusion" if heatmap else "")
    if labels is None and catalogue is not None:
        labels = catalogue.classes
        class_emb, prompts = class_embeddings(model, labels, style, catalogue)
    else:
        labels = labels or catalogue_classes()
        class_emb, prompts = class_embeddings(model, labels, style if labels == catalogue_classes() else "bare")
    image_emb = model.encode_image([image])  # (1, D)
    p = zero_shot_probs(image_emb, class_emb, model.logit_scale)[0]
    probs, margin = _ranked(labels, p)
    result = Categorisation(probs, margin, prompts, image_embedding=image_emb[0])
    if heatmap:
        result.heatmap, result.heatmap_method = explain_heatmap(model, image, class_emb[labels.index(result.top)],
                                                                     method)
    return result
