"""index/: search against brute-force numpy, save/load round trips, clear errors, crash safety, recall."""
import json
import os
import signal
import subprocess
import sys
import threading
from pathlib import Path

import faiss
import numpy as np
import pandas as pd
import pytest

import core.atomic as atomic
from index import (
    FORMAT_VERSION, IndexInfo, IndexLoadError, IndexMismatchError, LoadedIndex, build_index, choose_factory,
    load_index, measure_recall, save_index, set_search_threads, tune_search_params,
)

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(autouse=True, scope="module")
def one_thread():
    """Two OpenMP threads on a busy 2-core machine make FAISS training many times slower."""
    before = faiss.omp_get_max_threads()
    set_search_threads(1)
    yield
    faiss.omp_set_num_threads(before)


def _vectors(n, d=32, seed=0):
    x = np.random.default_rng(seed).normal(size=(n, d))
    return (x / np.linalg.norm(x, axis=1, keepdims=True)).astype(np.float32)


def _clustered(n, d=64, seed=0, clusters=64, latent=16):
    """Gaussian clusters in a `latent`-d subspace plus a little noise: roughly how real embeddings sit."""
    rng = np.random.default_rng(seed)
    centres, basis = rng.normal(size=(clusters, latent)), rng.normal(size=(latent, d))
    z = centres[rng.integers(clusters, size=n)] + 0.5 * rng.normal(size=(n, latent))
    x = z @ basis + 0.05 * rng.normal(size=(n, d))
    return (x / np.linalg.norm(x, axis=1, keepdims=True)).astype(np.float32)


def _info(n, d=32, model="m", factory="Flat", **kw):
    return IndexInfo(model=model, model_revision="r1", dim=d, metric="inner_product", count=n, factory=factory,
                     dataset="synthetic", dataset_revision=None, split="test", build_date="2026-01-01T00:00:00+00:00",
                     **kw)


def _meta(n):
    return pd.DataFrame({
        "id": [f"v{i}" for i in range(n)],
        "caption": [f"caption {i}" for i in range(n)],
        "captions": [[f"a {i}", f"b {i}"] for i in range(n)],
        "image": [bytes([i % 256]) * 3 for i in range(n)],
        "category": [i % 7 for i in range(n)],
    })


def _save(folder, xb, model="m"):
    return save_index(folder, build_index(xb), _meta(len(xb)), _info(len(xb), xb.shape[1], model))


def _reference(xb, xq, k):
    scores = xq @ xb.T  # (nq, nb)
    ref_I = np.argsort(-scores, axis=1, kind="stable")[:, :k]
    return np.take_along_axis(scores, ref_I, axis=1), ref_I


# --- search -------------------------------------------------------------------------------------------------

def test_flat_search_equals_brute_force_numpy(tmp_path):
    xb, xq = _vectors(500), _vectors(20, seed=1)
    ref_D, ref_I = _reference(xb, xq, 10)
    D, I = build_index(xb).search(xq, 10)
    assert np.array_equal(I, ref_I) and np.allclose(D, ref_D, atol=1e-5)
    D, I = load_index(_save(tmp_path / "idx", xb)).search(xq, 10)
    assert np.array_equal(I, ref_I) and np.allclose(D, ref_D, atol=1e-5)


def test_search_clips_k_and_validates_queries(tmp_path):
    loaded = load_index(_save(tmp_path / "idx", _vectors(50)))
    D, I = loaded.search(_vectors(2, seed=3), 500)
    assert I.shape == D.shape == (2, 50) and sorted(I[0]) == list(range(50))
    q = _vectors(1, seed=3)
    with pytest.raises(IndexMismatchError, match=r"16 dimensions .* 32-d vectors of model 'm'"):
        loaded.search(_vectors(1, d=16), 3)
    for bad, message in [(q.astype(np.float64), "float32"), (q[0], r"shape \(N, D\)"), (q * np.nan, "NaN"),
                         ([[0.0] * 32], "numpy array")]:
        with pytest.raises(ValueError, match=message):
            loaded.search(bad, 3)
    for k in (0, -1, 2.5, True):
        with pytest.raises(ValueError, match="k must be a positive integer"):
            loaded.search(q, k)


