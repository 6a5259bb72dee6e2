"""Dataset layouts: one split of a dataset, whatever its layout on the Hub, in the corpus schema.

The corpus schema is the demo world's (`demo_world/free_corpus.py`: id, image, captions, objects, background,
category, description), so indexing, evaluation and training read every dataset the same way. Each layout knows
which files a split needs, so a Hub download fetches only those, through the one resolver (`core.sources`).

| layout | files | example |
|---|---|---|
| `corpus` | `<config>/<split>-*.parquet` | the demo world |
| `flickr8k-parquet` | `data/<split>-*.parquet`, columns `image`, `caption_0` … `caption_4` | `jxie/flickr8k` |
| `webdataset` | `dataset_type.txt`, `<split>/nshards.txt`, `<split>/<n>.tar` (`webp`/`png`/`jpg` + `txt`) | `clip-benchmark/wds_flickr8k` |
| `fashion-products` | `data/train-*.parquet`, `masterCategory` … `productDisplayName` | `ashraq/fashion-product-images-small` |
| `flickr30k-parquet` | `TEST/test/*.parquet` at `@refs/convert/parquet`, Karpathy split in the `split` column | `nlphuji/flickr30k` |
"""
from __future__ import annotations

import tarfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from core.sources import resolve

LAYOUTS = ("corpus", "flickr8k-parquet", "webdataset", "fashion-products", "flickr30k-parquet")
_SPLIT_ALIASES = {"flickr8k-parquet": {"val": "validation", "dev": "validation"}, "webdataset": {"validation": "test"}}
_IMAGE_KEYS = ("webp", "png", "jpg", "jpeg")


class LayoutError(ValueError):
    """A dataset that does not hold what its layout promises; the message names the dataset and the fix."""


@dataclass(frozen=True)
class DatasetSpec:
    name: str
    source: str  # hf-hub:owner/repo[@revision] or a folder
    layout: str = "corpus"

    def __post_init__(self) -> None:
        if self.layout not in LAYOUTS:
            raise LayoutError(f"Dataset {self.name!r}: unknown layout {self.layout!r}; known: {', '.join(LAYOUTS)}.")


def split_files(layout: str, config: str, split: str) -> list[str]:
    """The glob patterns of the files one split needs (for `allow_patterns`)."""
    split = _SPLIT_ALIASES.get(layout, {}).get(split, split)
    return {
        "corpus": [f"{config}/{split}-*.parquet", "README.md"],
        "flickr8k-parquet": [f"data/{split}-*.parquet"],
        "webdataset": ["dataset_type.txt", f"{split}/nshards.txt", f"{split}/*.tar"],
        "fashion-products": ["data/train-*.parquet"],
        "flickr30k-parquet": ["TEST/test/*.parquet"],
    }[layout]


def load_split(spec: DatasetSpec, config: str, split: str, *, sample: int | None = None, seed: int = 0):
    """One split as a `datasets.Dataset` in the corpus schema, images undecoded ({"bytes", "path"}).

    `sample` keeps a seeded random subset of that many rows (in their original order): how a collection is
    drawn from a dataset that has no test split of its own (the fashion products have only `train`).
    """
    folder = resolve(spec.source, repo_type="dataset", allow_patterns=split_files(spec.layout, config, split))
    split = _SPLIT_ALIASES.get(spec.layout, {}).get(split, split)
    data = _READERS[spec.layout](folder, config, split, spec)
    if sample is not None and sample < len(data):
        data = data.select(sample_indices(len(data), sample, seed).tolist())
    return data


def sample_indices(n_rows: int, sample: int, seed: int = 0) -> np.ndarray:
    """The rows (sorted) that `load_split(..., sample=sample, seed=seed)` keeps of a split of `n_rows` rows."""
    if sample >= n_rows:
        return np.arange(n_rows)
    return np.sort(np.random.default_rng(seed).choice(n_rows, size=sample, replace=False))


def load_splits(spec, config: str, split: str, sample: int | None = None):
    """One split, or several joined by "+" ("test+heldout": one collection of both, in that order)."""
    import datasets as ds

    parts = [load_split(spec, config, s, sample=sample) for s in split.split("+")]
    return parts[0] if len(parts) == 1 else ds.concatenate_datasets(parts)


def column_by_id(spec: DatasetSpec, split: str, name: str) -> dict[str, object]:
    """One column of a split's raw rows, by row id (the corpus `id`): a label the corpus schema does not keep,
    e.g. the fashion products' `subCategory`. Reads only the two columns, from the files already downloaded."""
    import pyarrow.parquet as pq

    if spec.layout != "fashion-products":
        raise LayoutError(f"Dataset {spec.name!r}: only the fashion-products layout keeps extra label columns.")
    folder = resolve(spec.source, repo_type="dataset", allow_patterns=split_files(spec.layout, "", split))
    out: dict[str, object] = {}
    for path in sorted(folder.glob("data/train-*.parquet")):
        table = pq.read_table(path, columns=["id", name])
        out.update(zip((str(i) for i in table.column("id").to_pylist()), table.column(name).to_pylist()))
    return out


