"""Build, save (atomically), load (checked against the sidecar) and search FAISS indexes.

Vectors are L2-normalised float32 and searched by inner product, so scores are cosine similarities.
An index folder holds `index.faiss`, `meta.parquet` (row i describes vector i) and `index.json`.
"""
from __future__ import annotations

import logging
import math
from dataclasses import dataclass
from pathlib import Path

import faiss
import numpy as np
import pandas as pd

from core.atomic import atomic_dir
from index.sidecar import IndexInfo

log = logging.getLogger(__name__)
INDEX_FILE, META_FILE, INFO_FILE = "index.faiss", "meta.parquet", "index.json"
FLAT_MAX = 100_000  # exact search up to here: ~50 ms per query single-threaded at 512-d
REBUILD_HINT = "rebuild it with `python -m pipelines.build_index`"


class IndexLoadError(RuntimeError):
    pass


class IndexMismatchError(ValueError):
    pass


def _check_vectors(x: np.ndarray, what: str) -> None:
    if not isinstance(x, np.ndarray) or x.dtype != np.float32 or x.ndim != 2:
        raise ValueError(f"{what} must be a 2-D float32 array, got {getattr(x, 'dtype', type(x))} {getattr(x, 'shape', '')}")
    norms = np.linalg.norm(x, axis=1)
    if len(x) and not np.allclose(norms, 1.0, atol=1e-3):
        raise ValueError(f"{what} must be L2-normalised (norms range {norms.min():.3f}..{norms.max():.3f})")


def choose_factory(n: int, dim: int, memory_budget_bytes: int | None = None) -> str:
    """Exact `Flat` up to FLAT_MAX vectors; beyond, IVF with nlist ≈ 4·√n (a power of two) and, when the flat
    vectors would not fit the budget (default: a quarter of their flat size), PQ codes of m sub-vectors."""
    if n <= FLAT_MAX:
        return "Flat"
    nlist = 2 ** round(math.log2(4 * math.sqrt(n)))
    flat_bytes = n * dim * 4
    budget = memory_budget_bytes if memory_budget_bytes is not None else flat_bytes // 4
    if flat_bytes <= budget:
        return f"IVF{nlist},Flat"
    divisors = [d for d in range(max(1, dim // 2), 0, -1) if dim % d == 0]  # PQ needs m | dim
    m = next((d for d in divisors if n * d <= budget), divisors[-1])  # one byte per sub-vector
    return f"IVF{nlist},PQ{m}"


def build_index(xb: np.ndarray, factory: str = "Flat", train_sample: int | None = None) -> faiss.Index:
    _check_vectors(xb, "xb")
    xb = np.ascontiguousarray(xb)
    index = faiss.index_factory(xb.shape[1], factory, faiss.METRIC_INNER_PRODUCT)
    if not index.is_trained:
        rng = np.random.default_rng(0)
        sample = xb if not train_sample or train_sample >= len(xb) else xb[rng.choice(len(xb), train_sample, replace=False)]
        index.train(sample)
    index.add(xb)
    return index


def _apply_params(index: faiss.Index, params: dict) -> None:
    if params:
        ps = faiss.ParameterSpace()
        for name, value in params.items():
            ps.set_index_parameter(index, name, value)


def measure_recall(index: faiss.Index, xb: np.ndarray, xq: np.ndarray, k: int = 10, params: dict | None = None) -> float:
    """Mean |approximate top-k ∩ exact top-k| / k over the queries."""
    exact = faiss.IndexFlatIP(xb.shape[1])
    exact.add(np.ascontiguousarray(xb))
    _, truth = exact.search(xq, k)
    _apply_params(index, params or {})
    _, got = index.search(xq, k)
    return float(np.mean([len(set(a) & set(b)) / k for a, b in zip(got, truth)]))


def set_search_threads(n: int) -> None:
    faiss.omp_set_num_threads(n)


@dataclass
class LoadedIndex:
    index: faiss.Index
    meta: pd.DataFrame
    info: IndexInfo
    folder: Path

    def search(self, xq: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        """(D, I): scores and row ids, best first; k is clipped to the index size."""
        if xq.ndim != 2 or xq.shape[1] != self.index.d:
            raise IndexMismatchError(f"query has dimension {xq.shape[-1]}, index {self.folder.name} has {self.index.d}")
        return self.index.search(np.ascontiguousarray(xq, dtype=np.float32), max(1, min(k, self.index.ntotal)))


def save_index(folder: Path, index: faiss.Index, meta: pd.DataFrame, info: IndexInfo) -> Path:
    if "id" not in meta.columns:
        raise ValueError("meta needs an 'id' column")
    if not (len(meta) == index.ntotal == info.count):
        raise ValueError(f"meta rows {len(meta)}, vectors {index.ntotal} and info.count {info.count} differ")
    with atomic_dir(Path(folder)) as tmp:
        faiss.write_index(index, str(tmp / INDEX_FILE))
        meta.reset_index(drop=True).to_parquet(tmp / META_FILE, index=False)
        (tmp / INFO_FILE).write_text(info.to_json())
    return Path(folder)


def load_index(
    folder: Path, expect_model: str | None = None, expect_dim: int | None = None, expect_revision: str | None = None
) -> LoadedIndex:
    folder = Path(folder)
    for name in (INDEX_FILE, META_FILE, INFO_FILE):
        if not (folder / name).is_file():
            raise IndexLoadError(f"{name} is missing in {folder}; {REBUILD_HINT}.")
    try:
        info = IndexInfo.from_json((folder / INFO_FILE).read_text())
    except ValueError as e:
        raise IndexLoadError(f"{folder / INFO_FILE} is unreadable ({e}); {REBUILD_HINT}.") from None
    if expect_model is not None and info.model != expect_model:
        raise IndexMismatchError(
            f"The index in {folder} was built with model {info.model!r}, not {expect_model!r}; "
            f"{REBUILD_HINT} --model {expect_model}."
        )
    if expect_revision and info.model_revision and info.model_revision != expect_revision:
        raise IndexMismatchError(
            f"The index in {folder} was built with another revision of {info.model!r} "
            f"({info.model_revision}, the loaded model is {expect_revision}); {REBUILD_HINT}."
        )
    if expect_dim is not None and info.dim != expect_dim:
        raise IndexMismatchError(f"The index in {folder} holds {info.dim}-d vectors, the model makes {expect_dim}-d; {REBUILD_HINT}.")
    try:
        index = faiss.read_index(str(folder / INDEX_FILE))
    except RuntimeError:
        raise IndexLoadError(f"{INDEX_FILE} in {folder} is corrupt or truncated; {REBUILD_HINT}.") from None
    try:
        meta = pd.read_parquet(folder / META_FILE)
    except Exception:
        raise IndexLoadError(f"{META_FILE} in {folder} is corrupt or truncated; {REBUILD_HINT}.") from None
    if index.d != info.dim or index.ntotal != info.count or len(meta) != info.count:
        raise IndexMismatchError(
            f"The files in {folder} disagree (index {index.ntotal}×{index.d}, meta {len(meta)} rows, "
            f"index.json {info.count}×{info.dim}); {REBUILD_HINT}."
        )
    _apply_params(index, info.search_params)
    return LoadedIndex(index, meta, info, folder)