# --- save / load --------------------------------------------------------------------------------------------

def test_round_trip_preserves_meta_info_and_results(tmp_path):
    xb = _vectors(50)
    info = _info(50, extra={"note": "x"})
    folder = save_index(tmp_path / "idx", build_index(xb), _meta(50), info)
    loaded = load_index(folder, expect_model="m", expect_dim=32, expect_revision="r1")
    pd.testing.assert_frame_equal(loaded.meta, _meta(50))
    assert loaded.info == info and loaded.folder == folder
    assert sorted(p.name for p in folder.iterdir()) == ["index.faiss", "index.json", "meta.parquet"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["idx"]
    assert json.loads((folder / "index.json").read_text())["format_version"] == FORMAT_VERSION
    D, I = loaded.search(xb[:1], 1)
    assert I[0, 0] == 0 and D[0, 0] == pytest.approx(1.0, abs=1e-5)


def test_sidecar_json_round_trip_and_errors():
    info = _info(3, d=np.int64(32), search_params={"nprobe": 4})
    assert type(info.dim) is int and IndexInfo.from_json(info.to_json()) == info
    data = json.loads(info.to_json())
    cases = [
        ({**data, "colour": 1}, r"unknown fields \['colour'\]; known fields are"),
        ({k: v for k, v in data.items() if k != "model"}, r"lacks required fields \['model'\]"),
        ({k: v for k, v in data.items() if k != "format_version"}, "no format_version"),
        ({**data, "format_version": FORMAT_VERSION + 1}, "newer version of this code"),
        ({**data, "metric": "l2"}, "metric must be 'inner_product'"),
        ({**data, "dim": "32"}, "must be ints"),
    ]
    for payload, message in cases:
        with pytest.raises(ValueError, match=message):
            IndexInfo.from_json(json.dumps(payload))
    for text, message in [("{", "not valid JSON"), ("[]", "JSON object")]:
        with pytest.raises(ValueError, match=message):
            IndexInfo.from_json(text)


@pytest.mark.parametrize("kwargs, message", [
    ({"expect_model": "other"}, r"built with model 'm', not 'other'.*--model other"),
    ({"expect_dim": 64}, r"holds 32-d vectors but model 'm' makes 64-d"),
    ({"expect_revision": "r2"}, r"revision 'r1' of 'm', the loaded model is revision 'r2'"),
])
def test_mismatched_model_is_a_clear_error(tmp_path, kwargs, message):
    folder = _save(tmp_path / "idx", _vectors(10))
    with pytest.raises(IndexMismatchError, match=message) as e:
        load_index(folder, **kwargs)
    assert str(folder) in str(e.value) and "pipelines.build_index" in str(e.value)


def test_sidecar_is_checked_before_the_index_is_read(tmp_path):
    folder = _save(tmp_path / "idx", _vectors(10))
    (folder / "index.faiss").write_bytes(b"garbage")
    with pytest.raises(IndexMismatchError, match="not 'other'"):
        load_index(folder, expect_model="other")


def test_files_that_disagree_are_a_mismatch(tmp_path):
    folder = _save(tmp_path / "idx", _vectors(10))
    data = json.loads((folder / "index.json").read_text())
    (folder / "index.json").write_text(json.dumps({**data, "count": 11}))
    with pytest.raises(IndexMismatchError, match=r"10 32-d vectors, meta.parquet 10 rows, index.json says 11"):
        load_index(folder)


@pytest.mark.parametrize("name", ["index.faiss", "meta.parquet", "index.json"])
def test_missing_file_is_named(tmp_path, name):
    folder = _save(tmp_path / "idx", _vectors(10))
    (folder / name).unlink()
    with pytest.raises(IndexLoadError, match=rf"incomplete: {name} missing") as e:
        load_index(folder, expect_model="m")
    assert str(folder) in str(e.value) and "--model m" in str(e.value)


@pytest.mark.parametrize("name", ["index.faiss", "meta.parquet", "index.json"])
def test_truncated_file_is_named(tmp_path, name):
    folder = _save(tmp_path / "idx", _vectors(100))
    data = (folder / name).read_bytes()
    (folder / name).write_bytes(data[: len(data) // 2])
    with pytest.raises(IndexLoadError, match=rf"{name}.* (corrupt or truncated|unreadable)"):
        load_index(folder)


def test_missing_folder(tmp_path):
    with pytest.raises(IndexLoadError, match=r"no index folder at .*nowhere.*--model demo"):
        load_index(tmp_path / "nowhere", expect_model="demo")


# --- input validation ---------------------------------------------------------------------------------------

@pytest.mark.parametrize("xb, message", [
    (_vectors(5).astype(np.float64), "float32"),
    (_vectors(5) * 3, r"L2-normalised .* 5 of 5 rows are not, e.g. row 0 has norm 3.0000"),
    (np.asfortranarray(_vectors(5)), "C-contiguous"),
    (_vectors(5)[0], r"shape \(N, D\)"),
    (np.zeros((0, 32), np.float32), r"shape \(N, D\)"),
    (np.full((2, 4), np.nan, np.float32), "NaN"),
])
def test_bad_vectors_are_refused(xb, message):
    with pytest.raises(ValueError, match=message):
        build_index(xb)


def test_bad_factory_and_too_little_training_data():
    with pytest.raises(ValueError, match="cannot make a 'Bogus12' index of 32-d vectors: could not parse"):
        build_index(_vectors(5), "Bogus12")
    with pytest.raises(ValueError, match=r"training a 'IVF256,Flat' index on 100 vectors failed: .*\(256\)"):
        build_index(_vectors(100), "IVF256,Flat")


def test_save_refuses_inconsistent_input(tmp_path):
    xb = _vectors(10)
    index = build_index(xb)
    cases = [
        (_meta(9), _info(10), "meta has 9 rows, the index 10 vectors, info.count is 10"),
        (_meta(10).drop(columns="id"), _info(10), "'id' column"),
        (_meta(10).assign(id="same"), _info(10), r"unique; repeated: \['same'"),
        (_meta(10), _info(10, d=16), "16-d inner_product"),
        (_meta(10), _info(10, search_params={"nprobe": 4}), "nprobe=4 does not apply to a IndexFlat"),
    ]
    for meta, info, message in cases:
        with pytest.raises(ValueError, match=message):
            save_index(tmp_path / "idx", index, meta, info)
    (tmp_path / "notes").mkdir()
    (tmp_path / "notes" / "todo.txt").write_text("keep me")
    with pytest.raises(ValueError, match="not an index folder"):
        save_index(tmp_path / "notes", index, _meta(10), _info(10))
    assert (tmp_path / "notes" / "todo.txt").read_text() == "keep me"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["notes"]


# --- crash safety -------------------------------------------------------------------------------------------

def _raise(*args, **kwargs):
    raise OSError("disk full")


@pytest.mark.parametrize("target", [
    "faiss.write_index", "pandas.DataFrame.to_parquet", "pathlib.Path.write_text", "core.atomic._fsync_tree",
    "core.atomic._swap_into_place",
])
def test_failed_save_keeps_the_previous_index(tmp_path, monkeypatch, target):
    folder = _save(tmp_path / "idx", _vectors(20))
    before = {p.name: p.read_bytes() for p in folder.iterdir()}
    monkeypatch.setattr(target, _raise)
    with pytest.raises(OSError, match="disk full"):
        _save(folder, _vectors(30, seed=5))
    monkeypatch.undo()
    assert {p.name: p.read_bytes() for p in folder.iterdir()} == before
    assert load_index(folder).index.ntotal == 20
    assert sorted(p.name for p in tmp_path.iterdir()) == ["idx"]  # no temporary folder left behind


def test_exchange_swaps_two_folders(tmp_path):
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    (tmp_path / "a" / "A").touch()
    if not atomic._exchange(tmp_path / "a", tmp_path / "b"):
        pytest.skip("no renameat2(RENAME_EXCHANGE) here; the rename-aside path is tested below")
    assert os.listdir(tmp_path / "b") == ["A"] and os.listdir(tmp_path / "a") == []


def test_rename_aside_path_and_recovery_after_a_crash_between_renames(tmp_path, monkeypatch):
    monkeypatch.setattr(atomic, "_exchange", lambda a, b: False)  # as on a file system without RENAME_EXCHANGE
    folder = _save(tmp_path / "idx", _vectors(20))
    _save(folder, _vectors(25, seed=2))
    assert load_index(folder).index.ntotal == 25 and sorted(p.name for p in tmp_path.iterdir()) == ["idx"]

    real_rename, calls = os.rename, []

    def crash_after_first_rename(src, dst):  # the old folder goes aside, then the process "dies"
        calls.append(dst)
        if len(calls) > 1:
            raise OSError("killed")
        real_rename(src, dst)

    monkeypatch.setattr(atomic.os, "rename", crash_after_first_rename)
    with pytest.raises(OSError, match="killed"):
        _save(folder, _vectors(30, seed=3))
    monkeypatch.setattr(atomic.os, "rename", real_rename)
    assert not folder.exists() and [p.name.startswith(".idx.old-") for p in tmp_path.iterdir()] == [True]
    assert load_index(folder).index.ntotal == 25  # the aside copy is put back
    assert sorted(p.name for p in tmp_path.iterdir()) == ["idx"]


def test_failed_second_rename_rolls_back_at_once(tmp_path, monkeypatch):
    monkeypatch.setattr(atomic, "_exchange", lambda a, b: False)
    folder = _save(tmp_path / "idx", _vectors(20))
    real_rename = os.rename

    def refuse_new_folder(src, dst):
        if Path(dst) == folder and ".tmp-" in Path(src).name:
            raise OSError("no space")
        real_rename(src, dst)

    monkeypatch.setattr(atomic.os, "rename", refuse_new_folder)
    with pytest.raises(OSError, match="no space"):
        _save(folder, _vectors(30, seed=3))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["idx"]  # back in place without any recovery
    assert load_index(folder).index.ntotal == 20


def test_cleanup_spares_folders_of_live_writers(tmp_path):
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    dead_pid = int(dead.stdout)
    for pid in (dead_pid, os.getpid()):
        (tmp_path / f".idx.tmp-{pid}-abc").mkdir()
    _save(tmp_path / "idx", _vectors(5))
    assert sorted(p.name for p in tmp_path.iterdir()) == [f".idx.tmp-{os.getpid()}-abc", "idx"]


CHILD = """
import os, sys, time
from pathlib import Path
import numpy as np, pandas as pd
import core.atomic as atomic
from index import IndexInfo, build_index, save_index

folder, stage = Path(sys.argv[1]), sys.argv[2]

def hang(*args, **kwargs):
    print("ready", flush=True)
    time.sleep(60)

real_to_parquet, real_rename = pd.DataFrame.to_parquet, os.rename
if stage == "writing":  # index.faiss and meta.parquet written, index.json not yet
    pd.DataFrame.to_parquet = lambda self, *a, **k: (real_to_parquet(self, *a, **k), hang())
elif stage == "swapped":  # new folder in place, the old one not yet deleted
    atomic.shutil.rmtree = hang
elif stage == "aside":  # no RENAME_EXCHANGE: old folder renamed aside, new one not yet in place
    atomic._exchange = lambda a, b: False
    os.rename = lambda src, dst: hang() if Path(dst) == folder else real_rename(src, dst)
x = np.random.default_rng(7).normal(size=(40, 32))
x = (x / np.linalg.norm(x, axis=1, keepdims=True)).astype(np.float32)
meta = pd.DataFrame({"id": [f"new{i}" for i in range(40)]})
info = IndexInfo(model="m", model_revision=None, dim=32, metric="inner_product", count=40, factory="Flat",
                 dataset="synthetic", dataset_revision=None, split="test", build_date="2026-01-01T00:00:00+00:00")
save_index(folder, build_index(x), meta, info)
"""


def _left_behind(tmp_path):
    """What a killed writer left on disk: {'idx': files, '.idx.tmp': files, ...}, pid/random suffixes dropped."""
    return {p.name.split("-")[0]: sorted(f.name for f in p.iterdir()) for p in tmp_path.iterdir()}


ALL = ["index.faiss", "index.json", "meta.parquet"]


@pytest.mark.parametrize("stage, on_disk, expect_count", [
    ("writing", {"idx": ALL, ".idx.tmp": ["index.faiss", "meta.parquet"]}, 20),
    ("swapped", {"idx": ALL, ".idx.tmp": ALL}, 40),  # the tmp name now holds the old index
    ("aside", {".idx.old": ALL, ".idx.tmp": ALL}, 20),  # no index folder at all until load_index recovers
])
def test_killed_writer_leaves_a_complete_index(tmp_path, stage, on_disk, expect_count):
    folder = _save(tmp_path / "idx", _vectors(20))
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    proc = subprocess.Popen([sys.executable, "-c", CHILD, str(folder), stage], cwd=REPO, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    watchdog = threading.Timer(30, proc.kill)
    watchdog.start()
    try:
        line = proc.stdout.readline()
        assert line.strip() == "ready", proc.stderr.read()
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    finally:
        watchdog.cancel()
        proc.kill()
    assert _left_behind(tmp_path) == on_disk
    loaded = load_index(folder, expect_model="m")
    assert loaded.index.ntotal == len(loaded.meta) == expect_count
    assert [p.name for p in tmp_path.iterdir() if not p.name.startswith(".")] == ["idx"]
    _save(folder, _vectors(15))  # the next write cleans up what the killed one left
    assert sorted(p.name for p in tmp_path.iterdir()) == ["idx"] and load_index(folder).index.ntotal == 15


# --- approximate indexes ------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def clustered():
    x = _clustered(20_200)
    return x[:20_000], x[20_000:]  # base, held-out queries from the same distribution


def test_ivf_pq_recall_is_measured_and_tuned(clustered):
    xb, xq = clustered
    index = build_index(xb, "IVF128,PQ32", train_sample=5_000)
    low = measure_recall(index, xb, xq, params={"nprobe": 1})
    params, recall = tune_search_params(index, xb, xq, target=0.85)
    assert params["nprobe"] > 1 and 0 < low < recall and recall >= 0.85
    assert measure_recall(index, xb, xq) == recall  # the tuned nprobe stays set
    assert measure_recall(build_index(xb), xb, xq) == 1.0


def test_tuning_keeps_a_margin_for_the_sampling_error(clustered):
    xb, xq = clustered
    index = build_index(xb, "IVF128,PQ32", train_sample=5_000)
    # nprobe 2 reaches 0.8675 on these queries: above 0.86 on average, not by two standard errors
    bare, bare_recall = tune_search_params(index, xb, xq, target=0.86, z=0)
    safe, safe_recall = tune_search_params(index, xb, xq, target=0.86)
    assert bare == {"nprobe": 2} and 0.86 <= bare_recall < 0.87
    assert safe["nprobe"] > bare["nprobe"] and safe_recall > bare_recall
    per_query = np.array([measure_recall(index, xb, q[None]) for q in xq])  # the bound, recomputed by hand
    assert per_query.mean() == pytest.approx(safe_recall)
    assert per_query.mean() - 1.645 * per_query.std(ddof=1) / np.sqrt(len(xq)) >= 0.86


@pytest.mark.parametrize("factory, knob", [("IVF128,SQ8", "nprobe"), ("IVF128,RaBitQ6", "nprobe"),
                                           ("HNSW32", "efSearch")])
def test_sq8_rabitq_and_hnsw_reach_high_recall_and_keep_it_through_save(tmp_path, clustered, factory, knob):
    xb, xq = clustered
    index = build_index(xb, factory)
    params, recall = tune_search_params(index, xb, xq, target=0.95)
    assert list(params) == [knob] and recall >= 0.95
    info = _info(len(xb), 64, factory=factory, search_params=params, recall_at_10_vs_exact=recall)
    save_index(tmp_path / "idx", index, _meta(len(xb)), info)
    faiss.ParameterSpace().set_index_parameter(index, knob, 1)  # the sidecar, not the object, decides
    loaded = load_index(tmp_path / "idx")
    assert loaded.info.search_params == params
    assert measure_recall(loaded.index, xb, xq) == pytest.approx(recall)


def test_loaded_index_applies_search_params_and_refuses_bad_ones(tmp_path, clustered):
    xb, _ = clustered
    index = build_index(xb[:2_000], "IVF16,Flat")
    save_index(tmp_path / "idx", index, _meta(2_000), _info(2_000, 64, search_params={"nprobe": 16}))
    assert faiss.extract_index_ivf(load_index(tmp_path / "idx").index).nprobe == 16
    with pytest.raises(ValueError, match="efSearch=64 does not apply"):
        LoadedIndex(index, _meta(2_000), _info(2_000, 64, search_params={"efSearch": 64}), tmp_path)


# --- choose_factory -----------------------------------------------------------------------------------------

@pytest.mark.parametrize("n, dim, budget, expected", [
    (0, 512, None, "Flat"),
    (100_000, 512, None, "Flat"),                        # exact up to FLAT_MAX, whatever the budget
    (100_000, 512, 1, "Flat"),
    (100_001, 512, None, "IVF1024,SQ8"),                 # default budget: half the raw size -> SQ8
    (1_000_000, 512, None, "IVF4096,SQ8"),
    (1_000_000, 128, 10**10, "HNSW32"),                  # ample memory: graph
    (1_000_000, 128, 1_000_000 * 523, "IVF4096,Flat"),   # codes 512 + id 8 + centroids 2.1 bytes a vector
    (1_000_000, 128, 1_000_000 * 522, "IVF4096,SQ8"),
    (1_000_000, 128, 1_000_000 * 128, "IVF4096,RaBitQ6"),   # a quarter of the raw size: 116 + 8 + 2.1 bytes
    (1_000_000, 128, 1_000_000 * 125, "IVF4096,SQ6"),
    (1_000_000, 512, 1_000_000 * 512, "IVF4096,RaBitQ7"),   # 512-d, a quarter: 468 + 8 + 8.4 < 512 < SQ8's 528
    (200_000, 128, 200_000 * 98, "IVF2048,RaBitQ4"),        # 84 + 8 + 5.2 bytes
    (200_000, 128, 200_000 * 97, "IVF2048,PQ64"),           # PQ: largest m | dim, m <= dim/2, that fits
    (200_000, 128, 200_000 * 77, "IVF2048,PQ32"),
    (1_000_000, 768, 1_000_000 * 100, "IVF4096,PQ64"),
    (1_000_000, 512, 1_000_000 * 49, "IVF4096,PQ32"),       # smallest allowed: sub-vectors of 16 dims
])
def test_choose_factory(n, dim, budget, expected):
    assert choose_factory(n, dim, budget) == expected
    faiss.index_factory(dim, expected, faiss.METRIC_INNER_PRODUCT)  # a string FAISS understands


def test_choose_factory_refuses_impossible_budgets():
    with pytest.raises(ValueError, match=r"48 bytes a vector is too small .* IVF4096,PQ32, needs 48.4"):
        choose_factory(1_000_000, 512, 48_000_000)
    with pytest.raises(ValueError, match="n >= 0 and dim >= 1"):
        choose_factory(10, 0)


def test_set_search_threads():
    with pytest.raises(ValueError, match=">= 1"):
        set_search_threads(0)
    set_search_threads(1)
    assert faiss.omp_get_max_threads() == 1
