"""Build a FAISS index of a dataset split's images with one catalog model.

    python -m pipelines.build_index --model demo-clip --dataset data/demo_world_free --config scenes \
        --split test+heldout --calibrate-split val --out assets/indexes/demo-clip--scenes-test-heldout

The dataset is a folder or `hf-hub:` dataset repo in the demo world's parquet layout (see
`demo_world/corpus.py`). The output folder (index.faiss, meta.parquet, index.json) is written atomically.
"""
from __future__ import annotations

import argparse
import io
import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
from PIL import Image
from tqdm import tqdm

from core.catalog import load_catalog
from core.inputs import InputError, load_image
from core.services import Services
from core.sources import describe, resolve
from demo_world.corpus import load_split, undecoded
from index import IndexInfo, build_index, choose_factory, measure_recall, save_index, tune_search_params, utc_now

log = logging.getLogger(__name__)


@dataclass
class Embedded:
    """What one embedding pass made of a run of rows."""

    xb: np.ndarray  # (N_ok, D) L2-normalised image embeddings, in row order
    rows: list[int]  # positions (in the input) of the rows embedded: every row whose image could be read
    skipped: list[tuple[str, str]] = field(default_factory=list)  # (id, reason) of rows whose image could not

    @classmethod
    def concat(cls, parts: list[Embedded], offsets: list[int], dim: int) -> Embedded:
        xb = np.concatenate([p.xb for p in parts]) if parts else np.zeros((0, dim), np.float32)
        rows = [o + r for p, o in zip(parts, offsets) for r in p.rows]
        return cls(xb, rows, [s for p in parts for s in p.skipped])


def embed_batch(encoder, ids: Sequence[str], images: Sequence[dict]) -> Embedded:
    """Embed one batch of undecoded images ({"bytes", "path"}), each decoded and checked as an upload is
    (`core.inputs.load_image`). An image that cannot be read is skipped and reported by id, never fatal: one bad
    file must not stop a build of millions. The one embedding step of every index path (single pass, shards, Ray)."""
    pictures, rows, skipped = [], [], []
    for i, (row_id, image) in enumerate(zip(ids, images)):
        try:
            pictures.append(load_image(image["bytes"] if isinstance(image, dict) else image))
            rows.append(i)
        except InputError as e:
            skipped.append((str(row_id), str(e)))
            log.warning("skipped image %s: %s", row_id, e)
    xb = encoder.encode_image(pictures, batch_size=max(1, len(pictures)))
    return Embedded(xb, rows, skipped)


def embed_rows(encoder, dataset, batch_size: int = 128, progress: Callable[[int], None] | None = None) -> Embedded:
    """Every row of a dataset whose `image` column holds undecoded bytes, batch by batch; `progress(rows_done)`
    after each batch (the app's background builds show it to visitors)."""
    parts, offsets = [], []
    for start in tqdm(range(0, len(dataset), batch_size), desc=f"embed with {encoder.name}", unit="batch"):
        rows = dataset[start : start + batch_size]
        parts.append(embed_batch(encoder, rows["id"], rows["image"]))
        offsets.append(start)
        if progress:
            progress(min(len(dataset), start + batch_size))
    return Embedded.concat(parts, offsets, encoder.dim)


def embed_images(encoder, dataset, batch_size: int = 128) -> np.ndarray:
    """(N, D) normalised image embeddings of every row; an unreadable image is an error here (evaluation needs
    them all, aligned with the captions)."""
    done = embed_rows(encoder, dataset, batch_size)
    if done.skipped:
        raise ValueError(f"{len(done.skipped)} images cannot be read, e.g. {done.skipped[0][0]}: {done.skipped[0][1]}")
    return done.xb


THUMBNAIL_PX = 320  # pictures larger than this are kept in the index's metadata as a JPEG of this size