def _parquet(folder: Path, pattern: str, spec: DatasetSpec, split: str):
    import datasets as ds

    files = sorted(folder.glob(pattern))
    if not files:
        raise LayoutError(f"Dataset {spec.name!r} ({spec.source}): no {pattern} for split {split!r}; check the split "
                          f"name and the layout ({spec.layout}).")
    return ds.Dataset.from_parquet([str(f) for f in files])


def _undecoded(data):
    from datasets import Image as ImageFeature

    return data.cast_column("image", ImageFeature(decode=False))


def _to_corpus(data, ids: list[str], captions: Callable[[dict], list[str]], category: Callable[[dict], str] | None = None,
               description: Callable[[dict], str] | None = None):
    """Map rows of another layout to the corpus columns (no objects, no background: real photos have none)."""
    import datasets as ds

    from demo_world.free_corpus import features

    def convert(row: dict, i: int) -> dict:
        return {"id": ids[i], "captions": captions(row), "objects": [], "background": "",
                "category": category(row) if category else "", "description": description(row) if description else ""}

    out = data.map(convert, with_indices=True, remove_columns=[c for c in data.column_names if c != "image"])
    return out.cast(features()).cast_column("image", ds.Image(decode=False))


def _corpus(folder: Path, config: str, split: str, spec: DatasetSpec):
    return _undecoded(_parquet(folder, f"{config}/{split}-*.parquet", spec, split))


def _flickr8k(folder: Path, config: str, split: str, spec: DatasetSpec):
    data = _undecoded(_parquet(folder, f"data/{split}-*.parquet", spec, split))
    return _to_corpus(data, [f"{split}-{i:05d}" for i in range(len(data))],
                      lambda r: [r[f"caption_{j}"] for j in range(5) if r.get(f"caption_{j}")])


def _flickr30k(folder: Path, config: str, split: str, spec: DatasetSpec):
    data = _undecoded(_parquet(folder, "TEST/test/*.parquet", spec, split))
    karpathy = {"validation": "val", "dev": "val"}.get(split, split)
    data = data.filter(lambda s: s == karpathy, input_columns="split")
    return _to_corpus(data, [str(x) for x in data["img_id"]], lambda r: list(r["caption"]))


def _fashion(folder: Path, config: str, split: str, spec: DatasetSpec):
    if split != "train":
        raise LayoutError(f"Dataset {spec.name!r}: the fashion products have one split, 'train' (draw a collection "
                          "from it with `sample`).")
    data = _undecoded(_parquet(folder, "data/train-*.parquet", spec, split))
    return _to_corpus(
        data, [str(x) for x in data["id"]], lambda r: [r["productDisplayName"] or r["articleType"] or ""],
        category=lambda r: r["masterCategory"] or "",
        description=lambda r: ", ".join(str(r[c]) for c in ("articleType", "subCategory", "baseColour", "gender") if r[c]),
    )


def _webdataset(folder: Path, config: str, split: str, spec: DatasetSpec):
    import datasets as ds

    from demo_world.free_corpus import features

    shards = sorted((folder / split).glob("*.tar"), key=lambda p: (len(p.stem), p.stem))
    if not shards:
        raise LayoutError(f"Dataset {spec.name!r} ({spec.source}): no {split}/*.tar shards; check the split name.")
    records = []
    for shard in shards:
        samples: dict[str, dict] = {}
        with tarfile.open(shard) as tar:
            for member in tar:
                if not member.isfile():
                    continue
                key, _, ext = member.name.rpartition("/")[2].partition(".")
                samples.setdefault(key, {})[ext.lower()] = tar.extractfile(member).read()
        for key, files in samples.items():
            image = next((files[e] for e in _IMAGE_KEYS if e in files), None)
            if image is None:
                continue  # a sample without a picture is not a search result
            captions = [c.strip() for c in files.get("txt", b"").decode("utf-8", "replace").splitlines() if c.strip()]
            records.append({"id": key, "image": {"bytes": image, "path": None}, "captions": captions, "objects": [],
                            "background": "", "category": "", "description": ""})
    return ds.Dataset.from_list(records, features=features()).cast_column("image", ds.Image(decode=False))


_READERS = {"corpus": _corpus, "flickr8k-parquet": _flickr8k, "webdataset": _webdataset,
            "fashion-products": _fashion, "flickr30k-parquet": _flickr30k}
