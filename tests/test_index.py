import json
import os
import signal
import subprocess
import sys
import time

import faiss
import numpy as np
import pandas as pd
import pytest

from index import (
    IndexInfo, IndexLoadError, IndexMismatchError, build_index, choose_factory, load_index, measure_recall, save_index,
)


def _vectors(n, d=32, seed=0, clusters=None):
    rng = np.random.default_rng(seed)
    if clusters:
        centres = rng.normal(size=(clusters, d))
        x = centres[rng.integers(clusters, size=n)] + 0.3 * rng.normal(size=(n, d))
    else:
        x = rng.normal(size=(n, d))
    return (x / np.linalg.norm(x, axis=1, keepdims=True)).astype(np.float32)


def _info(n, d=32, model="m", factory="Flat"):
    return IndexInfo(model=model, model_revision="r1", dim=d, metric="inner_product", count=n, factory=factory,
                     dataset="synthetic", dataset_revision=None, split="test", build_date="2026-01-01T00:00:00+00:00")


def _save(folder, xb, model="m"):
    meta = pd.DataFrame({"id": [f"v{i}" for i in range(len(xb))], "caption": ["c"] * len(xb)})
    return save_index(folder, build_index(xb), meta, _info(len(xb), xb.shape[1], model))


def test_flat_search_equals_brute_force_numpy():
    xb, xq = _vectors(500), _vectors(20, seed=1)
    D, I = build_index(xb).search(xq, 10)
    scores = xq @ xb.T
    ref_I = np.argsort(-scores, axis=1)[:, :10]
    assert np.array_equal(I, ref_I)
    assert np.allclose(D, np.take_along_axis(scores, ref_I, axis=1), atol=1e-5)


def test_round_trip_and_k_clipping(tmp_path):
    xb = _vectors(50)
    _save(tmp_path / "idx", xb)
    loaded = load_index(tmp_path / "idx", expect_model="m", expect_dim=32)
    assert list(loaded.meta["id"]) == [f"v{i}" for i in range(50)]
    D, I = loaded.search(xb[:1], 500)
    assert I.shape == (1, 50) and I[0, 0] == 0 and D[0, 0] == pytest.approx(1.0, abs=1e-5)
    assert json.loads((tmp_path / "idx" / "index.json").read_text())["format_version"] == 1


def test_mismatches_are_clear_errors(tmp_path):
    _save(tmp_path / "idx", _vectors(10))
    with pytest.raises(IndexMismatchError, match="built with model 'm', not 'other'"):
        load_index(tmp_path / "idx", expect_model="other")
    with pytest.raises(IndexMismatchError, match="32-d vectors, the model makes 64-d"):
        load_index(tmp_path / "idx", expect_dim=64)
    with pytest.raises(IndexMismatchError, match="another revision"):
        load_index(tmp_path / "idx", expect_revision="r2")
    with pytest.raises(IndexMismatchError, match="dimension"):
        load_index(tmp_path / "idx").search(_vectors(1, d=16), 3)


def test_missing_and_truncated_files(tmp_path):
    folder = _save(tmp_path / "idx", _vectors(100))
    data = (folder / "index.faiss").read_bytes()
    (folder / "index.faiss").write_bytes(data[: len(data) // 2])
    with pytest.raises(IndexLoadError, match="index.faiss .* corrupt or truncated"):
        load_index(folder)
    (folder / "meta.parquet").unlink()
    with pytest.raises(IndexLoadError, match="meta.parquet is missing"):
        load_index(folder)


def test_bad_vectors_are_refused():
    with pytest.raises(ValueError, match="float32"):
        build_index(_vectors(5).astype(np.float64))
    with pytest.raises(ValueError, match="L2-normalised"):
        build_index(_vectors(5) * 3)


def test_crash_during_save_keeps_the_previous_index(tmp_path, monkeypatch):
    folder = _save(tmp_path / "idx", _vectors(20))
    before = (folder / "index.faiss").read_bytes()

    def boom(*a, **k):
        raise OSError("disk full")

    monkeypatch.setattr(pd.DataFrame, "to_parquet", boom)
    with pytest.raises(OSError):
        _save(tmp_path / "idx", _vectors(30, seed=5))
    assert (folder / "index.faiss").read_bytes() == before
    assert load_index(folder).index.ntotal == 20
    assert sorted(p.name for p in tmp_path.iterdir()) == ["idx"]  # no temporary folder left behind


def test_killed_build_leaves_the_previous_index_intact(tmp_path):
    folder = _save(tmp_path / "idx", _vectors(20))
    script = f"""
import sys, time, numpy as np, pandas as pd
sys.path.insert(0, {str(os.getcwd())!r})
import index.store as store
from tests.test_index import _vectors, _save
real = store.faiss.write_index
def slow(*a):
    real(*a)
    print("half-way", flush=True)
    time.sleep(60)
store.faiss.write_index = slow
_save(__import__("pathlib").Path({str(folder)!r}), _vectors(40, seed=3))
"""
    proc = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True)
    assert proc.stdout.readline().strip() == "half-way"
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    loaded = load_index(folder)
    assert loaded.index.ntotal == 20 and len(loaded.meta) == 20


def test_ivf_recall_is_measured_against_exact_search():
    xb = _vectors(5_000, d=32, clusters=50)
    xq = _vectors(100, d=32, seed=9)
    index = build_index(xb, "IVF64,Flat")
    low = measure_recall(index, xb, xq, k=10, params={"nprobe": 1})
    high = measure_recall(index, xb, xq, k=10, params={"nprobe": 32})
    assert 0 < low < high and high >= 0.95
    assert measure_recall(build_index(xb), xb, xq, k=10) == 1.0


@pytest.mark.parametrize(
    "n, dim, budget, expected",
    [
        (1_000, 128, None, "Flat"),
        (100_000, 512, None, "Flat"),
        (1_000_000, 128, None, "IVF4096,PQ64"),
        (1_000_000, 512, None, "IVF4096,PQ256"),
        (1_000_000, 128, 10**10, "IVF4096,Flat"),
        (200_000, 128, 200_000 * 8, "IVF2048,PQ8"),
    ],
)
def test_choose_factory(n, dim, budget, expected):
    assert choose_factory(n, dim, budget) == expected
    if n <= 200_000:
        faiss.index_factory(dim, expected)  # a string FAISS understands
