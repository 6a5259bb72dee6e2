"""The index pipeline shard by shard: dataset shard -> embeddings parquet -> one merged FAISS index.

    # step 1, once per shard, anywhere (a laptop loop, a job array):
    python -m pipelines.shards embed --model demo-clip --dataset data/demo_world_free --config scenes --split test \\
        --shard 0 --num-shards 8 --out runs/emb
    # or step 1 for the whole split on a Ray cluster (pipelines.ray_shards):
    python -m pipelines.shards ray --model demo-clip --dataset data/demo_world_free --config scenes --split test \\
        --embeddings runs/emb-ray --concurrency 2 --threads 1 --batch-size 64
    # step 2, once, where the index is wanted:
    python -m pipelines.shards merge --model demo-clip --dataset data/demo_world_free --config scenes --split test \\
        --embeddings runs/emb --out assets/indexes/demo-clip--scenes-test

`embed_shard` is a pure function of (shard index, number of shards): it reads its contiguous slice of the split
(`datasets.Dataset.shard(..., contiguous=True)`), embeds it and writes `embeddings-<i>-of-<n>.parquet` with the
vectors and the metadata the app shows (an unreadable image is skipped and named in the shard's JSON). `ray` runs
the same embedding step (`core.indexing.embed_batch`) in Ray Data actors and writes under Ray's own file
names, to a folder or any URL pyarrow writes. `merge` takes either: it checks that every shard of one run is there
exactly once, or that a Ray run finished and wrote every row of the split exactly once, puts the rows in the
split's order (the single-pass order) and builds the index with the same code as `pipelines.build_index`.
"""
from __future__ import annotations

import argparse
import fnmatch
import json
import logging
import re
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow.dataset as pads
import pyarrow.fs as pafs

from core.catalog import load_catalog
from core.services import Services
from core.sources import resolve
from demo_world.free_corpus import split_files
from pipelines.build_index import embed_rows, index_from_embeddings, load_rows, metadata

log = logging.getLogger(__name__)
_NAME = re.compile(r"embeddings-(\d{5})-of-(\d{5})\.parquet")


def shard_path(out: Path, shard: int, num_shards: int) -> Path:
    return Path(out) / f"embeddings-{shard:05d}-of-{num_shards:05d}.parquet"


def embed_shard(services: Services, model: str, dataset_source: str, config: str, split: str, shard: int,
                num_shards: int, out: Path, limit: int | None = None) -> Path:
    if not 0 <= shard < num_shards:
        raise ValueError(f"shard must be in 0..{num_shards - 1}, got {shard}")
    encoder = services.encoder(model)
    data = load_rows(dataset_source, config, split, limit).shard(num_shards, shard, contiguous=True)
    done = embed_rows(encoder, data)
    table = metadata(data.select(done.rows))
    table["embedding"] = list(done.xb)
    path = shard_path(out, shard, num_shards)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    table.to_parquet(tmp, index=False)
    tmp.replace(path)  # a killed task leaves no half-written shard under the final name
    (path.parent / f"{path.stem}.json").write_text(json.dumps({"model": model, "model_revision": encoder.revision,
                                                                "rows": len(table), "dim": int(encoder.dim),
                                                                "skipped": done.skipped}) + "\n")
    log.info("wrote %s (%d rows)", path, len(table))
    return path


def read_shards(folder: Path) -> tuple[np.ndarray, pd.DataFrame, dict]:
    """Every shard of one run, in shard order: (vectors (N, D), metadata, what the shards agree on)."""
    found = {}
    for p in sorted(Path(folder).glob("embeddings-*-of-*.parquet")):
        m = _NAME.fullmatch(p.name)
        if m:
            found[(int(m.group(1)), int(m.group(2)))] = p
    totals = {n for _, n in found}
    if len(totals) != 1:
        raise ValueError(f"{folder}: expected the shards of one run, found totals {sorted(totals) or 'none'}")
    n = totals.pop()
    missing = sorted(set(range(n)) - {i for i, _ in found})
    if missing:
        raise ValueError(f"{folder}: shards {missing} of {n} are missing; run `embed` for them first")
    sides = [json.loads((found[(i, n)].parent / f"{found[(i, n)].stem}.json").read_text()) for i in range(n)]
    if len({(s["model"], s["model_revision"], s["dim"]) for s in sides}) != 1:
        raise ValueError(f"{folder}: the shards were embedded with different models or revisions")
    tables = [pd.read_parquet(found[(i, n)]) for i in range(n)]
    meta = pd.concat(tables, ignore_index=True)
    xb = np.ascontiguousarray(np.stack(meta.pop("embedding").to_numpy()).astype(np.float32)) if len(meta) else \
        np.zeros((0, sides[0]["dim"]), np.float32)
    return xb, meta, sides[0]


