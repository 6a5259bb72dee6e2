"""The Ray Data embedding stage (pipelines.ray_shards) on a real local Ray cluster: the same vectors and the same
index as the single-process path, a killed actor retried with every row written once, a corrupt image skipped."""
import json
import os
import signal
import subprocess
import sys

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from core.catalog import load_catalog
from core.services import Services
from demo_world.free_corpus import write_free_corpus
from index import load_index
from pipelines.build_index import build
from pipelines.ray_shards import ImageEmbedder, embed_on_ray
from pipelines.shards import merge, split_ids


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    return write_free_corpus(tmp_path_factory.mktemp("dw") / "demo_world_free", scale=0.02, splits=["test"])


def _ray_index(corpus, tmp_path, **kwargs):
    manifest = embed_on_ray("demo-clip", str(corpus), "scenes", "test", str(tmp_path / "emb"), **kwargs)
    merge("demo-clip", str(corpus), "scenes", "test", tmp_path / "emb", tmp_path / "ray")
    return manifest, load_index(tmp_path / "ray", expect_model="demo-clip")


@pytest.mark.slow
def test_ray_path_gives_the_single_process_vectors_and_answers(tmp_path, corpus, ray_cluster):
    services = Services(load_catalog())
    single_info = build(services, "demo-clip", str(corpus), "scenes", "test", tmp_path / "single")
    manifest, b = _ray_index(corpus, tmp_path, concurrency=2, batch_size=6)
    a = load_index(tmp_path / "single", expect_model="demo-clip")
    assert (manifest["rows"], manifest["skipped"], manifest["model_revision"]) == (20, [], single_info.model_revision)
    assert len(list((tmp_path / "emb").glob("*.parquet"))) > 1  # written by several tasks
    assert list(a.meta["id"]) == list(b.meta["id"]) == split_ids(str(corpus), "scenes", "test")
    assert list(a.meta["caption"]) == list(b.meta["caption"]) and list(a.meta["image"]) == list(b.meta["image"])
    np.testing.assert_allclose(a.index.reconstruct_n(0, 20), b.index.reconstruct_n(0, 20), atol=1e-5)
    assert (b.info.factory, b.info.count, b.info.model_revision) == (a.info.factory, 20, a.info.model_revision)
    xq = services.encoder("demo-clip").encode_text([c[0] for c in a.meta["captions"][:10]])
    (da, ia), (db, ib) = a.index.search(xq, 5), b.index.search(xq, 5)
    assert (ia == ib).all()
    np.testing.assert_allclose(da, db, atol=1e-5)


@pytest.mark.slow
def test_an_actor_killed_mid_run_is_retried_and_every_row_written_once(tmp_path, corpus, ray_cluster):
    marker = tmp_path / "killed"

    class DiesOnce(ImageEmbedder):  # defined here, so Ray ships it by value with `marker`
        calls = 0

        def __call__(self, batch):
            self.calls += 1
            if self.calls == 2:
                try:
                    os.close(os.open(marker, os.O_CREAT | os.O_EXCL))  # one actor, once
                except FileExistsError:
                    pass
                else:
                    os.kill(os.getpid(), signal.SIGKILL)  # as the OOM killer would: no cleanup, mid-run
            return super().__call__(batch)

    manifest, loaded = _ray_index(corpus, tmp_path, concurrency=2, batch_size=3, embedder=DiesOnce)
    assert marker.exists()  # an actor really died after finishing a batch
    assert manifest["rows"] == 20 and loaded.index.ntotal == 20
    written = pq.read_table(tmp_path / "emb", columns=["id"])["id"].to_pylist()
    assert sorted(written) == sorted(split_ids(str(corpus), "scenes", "test"))  # each exactly once
    assert list(loaded.meta["id"]) == split_ids(str(corpus), "scenes", "test")


