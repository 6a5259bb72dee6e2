"""Build a FAISS index of a dataset split's images with one catalog model.

    python -m pipelines.build_index --model demo-clip --dataset data/demo_world_free --config scenes \
        --split test+heldout --calibrate-split val --out assets/indexes/demo-clip--scenes-test-heldout

The dataset is a folder or `hf-hub:` dataset repo in the demo world's parquet layout (see
`demo_world/free_corpus.py`). The output folder (index.faiss, meta.parquet, index.json) is written atomically.
"""
from __future__ import annotations

import argparse
import logging
from pathlib import Path

import numpy as np

from core.catalog import load_catalog
from core.indexing import (  # noqa: F401 - re-exported: the pipelines' one embedding and indexing path
    Embedded,
    embed_batch,
    embed_images,
    embed_rows,
    index_from_embeddings,
    metadata,
    thumbnail,
)
from core.layouts import load_splits  # noqa: F401 - re-exported
from core.services import Services
from core.sources import resolve
from demo_world.free_corpus import load_split, undecoded
from index import IndexInfo, build_index

log = logging.getLogger(__name__)


def load_rows(dataset_source: str, config: str, split: str, limit: int | None = None):
    """The split with undecoded images (PNG bytes), optionally its first `limit` rows."""
    data = load_split(resolve(dataset_source, repo_type="dataset"), config, split)
    if limit:
        data = data.select(range(min(limit, len(data))))
    return undecoded(data)


def calibrate(encoder, xb: np.ndarray, spec, config: str, split: str) -> dict:
    """Familiarity floors (`core.familiarity`) of a collection: every caption, every "a <object name>" and every
    image of `split` (one the collection does not hold, normally val) searched exactly among the collection's
    vectors."""
    from core.familiarity import floors

    data = load_splits(spec, config, split)
    texts = [c for caps in data["captions"] for c in caps]
    if "objects" in data.column_names:  # short in-world queries too ("a dog"): they score lower than captions
        texts += sorted({f"a {o['name']}" for objs in data["objects"] for o in objs})
    text_emb = encoder.encode_text(texts) if texts else None
    image_emb = embed_rows(encoder, data).xb
    return floors(text_emb, image_emb, build_index(xb, "Flat"), split=f"{config}/{split}")


def build(
    services: Services, model: str, dataset_source: str, config: str, split: str, out: Path, limit: int | None = None,
    sample: int | None = None, calibrate_split: str | None = None,
) -> IndexInfo:
    """`dataset_source` is a dataset named in the catalog (any layout of `core.layouts`), or a folder / hf-hub:
    source in the corpus layout; `split` may join splits with "+". With `calibrate_split`, the index's sidecar
    also records its familiarity floors measured on that split (`core.familiarity`)."""
    from core.layouts import DatasetSpec

    encoder = services.encoder(model)
    spec = services.catalog.datasets.get(dataset_source) or DatasetSpec(dataset_source, dataset_source)
    data = load_splits(spec, config, split, sample=sample)
    if limit:
        data = data.select(range(min(limit, len(data))))
    done = embed_rows(encoder, data)
    extra = {"familiarity": calibrate(encoder, done.xb, spec, config, calibrate_split)} if calibrate_split else None
    return index_from_embeddings(done.xb, metadata(data.select(done.rows)), out, model=model,
                                 model_revision=encoder.revision, dataset_source=spec.source,
                                 config=config if spec.layout == "corpus" else spec.layout, split=split, extra=extra)


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description="Build a FAISS index of a dataset split with a catalog model.")
    p.add_argument("--model", required=True)
    p.add_argument("--dataset", required=True,
                   help="a dataset named in the catalog (any layout), or a folder / hf-hub:owner/dataset[@rev] in the "
                        "corpus layout")
    p.add_argument("--config", default="scenes")
    p.add_argument("--split", default="test")
    p.add_argument("--out", type=Path, required=True)
    p.add_argument("--catalog", default=None)
    p.add_argument("--limit", type=int, default=None, help="the split's first N rows")
    p.add_argument("--sample", type=int, default=None, help="a seeded random sample of N rows")
    p.add_argument("--calibrate-split", default=None,
                   help="a split the collection does not hold (val): measure the familiarity floors on it")
    args = p.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    services = Services(load_catalog(args.catalog))
    build(services, args.model, args.dataset, args.config, args.split, args.out, args.limit, args.sample,
          args.calibrate_split)


if __name__ == "__main__":
    main()