def filesystem(uri: str) -> tuple[pafs.FileSystem, str]:
    """(filesystem, path) for a local folder or any URL pyarrow understands (s3://, gs://, hdfs://, file://)."""
    if "://" in uri:
        return pafs.FileSystem.from_uri(uri)
    return pafs.LocalFileSystem(), str(Path(uri).resolve())


def split_parquet(dataset_source: str, config: str, split: str) -> tuple[pafs.FileSystem, list[str]]:
    """The split's parquet files in row order, with the filesystem to read them: a folder or `hf-hub:` source
    through the one resolver (local files), or the same layout at a URL (object storage every node of a cluster
    reads: `s3://bucket/demo_world`)."""
    if "://" not in dataset_source:
        return pafs.LocalFileSystem(), [str(f) for f in split_files(resolve(dataset_source, repo_type="dataset"),
                                                                    config, split)]
    fs, root = filesystem(dataset_source)
    found = fs.get_file_info(pafs.FileSelector(f"{root}/{config}", allow_not_found=True))
    files = sorted(i.path for i in found if fnmatch.fnmatch(i.base_name, f"{split}-*.parquet"))
    if not files:
        raise FileNotFoundError(f"no parquet files for {config}/{split} under {dataset_source}")
    return fs, files


def split_ids(dataset_source: str, config: str, split: str) -> list[str]:
    """The split's ids in its row order (the single-pass order), read from the id column alone."""
    fs, files = split_parquet(dataset_source, config, split)
    return pads.dataset(files, filesystem=fs, format="parquet").to_table(columns=["id"])["id"].to_pylist()


def is_ray_output(embeddings: str | Path) -> bool:
    """A Ray run writes to any URL, under its own file names; `embed` writes embeddings-<i>-of-<n>.parquet."""
    return "://" in str(embeddings) or not any(Path(embeddings).glob("embeddings-*-of-*.parquet"))


def merge(model: str, dataset_source: str, config: str, split: str, embeddings: str | Path, out: Path):
    """Build the index from the shards of `embed` or the output of a Ray run (`pipelines.ray_shards`)."""
    if is_ray_output(embeddings):
        from pipelines.ray_shards import read_ray_output

        xb, meta, side = read_ray_output(str(embeddings), split_ids(dataset_source, config, split))
    else:
        xb, meta, side = read_shards(Path(embeddings))
    if side["model"] != model:
        raise ValueError(f"the shards in {embeddings} were embedded with {side['model']!r}, not {model!r}")
    return index_from_embeddings(xb, meta, out, model=model, model_revision=side["model_revision"],
                                 dataset_source=dataset_source, config=config, split=split)


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    sub = p.add_subparsers(dest="step", required=True)
    for name in ("embed", "merge", "ray"):
        s = sub.add_parser(name, help={"embed": "embed one shard in this process",
                                       "merge": "build the index from the shards or a Ray run's output",
                                       "ray": "embed the whole split on a Ray cluster (pipelines.ray_shards)"}[name])
        s.add_argument("--model", required=True)
        s.add_argument("--dataset", required=True)
        s.add_argument("--config", default="scenes")
        s.add_argument("--split", default="test")
        s.add_argument("--catalog", default=None)
        if name == "embed":
            s.add_argument("--shard", type=int, required=True)
            s.add_argument("--num-shards", type=int, required=True)
            s.add_argument("--out", type=Path, required=True, help="folder for the shard's embeddings parquet")
            s.add_argument("--limit", type=int, default=None)
        elif name == "merge":
            s.add_argument("--embeddings", required=True, help="the shards' folder, or a Ray run's folder or URL")
            s.add_argument("--out", type=Path, required=True, help="the index folder")
        else:
            s.add_argument("--embeddings", required=True, help="where to write: a folder or any URL pyarrow writes")
            s.add_argument("--concurrency", type=int, default=1, help="encoder actors (each loads the model once)")
            s.add_argument("--threads", type=int, default=1, help="CPUs (torch threads) per actor")
            s.add_argument("--batch-size", type=int, default=64, help="images per map_batches call")
            s.add_argument("--address", default=None, help="Ray cluster (default: RAY_ADDRESS, else start one here)")
            s.add_argument("--num-cpus", type=int, default=None, help="CPUs of the local cluster started here")
            s.add_argument("--out", type=Path, default=None, help="then merge into this index folder")
    args = p.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    if args.step == "embed":
        embed_shard(Services(load_catalog(args.catalog)), args.model, args.dataset, args.config, args.split, args.shard,
                    args.num_shards, args.out, args.limit)
    elif args.step == "ray":
        from pipelines.ray_shards import embed_on_ray, start

        start(args.address, args.num_cpus)
        embed_on_ray(args.model, args.dataset, args.config, args.split, args.embeddings, catalog=args.catalog,
                     concurrency=args.concurrency, threads=args.threads, batch_size=args.batch_size)
        if args.out:
            merge(args.model, args.dataset, args.config, args.split, args.embeddings, args.out)
    else:
        merge(args.model, args.dataset, args.config, args.split, args.embeddings, args.out)


if __name__ == "__main__":
    main()
