"""The one path from a dataset's rows to a saved index: embed each picture (an unreadable one skipped and reported,
never fatal), keep each row's metadata, choose and build the FAISS index for the collection's size, save it
atomically with its sidecar.

Shared by the app (`core.index_builds`: indexes it builds itself), the offline pipelines (`pipelines.build_index`,
`pipelines.shards`, `pipelines.ray_shards`) and the evaluations; it lives here, not in `pipelines/`, so that the app
never imports its offline tools.
"""
from __future__ import annotations

import io
import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
from PIL import Image
from tqdm import tqdm

from core.inputs import InputError, load_image
from core.sources import describe
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
