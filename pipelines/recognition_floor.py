"""Calibrate the dual encoder's "nothing of this world in the picture" floor on the val split.

    python -m pipelines.recognition_floor --model dual-minilm-cnn --dataset data/demo_world_free

The image tower recognises, cell by cell, which seen concept is drawn there (`DualEncoder.recognition`: its best
cell probability for any seen concept). Noise, blank pictures and textures score near zero; every picture of the
world shows at least one concept. The floor is the `PERCENTILE`-th percentile of that score over the val split's
scenes and products (pictures no model was selected on for anything else than val, at the collections' 128 px),
so about 1% of genuine world pictures fall under it, as for the other familiarity floors (`core/familiarity.py`).
Written to `<model folder>/recognition.json`, which the loader reads, with the seen concepts' name embeddings
the recognition weighs cells by (`concept_names.safetensors`: a fresh process reads them instead of spending about
2 s of MiniLM on them in its first categorisation). `--names-only` writes just those.
"""
from __future__ import annotations

import argparse
import json
import logging
from pathlib import Path

import numpy as np

from core.familiarity import PERCENTILE

log = logging.getLogger(__name__)


def calibrate(encoder, images) -> dict:
    scores = np.array([encoder.recognition(im) for im in images])
    return {"floor": round(float(np.percentile(scores, PERCENTILE)), 6), "percentile": PERCENTILE,
            "pictures": len(scores), "median": round(float(np.median(scores)), 6)}


def main(argv: list[str] | None = None) -> None:
    from core.catalog import load_catalog
    from core.services import Services
    from demo_world.free_corpus import load_split, pil_images
    from models.dual_encoder import name_embeddings, save_name_embeddings, seen_concept_names

    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--model", default="dual-minilm-cnn")
    p.add_argument("--dataset", default="data/demo_world_free")
    p.add_argument("--split", default="val")
    p.add_argument("--catalog", default=None)
    p.add_argument("--names-only", action="store_true", help="write the name embeddings only, keep the floor")
    args = p.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    services = Services(load_catalog(args.catalog))
    encoder = services.encoder(args.model)
    folder = Path(services.catalog.model(args.model).source)
    names = seen_concept_names()
    emb = name_embeddings(encoder.sentence_encoder, names)  # computed afresh, never read back from the folder
    log.info("wrote %s", save_name_embeddings(folder, encoder.model.cfg.text_tower, names, emb))
    encoder._names = emb
    if args.names_only:
        return
    images = [im for config in ("scenes", "products")
              for im in pil_images(load_split(Path(args.dataset), config, args.split))]
    record = calibrate(encoder, images) | {"split": f"scenes+products/{args.split}", "dataset": args.dataset,
                                           "command": "python -m pipelines.recognition_floor " + " ".join(argv or [])}
    out = folder / "recognition.json"
    out.write_text(json.dumps(record, indent=2) + "\n")
    log.info("wrote %s: %s", out, record)


if __name__ == "__main__":
    main()
