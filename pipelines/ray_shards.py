"""The embedding stage on Ray Data: a dataset split -> an embeddings parquet dataset at any path pyarrow writes.

    python -m pipelines.shards ray --model demo-clip --dataset data/demo_world_free --config scenes --split test \\
        --embeddings runs/emb-ray --concurrency 2 --threads 1 --batch-size 64 \\
        [--address auto] [--out assets/indexes/demo-clip--scenes-test]

The split's parquet files (a folder or an `hf-hub:` dataset through the one resolver, or the same layout at a URL
that every node reads, `s3://bucket/demo_world`) go straight into `ray.data.read_parquet`; `map_batches` runs
`ImageEmbedder`, a callable class, so each actor loads the encoder once and pins torch to its own `threads`;
`concurrency` actors each reserve `threads` CPUs. Each batch is embedded by `core.indexing.embed_batch`,
the one embedding step of every index path. The output is parquet (vectors + the metadata the app shows +
`model_revision` + `error`) written by `Dataset.write_parquet` to a local folder or any URL pyarrow can write
(`s3://...`, `gs://...`), then `_manifest.json` (written last: a folder without it is an unfinished run). `merge`
(in `pipelines.shards`) puts the rows back in the split's order, checks that every row is there exactly once, and
builds and tunes the index with the same code as `build_index`.

Failures: an actor that dies (killed, out of memory) is restarted and its batches retried by Ray itself (Ray
Data's defaults for actor pools: `max_restarts=-1`, `max_task_retries=-1`); a batch's output exists only once its
task has finished, so a retried batch is written once, and `merge` checks it. An image that cannot be read is
skipped and reported by id (in `_manifest.json` and in the log), never fatal. Ray is a pipelines-only dependency
(requirements-pipelines.txt), imported only where a job runs: the app never imports it, and `merge` reads a Ray
run's output without it.
"""
from __future__ import annotations

import json
import logging
import os
import time
from collections import Counter

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.dataset as pads
import pyarrow.fs as pafs
import pyarrow.parquet as pq

from pipelines.build_index import embed_batch, metadata
from pipelines.shards import filesystem, split_parquet

log = logging.getLogger(__name__)

MANIFEST = "_manifest.json"  # the leading underscore keeps parquet dataset readers from taking it for data
READ_COLUMNS = ("id", "image", "captions", "category")
SCHEMA = pa.schema([
    ("id", pa.string()), ("caption", pa.string()), ("captions", pa.list_(pa.string())), ("image", pa.binary()),
    ("category", pa.string()), ("embedding", pa.list_(pa.float32())), ("model_revision", pa.string()),
    ("error", pa.string()),  # "" for an embedded row; why not, for a skipped one (its embedding is empty)
])


class ImageEmbedder:
    """A Ray Data actor: loads the catalog model once, then embeds one batch per call."""

    def __init__(self, model: str, catalog: str | None = None, threads: int = 1):
        import torch

        from core.catalog import load_catalog
        from core.services import Services

        torch.set_num_threads(threads)  # the actor's own CPUs only, not every core of the node
        self.encoder = Services(load_catalog(catalog)).encoder(model)

    def __call__(self, batch: pa.Table) -> pa.Table:
        cols = {name: batch.column(name).to_pylist() for name in batch.column_names}
        done = embed_batch(self.encoder, cols["id"], cols["image"])
        bad = sorted(set(range(batch.num_rows)) - set(done.rows))
        ok = _table(metadata({k: [v[i] for i in done.rows] for k, v in cols.items()}), list(done.xb),
                    [""] * len(done.rows), self.encoder.revision)
        failed = _table(metadata({k: [v[i] for i in bad] for k, v in cols.items()}), [[]] * len(bad),
                        [reason for _, reason in done.skipped], self.encoder.revision)
        return pa.concat_tables([ok, failed])


def _table(meta, vectors: list, errors: list[str], revision: str | None) -> pa.Table:
    columns = {name: meta[name].tolist() for name in ("id", "caption", "captions", "image", "category")}
    columns |= {"embedding": [np.asarray(v, np.float32) for v in vectors], "error": errors,
                "model_revision": [revision or ""] * len(errors)}
    return pa.table({f.name: pa.array(columns[f.name], type=f.type) for f in SCHEMA}, schema=SCHEMA)


def embed_on_ray(model: str, dataset_source: str, config: str, split: str, embeddings: str, *,
                 catalog: str | None = None, concurrency: int = 1, threads: int = 1, batch_size: int = 64,
                 embedder: type = ImageEmbedder) -> dict:
    """Embed every row of the split on the connected Ray cluster (`ray.init` first) and write the embeddings
    parquet to `embeddings`; returns the manifest. `embedder` is the actor class (tests pass a subclass)."""
    import ray
    from ray.data import DataContext

    fs_in, files = split_parquet(dataset_source, config, split)
    present = set(pq.read_schema(files[0], filesystem=fs_in).names)
    fs, root = filesystem(embeddings)
    _clear(fs, root, embeddings)
    t0 = time.perf_counter()
    # Reading and writing are I/O: their tasks take no CPU slot (num_cpus=0), so the actors may hold every CPU.
    # Ray 2.60's default parquet reader (datasource v2) adds a listing task that needs a whole CPU and never
    # gets one once the actors hold them all (a deadlock on a one-node cluster); the v1 reader lists on the
    # driver.
    DataContext.get_current().use_datasource_v2 = False
    columns = [c for c in READ_COLUMNS if c in present]
    ds = ray.data.read_parquet(files, filesystem=fs_in, columns=columns, num_cpus=0)
    ds = ds.map_batches(
        embedder, fn_constructor_kwargs={"model": model, "catalog": catalog, "threads": threads},
        batch_size=batch_size, batch_format="pyarrow", num_cpus=threads,
        compute=ray.data.ActorPoolStrategy(size=concurrency),
    )
    ds.write_parquet(root, filesystem=fs, ray_remote_args={"num_cpus": 0})
    seconds = time.perf_counter() - t0
    manifest = _summarise(fs, root, model=model, dataset=dataset_source, config=config, split=split,
                          input_rows=sum(pq.read_metadata(f, filesystem=fs_in).num_rows for f in files))
    manifest["seconds"] = seconds
    with fs.open_output_stream(f"{root}/{MANIFEST}") as f:
        f.write((json.dumps(manifest, indent=1) + "\n").encode())
    log.info("wrote %s: %d rows embedded, %d skipped, in %.1f s", embeddings, manifest["rows"],
             len(manifest["skipped"]), seconds)
    for item in manifest["skipped"]:
        log.warning("skipped %s: %s", item["id"], item["error"])
    return manifest


