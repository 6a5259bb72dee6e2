"""Build, save (atomically), load (checked against the sidecar) and search FAISS indexes.

Vectors are L2-normalised float32 searched by inner product, so scores are cosine similarities.
An index folder holds `index.faiss`, `meta.parquet` (row i describes vector i; column `id`) and `index.json`.

    index = build_index(xb, choose_factory(len(xb), xb.shape[1]))
    params, recall = tune_search_params(index, xb, xb[:1000])
    save_index(folder, index, meta, IndexInfo(..., search_params=params, recall_at_10_vs_exact=recall))
    D, I = load_index(folder, expect_model="demo-clip").search(xq, k=10)
"""
from __future__ import annotations

import logging
import math
from dataclasses import dataclass
from pathlib import Path

import faiss
import numpy as np
import pandas as pd
import pyarrow as pa

from core.atomic import recover, replace_folder
from index.sidecar import IndexInfo

log = logging.getLogger(__name__)
INDEX_FILE, META_FILE, INFO_FILE = "index.faiss", "meta.parquet", "index.json"
FILES = (INDEX_FILE, META_FILE, INFO_FILE)
FLAT_MAX = 100_000  # exact search up to here: ~10 ms per query on one core at 512-d
NORM_TOLERANCE = 1e-3  # encoders normalise in float32; anything further off is a caller's bug
HNSW_M = 32
HNSW_LINK_BYTES = 2 * HNSW_M * 4 + 16  # per vector: level-0 neighbour ids (int32) plus bookkeeping
IVF_ID_BYTES = 8  # IVF lists store an int64 id beside each code
MIN_PQ_FRACTION = 16  # PQ sub-vectors of more than 16 dimensions lose too much to be worth it
# Plain read, not IO_FLAG_MMAP_IFC: mapping loads instantly, but any add()/reset() on a mapped index aborts the
# whole process (a C++ assertion, not an exception), and a 100k×512 Flat index reads in ~0.15 s anyway.
READ_FLAGS = 0


class IndexLoadError(RuntimeError):
    """An index folder is missing, incomplete or unreadable."""


class IndexMismatchError(ValueError):
    """An index does not fit the model, dimension or queries it is used with, or its files disagree."""


def _rebuild_hint(folder: Path, model: str | None) -> str:
    model = model or "<model>"
    return f"rebuild it with `python -m pipelines.build_index --model {model} --dataset <dataset> --out {folder}`"


def _reason(e: RuntimeError) -> str:
    """The useful tail of a FAISS C++ error ("Error in ... at file.cpp:66: Error: '...' failed: <reason>")."""
    line = str(e).strip().splitlines()[0] if str(e).strip() else repr(e)
    return line.rsplit("failed: ", 1)[-1] if "failed: " in line else line.rsplit(": ", 1)[-1]


def _check_array(x: np.ndarray, what: str) -> None:
    if not isinstance(x, np.ndarray):
        raise ValueError(f"{what} must be a numpy array, got {type(x).__name__}")
    if x.ndim != 2 or 0 in x.shape:
        raise ValueError(f"{what} must have shape (N, D) with N, D >= 1, got {x.shape}; use x[None] for one vector")
    if x.dtype != np.float32:
        raise ValueError(f"{what} must be float32 (as encoders return it), got {x.dtype}")
    if not np.isfinite(x).all():
        raise ValueError(f"{what} holds NaN or infinite values")


def check_vectors(xb: np.ndarray, what: str = "xb") -> None:
    """Refuse anything but finite, L2-normalised, C-contiguous float32 (N, D) vectors, with the reason."""
    _check_array(xb, what)
    if not xb.flags.c_contiguous:
        raise ValueError(f"{what} must be C-contiguous; pass np.ascontiguousarray({what})")
    norms = np.sqrt(np.einsum("ij,ij->i", xb, xb))  # (N,)
    off = np.flatnonzero(np.abs(norms - 1) > NORM_TOLERANCE)
    if len(off):
        raise ValueError(
            f"{what} must be L2-normalised (encoders return unit vectors): {len(off)} of {len(xb)} rows are not, "
            f"e.g. row {off[0]} has norm {norms[off[0]]:.4f}"
        )


