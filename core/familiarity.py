""""Far from anything the model knows": a plain warning instead of confident nonsense.

A search always returns its k closest pictures, even for a query the model cannot understand ("a tax return",
a photo of a street for a model trained on icons). What tells such a query apart is its best score: the cosine of
its top hit. The floor below which we warn is measured, never guessed: at index build time
(`python -m pipelines.build_index ... --calibrate-split val`) every caption, every short "a <object name>" query
and every image of a split the index does not hold (val) is searched in the index; the floor is the
`PERCENTILE`-th percentile of their top-1 scores, so about 1% of genuine in-world queries fall under it. How many
out-of-world queries it catches, and how many of a visitor's own in-world wordings it wrongly flags, is measured
by `python -m evaluation.paraphrases` (README): a weak model scores nonsense as high as sense, and then the floor
catches little; it never makes a confident answer out of it. The floors travel in the index's sidecar
(`index.json`, `extra["familiarity"]`) with how they were measured.
"""
from __future__ import annotations

import numpy as np

PERCENTILE = 1.0  # share (%) of in-world queries that would be (wrongly) warned about
# An upload far from the collection is answered as a photograph (core.search.search_as_photo) only when the ImageNet
# network gives its top class at least this probability: noise, blank pictures, textures and microscopy stay under
# it (measured on scikit-image's samples: README, "Real photographs").
PHOTO_FLOOR = 0.5
BLANK_STD = 3.0  # pixel standard deviation (0-255) under which a picture shows nothing at all
BLANK_NOTICE = ("Your picture is blank (one flat colour): there is nothing in it to search for. What is shown are "
                "the closest pictures, not matches.")


def is_blank(image) -> bool:
    """Whether a picture is one flat colour (every world picture shows at least one object)."""
    pixels = np.asarray(image.convert("RGB").resize((64, 64)), dtype=np.float32)
    return float(pixels.reshape(-1, 3).std(axis=0).max()) < BLANK_STD


def floors(text_emb: np.ndarray | None, image_emb: np.ndarray | None, index, *, split: str) -> dict:
    """The sidecar record: for each kind of query, the floor, how many in-world queries it was measured on and
    their median top-1 score. `index` is a `LoadedIndex` or anything with `.search(xq, k)`."""
    out: dict = {"percentile": PERCENTILE, "calibration_split": split}
    for kind, emb in (("text", text_emb), ("image", image_emb)):
        if emb is None or not len(emb):
            continue
        top1 = index.search(np.ascontiguousarray(emb, dtype=np.float32), 1)[0][:, 0]
        floor = float(np.percentile(top1, PERCENTILE))
        out[kind] = {"floor": round(floor, 6), "queries": int(len(top1)),
                     "median_top1": round(float(np.median(top1)), 6)}
    return out


def floor_of(index, kind: str) -> float | None:
    """The calibrated floor of an index for "text" or "image" queries, or None when it was never calibrated."""
    record = (getattr(getattr(index, "info", None), "extra", None) or {}).get("familiarity") or {}
    value = (record.get(kind) or {}).get("floor")
    return float(value) if value is not None else None


def unfamiliar_notice(best: float | None, floor: float | None, kind: str, collection: str = "this collection") -> list[str]:
    """A visitor-facing line when the best score is under the floor; nothing otherwise (or when uncalibrated)."""
    if floor is None or best is None or best >= floor:
        return []
    what = "description" if kind == "text" else "picture"
    return [
        f"Nothing in {collection} looks much like your {what}: the best match scores {best:.3f}, under the "
        f"{floor:.3f} that 99% of genuine {what}s of this world reach. The model may not know these words or this "
        "kind of picture: what it shows are the closest pictures it has, not matches."
    ]


def unrecognised_notice(encoder, image) -> list[str]:
    """A visitor-facing line when the image tower recognises no concept of the world anywhere in the picture
    (its best cell probability under the model's calibrated floor, `pipelines.recognition_floor`)."""
    floor = getattr(encoder, "recognition_floor", None)
    best = encoder.recognition(image) if floor is not None else None
    if best is None or best >= floor:
        return []
    return [f"{encoder.name} recognises nothing of this world in your picture (its most confident concept scores "
            f"{best:.3f}, under the {floor:.3f} that 99% of the world's own pictures reach): what is shown are the "
            "closest pictures, not matches."]


def product_upload_notice(services, model: str, image_embedding) -> list[str]:
    """Categorise's check: a warning when an upload (its embedding, already computed) is far from every product
    of the model's local, calibrated product collection. Nothing for models without one (the supervised
    classifier, Hub models): never downloads or builds an index just to warn."""
    from core.services import AssetError

    catalog = services.catalog
    if image_embedding is None or model not in catalog.search_models():
        return []
    for collection in catalog.collections(model):
        spec = catalog.index(model, collection)
        if "product" not in collection:
            continue
        if spec.build or spec.source.startswith("hf-hub:"):
            return []
        try:
            index = services.index(model, collection)
        except AssetError:  # not reachable: no warning rather than no answer
            return []
        floor = floor_of(index, "image")
        if floor is None:
            return []
        xq = np.ascontiguousarray(np.asarray(image_embedding, dtype=np.float32)[None])
        return unfamiliar_notice(float(index.search(xq, 1)[0][0, 0]), floor, "image", f"the {collection}")
    return []