def _with_corrupt_images(corpus, out, bad: dict[int, bytes]):
    """A copy of the scenes/test split whose rows `bad` carry the given bytes instead of their PNG."""
    table = pq.read_table(next((corpus / "scenes").glob("test-*.parquet")))
    images = table.column("image").to_pylist()
    for row, data in bad.items():
        images[row] = {"bytes": data, "path": None}
    table = table.set_column(table.schema.get_field_index("image"), "image",
                             pa.array(images, type=table.schema.field("image").type))
    (out / "scenes").mkdir(parents=True)
    pq.write_table(table, out / "scenes" / "test-00000-of-00001.parquet")
    return out, [table.column("id")[r].as_py() for r in sorted(bad)]


def _png(corpus, row: int) -> bytes:
    table = pq.read_table(next((corpus / "scenes").glob("test-*.parquet")), columns=["image"])
    return table.column("image")[row].as_py()["bytes"]


@pytest.mark.slow
def test_a_corrupt_image_is_reported_by_id_and_skipped(tmp_path, corpus, ray_cluster, caplog):
    """Also reads the dataset and writes the embeddings through URLs (file://, as s3:// would be on a cluster)."""
    png = _png(corpus, 11)
    bad = {4: b"not an image at all", 11: png[: len(png) // 2]}  # not an image; a truncated PNG
    data, bad_ids = _with_corrupt_images(corpus, tmp_path / "bad", bad)
    url, emb = f"file://{data}", f"file://{tmp_path / 'emb'}"
    manifest = embed_on_ray("demo-clip", url, "scenes", "test", emb, batch_size=8)
    assert sorted(s["id"] for s in manifest["skipped"]) == sorted(bad_ids) and manifest["rows"] == 18
    assert all("image" in s["error"] for s in manifest["skipped"])
    assert json.loads((tmp_path / "emb" / "_manifest.json").read_text())["skipped"] == manifest["skipped"]
    assert any(bad_ids[0] in r.getMessage() for r in caplog.records)  # and in the log
    merge("demo-clip", url, "scenes", "test", emb, tmp_path / "ray")
    ray_meta = load_index(tmp_path / "ray", expect_model="demo-clip").meta
    build(Services(load_catalog()), "demo-clip", str(data), "scenes", "test", tmp_path / "single")  # skips them too
    single = load_index(tmp_path / "single", expect_model="demo-clip")
    expected = [i for i in split_ids(str(data), "scenes", "test") if i not in bad_ids]
    assert list(ray_meta["id"]) == list(single.meta["id"]) == expected


def test_merge_refuses_an_unfinished_or_doubled_run(tmp_path, corpus):
    from pipelines.ray_shards import SCHEMA

    ids = split_ids(str(corpus), "scenes", "test")
    rows = {"id": ids + ids[:1], "caption": [""] * 21, "captions": [[]] * 21, "image": [b""] * 21,
            "category": [""] * 21, "embedding": [[1.0, 0.0]] * 21, "model_revision": ["r"] * 21, "error": [""] * 21}
    (tmp_path / "emb").mkdir()
    pq.write_table(pa.table(rows, schema=SCHEMA), tmp_path / "emb" / "part-0.parquet")
    with pytest.raises(ValueError, match="did not finish"):
        merge("demo-clip", str(corpus), "scenes", "test", tmp_path / "emb", tmp_path / "idx")
    (tmp_path / "emb" / "_manifest.json").write_text(json.dumps({"model": "demo-clip", "skipped": []}))
    with pytest.raises(ValueError, match="more than once"):
        merge("demo-clip", str(corpus), "scenes", "test", tmp_path / "emb", tmp_path / "idx")
    assert not (tmp_path / "idx").exists()


def test_the_app_never_imports_ray():
    code = ("import sys, app, pipelines.build_index, pipelines.shards; from core.catalog import load_catalog; "
            "app.build_demo(load_catalog()); assert 'ray' not in sys.modules, 'ray was imported'")
    subprocess.run([sys.executable, "-c", code], check=True, timeout=300)
    reqs = {f: open(f).read() for f in ("requirements.txt", "requirements-pipelines.txt", "requirements-dev.txt")}
    assert "ray" not in reqs["requirements.txt"].lower() and "ray[data]==" in reqs["requirements-pipelines.txt"]
    assert "-r requirements-pipelines.txt" in reqs["requirements-dev.txt"]