def _clear(fs: pafs.FileSystem, root: str, where: str) -> None:
    """Empty the output folder of a previous run (its manifest first of all: files of two runs must never mix),
    refusing a folder that holds anything else."""
    fs.create_dir(root, recursive=True)
    found = fs.get_file_info(pafs.FileSelector(root, recursive=True))
    foreign = [i.path for i in found if i.type == pafs.FileType.File and not i.path.endswith((".parquet", MANIFEST))]
    if foreign:
        raise ValueError(f"{where} holds other files than embeddings (e.g. {foreign[0]}); give an empty folder")
    fs.delete_dir_contents(root)


def _summarise(fs: pafs.FileSystem, root: str, **about) -> dict:
    """What the written output holds, read back column by column (never the vectors)."""
    import ray

    data = pads.dataset(root, filesystem=fs, format="parquet")
    failed = data.to_table(columns=["id", "error"], filter=pc.field("error") != "")
    revisions: set[str] = set()
    for b in data.to_batches(columns=["model_revision"]):
        revisions.update(pc.unique(b.column(0)).to_pylist())
    if len(revisions) > 1:
        raise ValueError(f"{root}: the actors loaded different model revisions {sorted(revisions)}")
    return about | {
        "engine": f"ray {ray.__version__}",
        "model_revision": revisions.pop() if revisions else None,
        "rows": data.count_rows() - failed.num_rows,
        "skipped": [{"id": i, "error": e} for i, e in sorted(zip(failed["id"].to_pylist(),
                                                                  failed["error"].to_pylist()))],
    }


def read_ray_output(embeddings: str, order: list[str]):
    """(vectors (N, D), metadata, manifest) of a finished Ray run, in the order of the split's ids `order`, after
    checking that every id of the split is there exactly once, embedded or skipped."""
    import pandas as pd

    fs, root = filesystem(embeddings)
    try:
        with fs.open_input_stream(f"{root}/{MANIFEST}") as f:
            manifest = json.loads(f.read())
    except FileNotFoundError:
        raise ValueError(f"{embeddings}: no {MANIFEST}, so the Ray run did not finish; run it again") from None
    table = pads.dataset(root, filesystem=fs, format="parquet").to_table()
    table = table.filter(pc.field("error") == "")
    ids = table["id"].to_pylist()
    skipped = {s["id"] for s in manifest["skipped"]}
    _check_exactly_once(embeddings, ids, skipped, order)
    if not ids:
        raise ValueError(f"{embeddings}: no image of the split could be embedded (see the skipped ids in {MANIFEST})")
    if len(pc.unique(pc.list_value_length(table["embedding"]))) > 1:
        raise ValueError(f"{embeddings}: vectors of different lengths")
    position = {row_id: i for i, row_id in enumerate(order)}
    table = table.take(np.argsort([position[i] for i in ids], kind="stable"))
    meta: pd.DataFrame = table.drop_columns(["embedding", "model_revision", "error"]).to_pandas()
    xb = np.asarray(table["embedding"].combine_chunks().flatten().to_numpy(zero_copy_only=False), np.float32)
    xb = np.ascontiguousarray(xb.reshape(len(ids), -1))
    return xb, meta, manifest


def _check_exactly_once(where: str, ids: list[str], skipped: set[str], order: list[str]) -> None:
    twice = sorted(i for i, n in Counter(ids).items() if n > 1)
    if twice:
        raise ValueError(f"{where}: {len(twice)} rows were written more than once (e.g. {twice[:5]})")
    missing = set(order) - set(ids) - skipped
    extra = (set(ids) | skipped) - set(order)
    if missing or extra:
        raise ValueError(f"{where}: {len(missing)} rows of the split are missing (e.g. {sorted(missing)[:5]}) and "
                         f"{len(extra)} are not in it (e.g. {sorted(extra)[:5]}); was it embedded from this split?")


def start(address: str | None = None, num_cpus: int | None = None) -> None:
    """Connect to the cluster at `address` ("auto", ray://..., or RAY_ADDRESS as `ray job submit` sets it), or start
    a local one on `num_cpus` CPUs; Ray Data's progress bars go to the log only."""
    import ray
    from ray.data import DataContext

    local = address is None and not os.environ.get("RAY_ADDRESS")
    ray.init(address=address, num_cpus=num_cpus if local else None)
    DataContext.get_current().enable_progress_bars = False
