"""The evaluate command: measure a catalog model on a dataset split and write the results beside the model.

    python -m evaluation.evaluate --model demo-clip --dataset data/demo_world --config scenes --split test

Writes `<model folder>/eval/<dataset>--<config>-<split>.json`:

    {"model", "model_revision", "dataset", "dataset_revision", "config", "split", "seed", "n_images",
     "n_captions", "metrics": {"t2i_R@1": ..., "i2t_R@10": ...}, "command", "date", "versions"}

Metrics follow the standard retrieval protocol (see `evaluation/retrieval.py`), on a 0-100 scale.
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
from core.sources import parse_source, resolve
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


def results_path(model_folder: Path, dataset_name: str, config: str, split: str) -> Path:
    return model_folder / "eval" / f"{dataset_name}--{config}-{split}.json"


def evaluate(services: Services, model: str, dataset_source: str, config: str, split: str, seed: int = 0) -> dict:
    encoder = services.encoder(model)
    data = load_split(resolve(dataset_source, repo_type="dataset"), config, split)
    src = parse_source(dataset_source)
    return {
        "model": model,
        "model_revision": encoder.revision,
        "dataset": dataset_source if src.kind == "hub" else Path(dataset_source).name,
        "dataset_revision": src.revision,
        "config": config,
        "split": split,
        "seed": seed,
        **retrieval_metrics(encoder, data),
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
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", type=Path, default=None, help="default: <model folder>/eval/...")
    args = p.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    services = Services(load_catalog(args.catalog))
    result = evaluate(services, args.model, args.dataset, args.config, args.split, args.seed)
    model_source = services.catalog.model(args.model).source
    out = args.out or results_path(Path(model_source), result["dataset"].split("/")[-1], args.config, args.split)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2) + "\n")
    log.info("%s: %s", out, {k: round(v, 1) for k, v in result["metrics"].items()})


if __name__ == "__main__":
    main()