def choose_factory(n: int, dim: int, memory_budget_bytes: int | None = None) -> str:
    """The FAISS factory string for `n` vectors of `dim` dimensions: the most accurate that fits the budget.

    - n <= FLAT_MAX (100k): "Flat", exact search.
    - beyond, the first of these whose size fits `memory_budget_bytes` (default: half the raw float32 size, i.e.
      2·dim bytes a vector), nlist = 4·√n rounded to a power of two, IVF sizes counting the code, the int64 id
      and the coarse centroids (nlist·dim floats):
      "HNSW32" (4·dim + 272 bytes a vector) > "IVF{nlist},Flat" (4·dim) > "IVF{nlist},SQ8" (dim)
      > "IVF{nlist},RaBitQ7" (7 bits a dimension + 20 bytes) > "IVF{nlist},RaBitQ6" > "IVF{nlist},SQ6" (0.75·dim)
      > "IVF{nlist},RaBitQ4" > "IVF{nlist},PQ{m}" (m) with the largest m dividing dim, m <= dim/2, that fits.
    The order is measured, not assumed (bench/scale.py's vectors, 1M demo-CLIP embeddings, 128-d, recall@10 at
    nprobe 64): SQ8 0.98; RaBitQ6 0.97; SQ6 0.94; RaBitQ5 0.93 (left out: SQ6 is smaller
    and better); RaBitQ4 0.88; PQ64 0.86; SQ4 0.76 (left out: PQ{dim/2} is the same size and better). RaBitQ7
    only wins where it is smaller than SQ8, above 160 dimensions.
    ValueError if nothing fits (PQ sub-vectors are kept to at most 16 dimensions).
    """
    if n < 0 or dim < 1:
        raise ValueError(f"choose_factory needs n >= 0 and dim >= 1, got n={n}, dim={dim}")
    if n <= FLAT_MAX:
        return "Flat"
    per_vector = (memory_budget_bytes if memory_budget_bytes is not None else 2 * n * dim) / n
    nlist = 2 ** round(math.log2(4 * math.sqrt(n)))
    coarse = nlist * dim * 4 / n  # the IVF centroids, spread over the vectors
    ivf = [f"IVF{nlist},{codes}" for codes in ("Flat", "SQ8", "RaBitQ7", "RaBitQ6", "SQ6", "RaBitQ4")]
    min_m = max(1, dim // MIN_PQ_FRACTION)
    ivf += [f"IVF{nlist},PQ{m}" for m in range(dim // 2, min_m - 1, -1) if dim % m == 0]
    candidates = [(f"HNSW{HNSW_M}", 4 * dim + HNSW_LINK_BYTES)]
    candidates += [(f, _ivf_code_bytes(dim, f.split(",", 1)[1]) + IVF_ID_BYTES + coarse) for f in ivf]
    for factory, cost in candidates:
        if cost <= per_vector:
            return factory
    raise ValueError(
        f"a budget of {per_vector:.0f} bytes a vector is too small for {n} {dim}-d vectors: the smallest index, "
        f"{candidates[-1][0]}, needs {candidates[-1][1]:.1f} (about {n * candidates[-1][1]:.0f} bytes in all)"
    )


def _ivf_code_bytes(dim: int, codes: str) -> int:
    """Bytes FAISS stores per vector in an IVF list for this encoding (asked of FAISS, not re-derived)."""
    return int(faiss.downcast_index(faiss.index_factory(dim, f"IVF1,{codes}", faiss.METRIC_INNER_PRODUCT)).code_size)


def _new_index(dim: int, factory: str) -> faiss.Index:
    try:
        index = faiss.index_factory(dim, factory, faiss.METRIC_INNER_PRODUCT)
    except RuntimeError as e:
        raise ValueError(f"FAISS cannot make a {factory!r} index of {dim}-d vectors: {_reason(e)}") from None
    ivf = faiss.try_extract_index_ivf(index)
    if ivf is not None and isinstance(faiss.downcast_index(ivf), faiss.IndexIVFPQ):
        # On by default for IVF,PQ: minutes of annealing for Hamming filtering we never use.
        faiss.downcast_index(ivf).do_polysemous_training = False
    return index


def _train(index: faiss.Index, xb: np.ndarray, factory: str, train_sample: int | None) -> None:
    sample = xb
    if train_sample is not None and train_sample < len(xb):
        rows = np.sort(np.random.default_rng(0).choice(len(xb), train_sample, replace=False))
        sample = xb[rows]
    try:
        index.train(sample)
    except RuntimeError as e:
        raise ValueError(
            f"training a {factory!r} index on {len(sample)} vectors failed: {_reason(e)}; "
            "give more vectors or a smaller index (see choose_factory)"
        ) from None


def build_index(xb: np.ndarray, factory: str = "Flat", train_sample: int | None = None) -> faiss.Index:
    """An inner-product index holding `xb` (finite, L2-normalised float32 (N, D), C-contiguous).

    Indexes that need training (IVF, PQ, SQ) are trained on `train_sample` random rows (all rows if None).
    """
    check_vectors(xb, "xb")
    if train_sample is not None and train_sample < 1:
        raise ValueError(f"train_sample must be positive or None, got {train_sample}")
    index = _new_index(xb.shape[1], factory)
    if not index.is_trained:
        _train(index, xb, factory, train_sample)
    index.add(xb)
    log.info("built %s index of %d %d-d vectors", factory, index.ntotal, index.d)
    return index


def set_search_params(index: faiss.Index, params: dict) -> None:
    """Apply FAISS ParameterSpace settings such as {"nprobe": 16} or {"efSearch": 64} to `index`."""
    space = faiss.ParameterSpace()
    for name, value in params.items():
        try:
            space.set_index_parameter(index, name, float(value))
        except (RuntimeError, TypeError, ValueError):
            raise ValueError(
                f"search parameter {name}={value!r} does not apply to a {type(index).__name__} index"
            ) from None


def set_search_threads(n: int) -> None:
    """Use `n` OpenMP threads in FAISS, process-wide. On two cores, 1 is fastest for single queries."""
    if n < 1:
        raise ValueError(f"thread count must be >= 1, got {n}")
    faiss.omp_set_num_threads(n)


def _exact_ids(xb: np.ndarray, xq: np.ndarray, k: int) -> np.ndarray:
    exact = faiss.IndexFlatIP(xb.shape[1])
    exact.add(xb)
    return exact.search(xq, k)[1]  # (nq, k)


def _per_query_overlap(got: np.ndarray, truth: np.ndarray) -> np.ndarray:
    """|got ∩ truth| / k for each query; -1 (no result) never matches."""
    k = truth.shape[1]
    return np.array([len(np.intersect1d(g[g >= 0], t)) / k for g, t in zip(got, truth)])


def _overlap(got: np.ndarray, truth: np.ndarray) -> float:
    """Mean over queries of |got ∩ truth| / k."""
    return float(np.mean(_per_query_overlap(got, truth)))


def _recall_inputs(index: faiss.Index, xb: np.ndarray, xq: np.ndarray, k: int) -> int:
    check_vectors(xb, "xb")
    _check_array(xq, "xq")
    if index.ntotal != len(xb) or index.d != xb.shape[1] or xq.shape[1] != xb.shape[1]:
        raise ValueError(f"index ({index.ntotal}×{index.d}), xb {xb.shape} and xq {xq.shape} do not match")
    if k < 1:
        raise ValueError(f"k must be >= 1, got {k}")
    return min(k, len(xb))


def measure_recall(
    index: faiss.Index, xb: np.ndarray, xq: np.ndarray, k: int = 10, params: dict | None = None
) -> float:
    """Mean over queries of |approximate top-k ∩ exact top-k| / k, exact being IndexFlatIP on `xb`.

    `xb` must be the vectors `index` holds, in order. `params`, if given, are set on `index` and stay set.
    """
    k = _recall_inputs(index, xb, xq, k)
    if params:
        set_search_params(index, params)
    return _overlap(index.search(np.ascontiguousarray(xq), k)[1], _exact_ids(xb, np.ascontiguousarray(xq), k))


def _search_knob(index: faiss.Index, k: int) -> tuple[str | None, list[int]]:
    """The one parameter trading speed for recall, with the values to try (cheapest first)."""
    ivf = faiss.try_extract_index_ivf(index)
    if ivf is not None:
        return "nprobe", [2**i for i in range(int(math.log2(ivf.nlist)) + 1)] + [ivf.nlist]
    if isinstance(faiss.downcast_index(index), faiss.IndexHNSW):
        return "efSearch", [max(k, ef) for ef in (16, 32, 64, 128, 256, 512, 1024)]
    return None, []


def tune_search_params(
    index: faiss.Index, xb: np.ndarray, xq: np.ndarray, k: int = 10, target: float = 0.95, z: float = 1.645
) -> tuple[dict, float]:
    """The cheapest nprobe / efSearch whose recall@k on `xq` reaches `target` with confidence, and that recall.

    "With confidence": the mean recall minus `z` standard errors (over the queries) must reach `target`
    (z = 1.645: a one-sided 95% bound; z = 0 accepts the first value whose mean reaches it). Without that margin
    the cheapest value lands just above the target on the tuning queries and just below it on others (the 1M
    benchmark: 0.9505 when tuned, 0.9485 on held-apart queries). The chosen parameters are left set on `index`;
    store them in `IndexInfo.search_params`. If no value reaches the target, the most accurate one is kept and a
    warning logged. Exact indexes return ({}, 1.0).
    """
    k = _recall_inputs(index, xb, xq, k)
    xq = np.ascontiguousarray(xq)
    truth = _exact_ids(xb, xq, k)
    name, values = _search_knob(index, k)
    if name is None:
        return {}, _overlap(index.search(xq, k)[1], truth)
    for value in values:
        params = {name: value}
        set_search_params(index, params)
        per_query = _per_query_overlap(index.search(xq, k)[1], truth)
        recall = float(per_query.mean())
        margin = z * per_query.std(ddof=1) / math.sqrt(len(per_query)) if len(per_query) > 1 else 0.0
        if recall - margin >= target:
            return params, recall
    log.warning("recall@%d of %s stays %.3f < %.3f even with %s", k, type(index).__name__, recall, target, params)
    return params, recall


@dataclass
class LoadedIndex:
    """An index with its metadata and sidecar; `info.search_params` are applied on creation."""

    index: faiss.Index
    meta: pd.DataFrame  # row i describes vector i
    info: IndexInfo
    folder: Path

    def __post_init__(self) -> None:
        set_search_params(self.index, self.info.search_params)

    def search(self, xq: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        """(D, I) for float32 queries (nq, dim): cosine scores and meta row numbers, best first, each (nq, k').

        k' = min(k, number of vectors). An approximate index may find fewer than k' hits: I is -1 there.
        """
        self._check_queries(xq)
        if isinstance(k, bool) or not isinstance(k, (int, np.integer)) or k < 1:
            raise ValueError(f"k must be a positive integer, got {k!r}")
        k = min(int(k), self.index.ntotal)
        if k == 0:
            return np.zeros((len(xq), 0), np.float32), np.zeros((len(xq), 0), np.int64)
        return self.index.search(np.ascontiguousarray(xq), k)

    def _check_queries(self, xq: np.ndarray) -> None:
        if isinstance(xq, np.ndarray) and xq.ndim == 2 and xq.shape[1] != self.index.d:
            raise IndexMismatchError(
                f"queries have {xq.shape[1]} dimensions but the index in {self.folder} holds {self.index.d}-d "
                f"vectors of model {self.info.model!r}; encode the queries with that model"
            )
        _check_array(xq, "xq")


def _check_save(folder: Path, index: faiss.Index, meta: pd.DataFrame, info: IndexInfo) -> None:
    if not isinstance(meta, pd.DataFrame) or "id" not in meta.columns:
        raise ValueError("meta must be a pandas DataFrame with an 'id' column (row i describes vector i)")
    if meta["id"].duplicated().any():
        raise ValueError(f"meta ids must be unique; repeated: {meta['id'][meta['id'].duplicated()].head(5).tolist()}")
    if not len(meta) == index.ntotal == info.count:
        raise ValueError(
            f"cannot save {folder}: meta has {len(meta)} rows, the index {index.ntotal} vectors, info.count is "
            f"{info.count}; all three must be equal"
        )
    if index.d != info.dim or index.metric_type != faiss.METRIC_INNER_PRODUCT:
        raise ValueError(f"cannot save {folder}: the index is {index.d}-d (metric {index.metric_type}), info says "
                         f"{info.dim}-d {info.metric}; build it with build_index")
    if folder.exists() and not (folder / INFO_FILE).is_file() and (not folder.is_dir() or any(folder.iterdir())):
        raise ValueError(f"{folder} exists and is not an index folder (no {INFO_FILE}); refusing to replace it")


def save_index(folder: Path, index: faiss.Index, meta: pd.DataFrame, info: IndexInfo) -> Path:
    """Write index.faiss, meta.parquet and index.json to `folder`, atomically replacing an index there.

    A crash at any point leaves the previous complete index or the new one (see core.atomic).
    `info.search_params` are applied to `index` first, so they are known to work when loaded.
    """
    folder = Path(folder)
    _check_save(folder, index, meta, info)
    set_search_params(index, info.search_params)
    with replace_folder(folder) as tmp:
        faiss.write_index(index, str(tmp / INDEX_FILE))
        meta.reset_index(drop=True).to_parquet(tmp / META_FILE, index=False)
        (tmp / INFO_FILE).write_text(info.to_json(), encoding="utf-8")
    log.info("saved %d vectors (%s, model %s) to %s", index.ntotal, info.factory, info.model, folder)
    return folder


def _read_info(folder: Path, expect_model: str | None) -> IndexInfo:
    hint = _rebuild_hint(folder, expect_model)
    if not folder.exists():
        recover(folder)  # a crash between the two renames of a non-atomic swap left the old copy aside
    if not folder.is_dir():
        raise IndexLoadError(f"there is no index folder at {folder}; {hint}")
    if missing := [name for name in FILES if not (folder / name).is_file()]:
        raise IndexLoadError(
            f"the index in {folder} is incomplete: {', '.join(missing)} missing (an index folder holds "
            f"{', '.join(FILES)}); {hint}"
        )
    try:
        return IndexInfo.from_json((folder / INFO_FILE).read_text(encoding="utf-8"))
    except (ValueError, UnicodeDecodeError, OSError) as e:
        raise IndexLoadError(f"{folder / INFO_FILE} is unreadable: {e}; {hint}") from None


def _check_expected(
    folder: Path, info: IndexInfo, model: str | None, dim: int | None, revision: str | None
) -> None:
    if model is not None and info.model != model:
        raise IndexMismatchError(
            f"the index in {folder} was built with model {info.model!r}, not {model!r}: its vectors would not "
            f"match {model!r} queries; point the catalog at an index of {model!r} or {_rebuild_hint(folder, model)}"
        )
    if revision and info.model_revision and info.model_revision != revision:
        raise IndexMismatchError(
            f"the index in {folder} was built with revision {info.model_revision!r} of {info.model!r}, the loaded "
            f"model is revision {revision!r}; {_rebuild_hint(folder, info.model)}"
        )
    if dim is not None and info.dim != dim:
        raise IndexMismatchError(
            f"the index in {folder} holds {info.dim}-d vectors but model {model or info.model!r} makes {dim}-d "
            f"ones; {_rebuild_hint(folder, model or info.model)}"
        )


def _read_files(folder: Path, info: IndexInfo) -> tuple[faiss.Index, pd.DataFrame]:
    hint = _rebuild_hint(folder, info.model)
    try:
        index = faiss.read_index(str(folder / INDEX_FILE), READ_FLAGS)
    except RuntimeError as e:
        raise IndexLoadError(f"{folder / INDEX_FILE} is corrupt or truncated ({_reason(e)}); {hint}") from None
    try:
        meta = pd.read_parquet(folder / META_FILE)
    except (OSError, ValueError, pa.ArrowException) as e:
        raise IndexLoadError(f"{folder / META_FILE} is corrupt or truncated ({e}); {hint}") from None
    if "id" not in meta.columns:
        raise IndexLoadError(f"{folder / META_FILE} has no 'id' column; {hint}")
    if not (index.d == info.dim and index.ntotal == len(meta) == info.count):
        raise IndexMismatchError(
            f"the files in {folder} disagree: {INDEX_FILE} holds {index.ntotal} {index.d}-d vectors, {META_FILE} "
            f"{len(meta)} rows, {INFO_FILE} says {info.count} {info.dim}-d; {hint}"
        )
    return index, meta


def load_index(
    folder: Path, expect_model: str | None = None, expect_dim: int | None = None, expect_revision: str | None = None
) -> LoadedIndex:
    """Load an index folder, checked against the model that will query it.

    IndexLoadError: the folder or one of its files is missing, truncated or unreadable.
    IndexMismatchError: another model, revision or dimension than expected, or its three files disagree.
    The sidecar is checked before the (possibly large) index is read.
    """
    folder = Path(folder)
    info = _read_info(folder, expect_model)
    _check_expected(folder, info, expect_model, expect_dim, expect_revision)
    index, meta = _read_files(folder, info)
    try:
        loaded = LoadedIndex(index, meta, info, folder)
    except ValueError as e:
        raise IndexLoadError(f"{folder / INFO_FILE}: {e}; {_rebuild_hint(folder, info.model)}") from None
    log.info("loaded %s: %d vectors of %s (%s)", folder, index.ntotal, info.model, info.factory)
    return loaded
