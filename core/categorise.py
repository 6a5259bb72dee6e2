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

from core.explain import choose_method, gradient_forward, gradient_map_from
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
    far_from_known: bool = False  # the photo is far from every product the model has indexed (core.familiarity)
    photo_reading: str = ""  # set when the upload was answered as a photograph, across domains (ImageNet's classes)

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


def classes_for(model, labels: list[str] | None, style: str, catalogue=None):
    """(labels, class embeddings, prompts): a catalogue's classes when no labels are given, else the labels (the
    demo world's categories by default; custom labels always use the bare templates)."""
    if labels is None and catalogue is not None:
        return (catalogue.classes, *class_embeddings(model, catalogue.classes, style, catalogue))
    labels = labels or catalogue_classes()
    return (labels, *class_embeddings(model, labels, style if labels == catalogue_classes() else "bare"))


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
    labels, class_emb, prompts = classes_for(model, labels, style, catalogue)
    method = choose_method(model, method) if heatmap else ""
    forward = gradient_forward(model, image) if method == "gradient" else None
    # the gradient map needs a forward with autograd on: its embedding scores the classes too (one forward, not two)
    image_emb = forward.embedding.detach().numpy() if forward else model.encode_image([image])  # (1, D)
    p = zero_shot_probs(image_emb, class_emb, model.logit_scale)[0]
    probs, margin = _ranked(labels, p)
    result = Categorisation(probs, margin, prompts, image_embedding=image_emb[0])
    target = class_emb[labels.index(result.top)]
    if forward is not None:
        result.heatmap, result.heatmap_method = gradient_map_from(forward, target), method
    elif heatmap:
        result.heatmap, result.heatmap_method = explain_heatmap(model, image, target, method)
    return result


def categorise_as_photo(model, image: Image.Image, labels: list[str] | None, style: str,
                        catalogue=None) -> Categorisation | None:
    """A photograph far from every product of the world, categorised across domains: the ImageNet network's reading
    of it as a point of the text space (`photo_reading`, ConSE) against the same class embeddings. None when the
    model has no such reading or ImageNet is not sure (`core.familiarity.PHOTO_FLOOR`)."""
    from core.familiarity import PHOTO_FLOOR

    reading = model.photo_reading(image) if hasattr(model, "photo_reading") else None
    if reading is None or reading.confidence < PHOTO_FLOOR:
        return None
    labels, class_emb, prompts = classes_for(model, labels, style, catalogue)
    probs, margin = _ranked(labels, zero_shot_probs(reading.embedding[None], class_emb, model.logit_scale)[0])
    notice = (f"This looks like a photograph, not a product picture of this world: the ImageNet network it started "
              f"from sees {reading.describe()}, and the categories are those words' closest (an answer across "
              "domains).")
    return Categorisation(probs, margin, prompts, notices=[notice], photo_reading=reading.describe())


def categorise_upload(services, model: str, image: Image.Image, labels: list[str] | None, style: str,
                      heatmap: bool = True, catalogue=None) -> Categorisation:
    """What Categorise answers a visitor's upload: `categorise`, then the familiarity check: does the image tower
    recognise any concept of the world in it (`core.familiarity.unrecognised_notice`, for models that recognise
    cell by cell), else is it near a product of the model's collection (`product_upload_notice`; that floor is
    tight, products of the world being alike, and flags most pictures in other styles: measured in README). An
    upload that fails it is answered across domains when it is a photograph ImageNet is sure of
    (`categorise_as_photo`), else flagged."""
    from core.familiarity import product_upload_notice, unrecognised_notice

    encoder = services.encoder(model)
    result = categorise(encoder, image, labels, style, heatmap=heatmap, catalogue=catalogue)
    if getattr(encoder, "recognition_floor", None) is not None:
        far = unrecognised_notice(encoder, image)
    else:
        far = product_upload_notice(services, model, result.image_embedding)
    across = categorise_as_photo(encoder, image, labels, style, catalogue) if far else None
    if across is not None:
        across.heatmap, across.heatmap_method = result.heatmap, result.heatmap_method
        return across
    result.notices += far
    result.far_from_known = bool(far)
    return result
