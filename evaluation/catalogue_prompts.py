"""Choose a catalogue's bare-name prompt templates on a validation split of its dataset, never on the pictures the
app measures it on.

    python -m evaluation.catalogue_prompts --catalog catalog.hub.toml --catalogue "fashion products: masterCategory"

A catalogue of `catalog.hub.toml` (the fashion products' masterCategory or subCategory) is measured by the app on
its collection: a seeded sample of a dataset split (`build.sample`, seed 0: the fashion products have no test split
of their own). The validation split here is a seeded sample (`--seed`, default 1) of the *other* rows of that split,
so no picture the app measures is ever used to choose. Each picture's label is the catalogue's `field`; pictures
whose label is not a class of the catalogue are left out (and counted).

Greedy forward selection, as `evaluation.prompt_selection` does for the demo world: starting from none, the
candidate template that raises the mean validation accuracy of the catalogue's zero-shot models the most is added,
until no candidate helps. Candidates are the generic ones plus the catalogue's current templates. The output (JSON)
gives the chosen templates, their validation accuracy per model against the current templates', and the rows used;
copy the templates into the catalogue's `templates` in the catalog. Needs the real weights (the Hub): random
weights would choose noise, and this repository's own runs can only test the plumbing.
"""
from __future__ import annotations

import argparse
import json
import logging
from collections.abc import Callable, Sequence

import numpy as np

log = logging.getLogger(__name__)

GENERIC_CANDIDATES = (
    "{}", "a photo of {}", "a product photo of {}", "a catalogue picture of {}", "a photo of {}, a type of product",
    "a photo of {}, a type of fashion product", "an item of {}", "a product in the category {}", "{} products",
    "a picture of something from the {} department", "a studio photo of {} on a white background", "shop for {}",
)


def greedy_templates(score: Callable[[list[str]], float], candidates: Sequence[str]) -> tuple[list[str], float, list]:
    """Forward selection: add the candidate that raises `score(chosen)` the most, until none raises it."""
    chosen: list[str] = []
    best, history = -1.0, []
    while True:
        trials = {t: score(chosen + [t]) for t in candidates if t not in chosen}
        if not trials:
            break
        t, s = max(trials.items(), key=lambda kv: kv[1])
        if s <= best:
            break
        chosen.append(t)
        best = s
        history.append({"added": t, "mean_val_accuracy": s})
        log.info("added %r: mean validation accuracy %.1f", t, s)
    return chosen, best, history


def accuracy(image_emb: np.ndarray, class_emb: dict[str, np.ndarray], templates: list[str], y: np.ndarray) -> float:
    """Zero-shot accuracy (%) with each class the normalised mean of its templates' text embeddings."""
    n_classes = next(iter(class_emb.values())).shape[0]
    cls = np.stack([np.mean([class_emb[t][i] for t in templates], axis=0) for i in range(n_classes)])
    cls /= np.linalg.norm(cls, axis=1, keepdims=True)
    return float(((image_emb @ cls.T).argmax(1) == y).mean() * 100)


def validation_split(catalog, catalogue_name: str, size: int, seed: int):
    """(rows of the dataset split the catalogue's collection was drawn from, minus the collection's own rows:
    a seeded `size` of them; their labels; what was left out). Raises ValueError when nothing is left."""
    from core.layouts import column_by_id, load_split, sample_indices

    cat = catalog.catalogue(catalogue_name)
    builds = [ix.build for ix in catalog.indexes if ix.collection == cat.collection and ix.build is not None]
    if not cat.collection or not builds:
        raise ValueError(f"Catalogue {catalogue_name!r}: its collection {cat.collection!r} is not built from a catalog "
                         "dataset, so there is no split to draw a validation set from.")
    build = builds[0]
    if build.sample is None:
        raise ValueError(f"Catalogue {catalogue_name!r}: its collection holds the whole {build.split!r} split; no rows "
                         "are left for a validation set.")
    spec = catalog.datasets[build.dataset]
    data = load_split(spec, build.config, build.split)
    measured = set(sample_indices(len(data), build.sample, 0).tolist())  # the collection: seed 0, as the app draws it
    rest = np.array([i for i in range(len(data)) if i not in measured])
    if not len(rest):
        raise ValueError(f"Catalogue {catalogue_name!r}: the collection holds every row of the split.")
    val = np.sort(np.random.default_rng(seed).choice(rest, size=min(size, len(rest)), replace=False))
    data = data.select(val.tolist())
    if cat.field == "category":
        labels = list(data["category"])
    else:
        by_id = column_by_id(spec, build.split, cat.field)  # read once: the whole column
        labels = [by_id.get(str(i)) for i in data["id"]]
    keep = [i for i, label in enumerate(labels) if label in cat.descriptions]
    info = {"dataset": build.dataset, "split": build.split, "collection_rows": build.sample, "collection_seed": 0,
            "validation_seed": seed, "validation_rows": len(val), "left_out_unknown_label": len(val) - len(keep),
            "disjoint_from_collection": not (set(val.tolist()) & measured), "ids": [str(i) for i in data["id"]]}
    return data.select(keep), [labels[i] for i in keep], info


def select(services, catalogue_name: str, models: list[str] | None = None, size: int = 500, seed: int = 1,
           candidates: Sequence[str] = GENERIC_CANDIDATES) -> dict:
    from core.indexing import embed_images

    catalog = services.catalog
    cat = catalog.catalogue(catalogue_name)
    if models is None:
        models = [ix.model for ix in catalog.indexes if ix.collection == cat.collection
                  and "categorise" in catalog.model(ix.model).tasks]
    data, labels, info = validation_split(catalog, catalogue_name, size, seed)
    classes = cat.classes
    y = np.array([classes.index(label) for label in labels])
    candidates = list(dict.fromkeys([*candidates, *cat.templates]))
    per_model = {}
    for m in models:
        enc = services.encoder(m)
        per_model[m] = (embed_images(enc, data), {t: enc.encode_text([t.format(c) for c in classes])
                                                    for t in candidates})

    def score(templates: list[str]) -> float:
        return float(np.mean([accuracy(ie, ce, templates, y) for ie, ce in per_model.values()]))

    chosen, best, history = greedy_templates(score, candidates)
    current = list(cat.templates)
    return {"catalogue": catalogue_name, "models": models, "validation": info,
            "class_counts": {c: int((y == i).sum()) for i, c in enumerate(classes)},
            "templates": chosen, "mean_val_accuracy": best, "history": history,
            "per_model": {m: accuracy(ie, ce, chosen, y) for m, (ie, ce) in per_model.items()},
            "current_templates": current,
            "current_per_model": {m: accuracy(ie, ce, current, y) for m, (ie, ce) in per_model.items()}}


def main(argv: list[str] | None = None) -> None:
    from core.catalog import load_catalog
    from core.services import Services

    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--catalog", default="catalog.hub.toml")
    p.add_argument("--catalogue", required=True, help='e.g. "fashion products: masterCategory"')
    p.add_argument("--model", action="append", default=None, help="a zero-shot model (repeatable; default: every "
                   "categorise model with an index of the catalogue's collection)")
    p.add_argument("--size", type=int, default=500, help="validation pictures drawn (default 500)")
    p.add_argument("--seed", type=int, default=1)
    args = p.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    services = Services(load_catalog(args.catalog))
    print(json.dumps(select(services, args.catalogue, args.model, args.size, args.seed), indent=2))


if __name__ == "__main__":
    main()