def thumbnail(data: bytes) -> bytes:
    """The picture as the app shows it: as is when small (the demo world's PNGs), else a JPEG thumbnail, so an
    index of photos keeps tens of kB per image in memory, not the full-size file."""
    try:
        image = Image.open(io.BytesIO(data))
        if max(image.size) <= THUMBNAIL_PX:
            return data
        image = image.convert("RGB")
        image.thumbnail((THUMBNAIL_PX, THUMBNAIL_PX))
    except Exception:  # an unreadable picture: kept as is for the report of skipped rows, never indexed
        return data
    buf = io.BytesIO()
    image.save(buf, format="JPEG", quality=85)
    return buf.getvalue()


def _unseen(objects) -> list[str]:
    """Names of the picture's objects that no model was trained on (the open-vocabulary world's held-out
    concepts, `concept_split == "heldout"`); empty for other datasets."""
    return [o["name"] for o in (objects or []) if o.get("concept_split") == "heldout"]


def metadata(columns) -> pd.DataFrame:
    """One row per vector: id, first caption, all captions, the picture (see `thumbnail`), the category and the
    held-out concepts it shows (`unseen`). `columns` is a `datasets.Dataset` or any mapping of column name to
    values (a batch, a DataFrame)."""
    names = columns.column_names if hasattr(columns, "column_names") else list(columns.keys())
    ids = list(columns["id"])
    return pd.DataFrame(
        {
            "id": ids,
            "caption": [c[0] if len(c) else "" for c in columns["captions"]],
            "captions": [list(c) for c in columns["captions"]],
            "image": [thumbnail(r["bytes"] if isinstance(r, dict) else r) for r in columns["image"]],
            "category": list(columns["category"]) if "category" in names else [""] * len(ids),
            "unseen": [_unseen(o) for o in columns["objects"]] if "objects" in names else [[] for _ in ids],
        }
    )


def load_rows(dataset_source: str, config: str, split: str, limit: int | None = None):
    """The split with undecoded images (PNG bytes), optionally its first `limit` rows."""
    data = load_split(resolve(dataset_source, repo_type="dataset"), config, split)
    if limit:
        data = data.select(range(min(limit, len(data))))
    return undecoded(data)


def index_from_embeddings(xb: np.ndarray, meta: pd.DataFrame, out: Path, *, model: str, model_revision: str | None,
                          dataset_source: str, config: str, split: str, extra: dict | None = None) -> IndexInfo:
    """Choose the index for the collection's size, build it, tune its search knob to recall@10 >= 0.95 against
    exact search, and save it atomically with its metadata and sidecar. Shared by the single-pass and the
    sharded pipelines (`pipelines.shards`)."""
    factory = choose_factory(len(xb), xb.shape[1])
    index = build_index(xb, factory)
    xq = xb[np.random.default_rng(0).choice(len(xb), size=min(1000, len(xb)), replace=False)]
    if factory == "Flat":
        params, recall = {}, measure_recall(index, xb, xq, k=10)
    else:  # the cheapest nprobe / efSearch reaching 0.95 recall@10 against exact search
        params, recall = tune_search_params(index, xb, xq, k=10, target=0.95)
    dataset_name, dataset_revision = describe(dataset_source)
    info = IndexInfo(
        model=model,
        model_revision=model_revision,
        dim=int(xb.shape[1]),
        metric="inner_product",
        count=len(xb),
        factory=factory,
        dataset=dataset_name,
        dataset_revision=dataset_revision,
        split=f"{config}/{split}",
        build_date=utc_now(),
        recall_at_10_vs_exact=recall,
        search_params=params,
        extra=extra or {},
    )
    save_index(out, index, meta, info)
    log.info("wrote %s: %d vectors, factory %s", out, len(xb), factory)
    return info


def load_splits(spec, config: str, split: str, sample: int | None = None):
    """One split, or several joined by "+" ("test+heldout": one collection of both, in that order)."""
    import datasets as ds

    from core.layouts import load_split as load_layout

    parts = [load_layout(spec, config, s, sample=sample) for s in split.split("+")]
    return parts[0] if len(parts) == 1 else ds.concatenate_datasets(parts)


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
