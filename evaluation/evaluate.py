"""The evaluate command: measure a catalog model on a dataset split and write the results beside the model.

    python -m evaluation.evaluate --model demo-clip --dataset data/demo_world --config scenes --split test

Writes `<model folder>/eval/<dataset>--<config>-<split>.json`:

    {"model", "model_revision", "dataset", "dataset_revision", "config", "split", "n_images", ...,
     "command", "date", "versions"}

For a scenes split (retrieval): "n_captions" and "metrics": {"t2i_R@1", ..., "i2t_R@10"}, following the standard
retrieval protocol (see `evaluation/retrieval.py`). For a products split (classification): "classes" and
"styles": {"descriptive" | "bare" | "supervised": {"accuracy", "macro_precision", "macro_recall", "macro_f1",
"balanced_accuracy", "confusion_matrix", and for zero-shot styles "prompts", "mean_similarity_per_class",
"top_images_per_class"}}. Scores are on a 0-100 scale.
"""
from __future__ import annotations

import argparse
import json
import logging
import shlex
import sys
from datetime import datetime, timezone
from importlib.metadata import version
from pathlib import Path

import numpy as np

from core.catalog import load_catalog
from core.services import Services
from core.sources import describe, resolve
from demo_world.corpus import load_split
from evaluation.retrieval import recall_at_k
from pipelines.build_index import embed_images

log = logging.getLogger(__name__)


def retrieval_metrics(encoder, dataset) -> dict:
    from datasets import Image as ImageFeature

    data = dataset.cast_column("image", ImageFeature(decode=False))
    image_emb = embed_images(encoder, data)
    captions = data["captions"]
    owner = np.repeat(np.arange(len(captions)), [len(c) for c in captions])
    text_emb = encoder.encode_text([c for caps in captions for c in caps])
    return {"n_images": len(data), "n_captions": len(owner), "metrics": recall_at_k(text_emb, image_emb, owner)}


def classification_results(model, dataset) -> dict:
    """Zero-shot (both prompt styles) or supervised accuracy / P / R / F1 / confusion on a products split, plus
    the seeds' analysis: mean image-prompt similarity per class and the best-matching images per class."""
    import io

    from PIL import Image

    from evaluation.classification import classification_metrics
    from models.zero_shot import build_zero_shot_classifier, catalogue_classes, prompts_for, zero_shot_probs

    classes = catalogue_classes()
    y = np.array([classes.index(c) for c in dataset["category"]])
    ids = dataset["id"]
    images = [Image.open(io.BytesIO(r["bytes"])) for r in dataset.cast_column("image", _raw_image())["image"]]
    out = {"n_images": len(y), "classes": classes, "styles": {}}
    if hasattr(model, "predict_proba"):
        pred = model.predict_proba(images).argmax(axis=1)
        out["styles"]["supervised"] = classification_metrics(y, pred, len(classes))
        return out
    image_emb = model.encode_image(images)
    for style in ("descriptive", "bare"):
        prompts = prompts_for(classes, style)
        class_emb = build_zero_shot_classifier(model, prompts)
        pred = zero_shot_probs(image_emb, class_emb, model.logit_scale).argmax(axis=1)
        sims = image_emb @ class_emb.T  # (N, C) cosine similarities
        out["styles"][style] = {
            **classification_metrics(y, pred, len(classes)),
            "prompts": prompts,
            "mean_similarity_per_class": {c: float(sims[y == i, i].mean()) for i, c in enumerate(classes)},
            "top_images_per_class": {c: [ids[j] for j in np.argsort(-sims[:, i])[:4]] for i, c in enumerate(classes)},
        }
    return out


def _raw_image():
    from datasets import Image as ImageFeature

    return ImageFeature(decode=False)


def results_path(model_folder: Path, dataset_name: str, config: str, split: str) -> Path:
    return model_folder / "eval" / f"{dataset_name}--{config}-{split}.json"


def evaluate(services: Services, model: str, dataset_source: str, config: str, split: str) -> dict:
    encoder = services.encoder(model)
    data = load_split(resolve(dataset_source, repo_type="dataset"), config, split)
    dataset_name, dataset_revision = describe(dataset_source)
    return {
        "model": model,
        "model_revision": encoder.revision,
        "dataset": dataset_name,
        "dataset_revision": dataset_revision,
        "config": config,
        "split": split,
        **(classification_results(encoder, data) if config == "products" else retrieval_metrics(encoder, data)),
        "command": "python -m evaluation.evaluate " + shlex.join(sys.argv[1:]),
        "date": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "versions": {p: version(p) for p in ("torch", "open_clip_torch", "faiss-cpu", "numpy")},
    }


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description="Evaluate a catalog model on a dataset split.")
    p.add_argument("--model", required=True)
    p.add_argument("--dataset", required=True, help="folder or hf-hub:owner/dataset[@rev]")
    p.add_argument("--config", default="scenes")
    p.add_argument("--split", default="test")
    p.add_argument("--catalog", default=None)
    p.add_argument("--out", type=Path, default=None, help="default: <model folder>/eval/...")
    args = p.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    services = Services(load_catalog(args.catalog))
    result = evaluate(services, args.model, args.dataset, args.config, args.split)
    model_source = services.catalog.model(args.model).source
    out = args.out or results_path(Path(model_source), result["dataset"].split("/")[-1], args.config, args.split)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2) + "\n")
    log.info("wrote %s", out)


if __name__ == "__main__":
    main()
