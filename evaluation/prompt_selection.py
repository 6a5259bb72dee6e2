"""Choose the bare-name prompt templates on the *val* split (never the test split), by greedy forward selection.

    python -m evaluation.prompt_selection --dataset data/demo_world_free

Every candidate template wraps only the category name. Starting from none, the template that raises the mean
val accuracy of the catalog's zero-shot models the most is added, until no candidate helps. The result is what
`models.zero_shot.BARE_TEMPLATES` holds; the test split is only ever used afterwards, by `evaluation.evaluate`.
"""
from __future__ import annotations

import argparse
import json
import logging

import numpy as np

from core.catalog import load_catalog
from core.services import Services
from core.sources import resolve
from demo_world.free_corpus import load_split, pil_images

log = logging.getLogger(__name__)

CANDIDATES = (
    "{}", "a photo of {}", "a product in the category {}", "a catalogue picture of {}", "a photo of a {} product",
    "{} products", "an item for {}", "a product photo of {}", "a {} item", "something from the {} department",
    "a picture of something for {}", "shop for {}",
)


def select(services: Services, models: list[str], dataset, classes: list[str]) -> dict:
    from evaluation.catalogue_prompts import accuracy, greedy_templates

    y = np.array([classes.index(c) for c in dataset["category"]])
    images = pil_images(dataset)
    per_model = {}
    for m in models:
        enc = services.encoder(m)
        image_emb = enc.encode_image(images)
        class_emb = {t: enc.encode_text([t.format(c) for c in classes]) for t in CANDIDATES}
        per_model[m] = (image_emb, class_emb)

    def score(templates: list[str]) -> float:
        return float(np.mean([accuracy(ie, ce, templates, y) for ie, ce in per_model.values()]))

    chosen, best, history = greedy_templates(score, CANDIDATES)
    return {"templates": chosen, "mean_val_accuracy": best, "history": history,
            "per_model": {m: accuracy(ie, ce, chosen, y) for m, (ie, ce) in per_model.items()}}


def text_only_ceiling(classes: list[str]) -> dict[str, float]:
    """For the frozen MiniLM alone: the share of product kinds (the seen product concepts' names, in the candidate
    template) whose nearest category (in the same template) is their own; what an image tower aligned to MiniLM can
    at best reach with bare names, per template."""
    from demo_world.concepts import load_concepts, with_article
    from models.dual_encoder import MINILM, load_sentence_encoder

    st = load_sentence_encoder(MINILM)
    products = [c for c in load_concepts() if c.is_product and c.split == "train"]
    out = {}
    for t in CANDIDATES:
        cls = st.encode([t.format(c) for c in classes], normalize_embeddings=True)
        items = st.encode([t.format(with_article(c.name)) for c in products], normalize_embeddings=True)
        pred = (items @ cls.T).argmax(1)
        out[t] = float(np.mean([classes[p] == c.category for p, c in zip(pred, products)]) * 100)
    return out


def main(argv: list[str] | None = None) -> None:
    from models.zero_shot import catalogue_classes

    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--dataset", default="data/demo_world_free")
    p.add_argument("--catalog", default=None)
    p.add_argument("--text-only", action="store_true", help="print MiniLM's text-only ceiling per template instead")
    args = p.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    if args.text_only:
        print(json.dumps(text_only_ceiling(catalogue_classes()), indent=2))
        return
    services = Services(load_catalog(args.catalog))
    models = [m for m in services.catalog.models_for("categorise") if services.catalog.model(m).family != "cnn_classifier"]
    data = load_split(resolve(args.dataset, repo_type="dataset"), "products", "val")
    print(json.dumps(select(services, models, data, catalogue_classes()), indent=2))


if __name__ == "__main__":
    main()
