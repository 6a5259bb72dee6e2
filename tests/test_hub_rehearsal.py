"""The Space with Hub models: real dataset layouts, pinned safetensors revisions, only the files a loader reads,
Hub faults turned into messages, indexes the app builds itself, and the reduced rehearsal end to end."""
import io
import threading

import numpy as np
import pytest

from core.catalog import load_catalog
from core.layouts import DatasetSpec, LayoutError, load_split
from core.services import AssetError, IndexNotReady, Services
from core.sources import SourceError, resolve
from models.registry import family_files
from PIL import Image

CORPUS_COLUMNS = ["id", "image", "captions", "objects", "background", "category", "description"]


def _downloaded(hub) -> list[str]:
    return [r.split("/resolve/", 1)[1] for r in hub.requests if r.startswith("GET ") and "/resolve/" in r]


@pytest.mark.parametrize("name, source, layout, split, rows, captions", [
    ("flickr8k", "hf-hub:jxie/flickr8k", "flickr8k-parquet", "test", 6, 5),
    ("flickr8k", "hf-hub:jxie/flickr8k", "flickr8k-parquet", "val", 3, 5),  # the repo calls it "validation"
    ("flickr8k-wds", "hf-hub:clip-benchmark/wds_flickr8k", "webdataset", "test", 6, 5),
    ("flickr30k", "hf-hub:nlphuji/flickr30k@refs/convert/parquet", "flickr30k-parquet", "test", 3, 5),
    ("fashion", "hf-hub:ashraq/fashion-product-images-small", "fashion-products", "train", 12, 1),
])
def test_real_layouts_read_into_the_corpus_schema(lookalike_hub, name, source, layout, split, rows, captions):
    data = load_split(DatasetSpec(name, source, layout), "", split)
    assert data.column_names == CORPUS_COLUMNS and len(data) == rows
    assert len(set(data["id"])) == rows
    assert all(len(c) == captions and all(c) for c in data["captions"])
    assert Image.open(io.BytesIO(data[0]["image"]["bytes"])).size[0] > 0
    if layout == "fashion-products":
        assert set(data["category"]) <= {"Apparel", "Accessories", "Footwear", "Personal Care", "Free Items",
                                         "Sporting Goods", "Home"} and all(data["category"])
    other_split = {"test": "train", "val": "train", "train": "test"}[split]
    assert not [f for f in _downloaded(lookalike_hub) if f"/data/{other_split}-" in f or f.startswith(f"{other_split}/")]
    if layout == "flickr30k-parquet":  # never the loading script's 4.4 GB zip
        assert not [f for f in _downloaded(lookalike_hub) if f.endswith(".zip") or f.endswith(".py")]


def test_a_sample_is_seeded_and_a_missing_split_is_named(lookalike_hub):
    spec = DatasetSpec("fashion", "hf-hub:ashraq/fashion-product-images-small", "fashion-products")
    a, b = load_split(spec, "", "train", sample=5), load_split(spec, "", "train", sample=5)
    assert a["id"] == b["id"] and len(a) == 5
    with pytest.raises(LayoutError, match="fashion.*one split, 'train'"):
        load_split(spec, "", "test")
    with pytest.raises(LayoutError, match="unknown layout"):
        DatasetSpec("x", "hf-hub:a/b", "csv")


def test_the_hub_catalog_pins_safetensors_and_downloads_no_pickles():
    catalog = load_catalog("catalog.hub.toml")
    assert catalog.model("openai-clip-vit-b-32").source.endswith("@refs/pr/32")
    assert catalog.model("blip-base-captioning").source.endswith("@refs/pr/7")
    assert catalog.datasets["flickr30k"].source.endswith("@refs/convert/parquet")
    import fnmatch
    for spec in catalog.models.values():
        if spec.source.startswith("hf-hub:"):
            patterns = family_files(spec.family)
            for f in ("pytorch_model.bin", "open_clip_pytorch_model.bin", "tf_model.h5", "flax_model.msgpack"):
                assert not any(fnmatch.fnmatch(f, p) for p in patterns), (spec.name, f)
    for index in catalog.indexes:
        if index.source.startswith("hf-hub:vl-studio/"):
            assert index.build is not None and index.build.dataset in catalog.datasets


def test_a_revision_other_than_main_is_served(local_hub):
    local_hub.add_repo("org/clip", {"config.json": b"{}", "pytorch_model.bin": b"\x80pickle" * 10})
    local_hub.add_repo("org/clip", {"config.json": b"{}", "pytorch_model.bin": b"\x80pickle" * 10,
                                    "model.safetensors": b"\x00" * 64}, revision="refs/pr/32")
    main = resolve("hf-hub:org/clip")
    assert not (main / "model.safetensors").exists()
    pr = resolve("hf-hub:org/clip@refs/pr/32", allow_patterns=["config.json", "model.safetensors"])
    assert (pr / "model.safetensors").read_bytes() == b"\x00" * 64 and not (pr / "pytorch_model.bin").exists()
    with pytest.raises(SourceError, match="no revision 'refs/pr/99'"):
        resolve("hf-hub:org/clip@refs/pr/99")


@pytest.mark.parametrize("fault", ["500", "404", "drop", "size"])
def test_hub_faults_leave_no_corrupt_cache_and_the_next_try_succeeds(local_hub, fault):
    weights = np.random.default_rng(0).bytes(3_000_000)
    local_hub.add_repo("org/model", {"config.json": b"{}", "model.safetensors": weights})
    local_hub.inject("model.safetensors", fault, times=100)  # more than the client's own retries
    with pytest.raises(SourceError, match="hf-hub:org/model"):
        resolve("hf-hub:org/model")
    local_hub.faults.clear()  # the Hub recovers
    folder = resolve("hf-hub:org/model")
    assert (folder / "model.safetensors").read_bytes() == weights


def test_a_hub_fault_reaches_the_visitor_naming_the_model(local_hub, tmp_path):
    from pathlib import Path
    local_hub.add_repo("org/demo-clip", Path("assets/models/demo-clip"))
    local_hub.inject("open_clip_model.safetensors", "500", times=100)
    catalog = tmp_path / "catalog.toml"
    catalog.write_text('[models.hubclip]\nfamily = "open_clip"\nsource = "hf-hub:org/demo-clip"\n')
    services = Services(load_catalog(catalog), index_dir=tmp_path / "idx")
    with pytest.raises(AssetError, match="Model 'hubclip' could not be loaded from hf-hub:org/demo-clip"):
        services.encoder("hubclip")
    local_hub.faults.clear()
    assert services.encoder("hubclip").dim == 128
    assert not [f for f in _downloaded(local_hub) if "eval/" in f or f.endswith(".md")]  # only what open_clip reads


def test_a_missing_library_is_named_with_its_fix(tmp_path, monkeypatch):
    import models.registry

    def missing(*args, **kwargs):
        raise ImportError("SiglipTokenizer requires the SentencePiece library", name="sentencepiece")

    monkeypatch.setattr(models.registry, "create_model", missing)
    services = Services(load_catalog(), index_dir=tmp_path)
    with pytest.raises(AssetError, match=r"Model 'demo-clip' needs a Python package .*sentencepiece.*pip install -r"):
        services.encoder("demo-clip")


@pytest.fixture(scope="module")
def tiny_corpus(tmp_path_factory):
    from demo_world.free_corpus import write_free_corpus

    return write_free_corpus(tmp_path_factory.mktemp("dw") / "demo_world_free", scale=0.02, splits=["test"])


def _build_catalog(tmp_path, corpus):
    path = tmp_path / "catalog.toml"
    path.write_text(f'''include = ["{load_catalog().path}"]
[[indexes]]
model = "demo-clip"
collection = "built here"
source = "hf-hub:vl-studio/index-demo-clip-built-here"
build = {{ dataset = "tiny", config = "scenes", split = "test" }}
[datasets]
tiny = "{corpus}"
''')
    return load_catalog(path)


def test_the_app_builds_a_missing_index_in_the_background(local_hub, tmp_path, tiny_corpus, monkeypatch):
    import core.indexing as indexing
    import pipelines.build_index as build_index

    catalog = _build_catalog(tmp_path, tiny_corpus)
    services = Services(catalog, index_dir=tmp_path / "built")
    gate = threading.Event()
    real_embed, real_rows = build_index.embed_images, build_index.embed_rows

    def slow_embed(*args, **kwargs):
        assert gate.wait(60)
        return real_rows(*args, **kwargs)

    monkeypatch.setattr(indexing, "embed_rows", slow_embed)
    with pytest.raises(IndexNotReady, match="(?i)the built here index for demo-clip.*Other collections"):
        services.index("demo-clip", "built here")
    # meanwhile, every other collection keeps working
    assert services.index("demo-clip", "demo scenes (test split + never-seen concepts)").index.ntotal == 2000
    with pytest.raises(IndexNotReady):  # asked again: still building, never a second build
        services.index("demo-clip", "built here")
    assert services.builds.status_lines()
    gate.set()
    assert services.builds.wait(120)
    index = services.index("demo-clip", "built here")
    assert index.index.ntotal == 20 and index.info.extra["built_by"] == "app"
    assert services.builds.status_lines() == []
    # the same vectors as the build_index pipeline's
    encoder = services.encoder("demo-clip")
    xq = encoder.encode_text(["a dog"])
    ref = build_index.index_from_embeddings(
        real_embed(encoder, build_index.load_rows(str(tiny_corpus), "scenes", "test")),
        build_index.metadata(build_index.load_rows(str(tiny_corpus), "scenes", "test")), tmp_path / "ref",
        model="demo-clip", model_revision=encoder.revision, dataset_source=str(tiny_corpus), config="scenes",
        split="test")
    from index import load_index
    D1, I1 = index.search(xq, 5)
    D2, I2 = load_index(tmp_path / "ref").search(xq, 5)
    assert ref.count == 20 and (I1 == I2).all() and np.allclose(D1, D2, atol=1e-5)

    # published, the next start (empty index folder) downloads it instead of building
    from pipelines.publish import publish
    publish(services.builds.folder_for(catalog.index("demo-clip", "built here")),
            "vl-studio/index-demo-clip-built-here", repo_type="dataset")
    fresh = Services(catalog, index_dir=tmp_path / "empty")
    assert fresh.index("demo-clip", "built here").index.ntotal == 20
    assert fresh.builds.status(catalog.index("demo-clip", "built here")) is None


def test_a_build_killed_midway_is_never_served(tmp_path, tiny_corpus, local_hub):
    catalog = _build_catalog(tmp_path, tiny_corpus)
    services = Services(catalog, index_dir=tmp_path / "built")
    spec = catalog.index("demo-clip", "built here")
    target = services.builds.folder_for(spec)
    half = target.parent / f".{target.name}.tmp-999999-abc"  # what a killed process leaves: a temp folder
    half.mkdir(parents=True)
    (half / "index.faiss").write_bytes(b"half")
    assert services.builds.built(spec) is None
    with pytest.raises(IndexNotReady):
        services.index("demo-clip", "built here")
    assert services.builds.wait(120)
    assert services.index("demo-clip", "built here").index.ntotal == 20
    assert not half.exists()


def test_a_failed_build_says_why_and_is_tried_again(tmp_path, local_hub, monkeypatch):
    catalog = _build_catalog(tmp_path, tmp_path / "no-such-corpus")
    services = Services(catalog, index_dir=tmp_path / "built")
    with pytest.raises(IndexNotReady):
        services.index("demo-clip", "built here")
    assert services.builds.wait(60)
    assert "failed" in services.builds.status_lines()[0] and "no-such-corpus" in services.builds.status_lines()[0]
    with pytest.raises(IndexNotReady, match="(?i)building|queued"):  # a new request tries again
        services.index("demo-clip", "built here")
    services.builds.wait(60)


@pytest.mark.slow
def test_reduced_rehearsal_every_hub_model_answers_every_endpoint(tmp_path):
    """The Space with catalog.hub.toml against a look-alike Hub (random weights of the real architectures)."""
    from bench.rehearsal import markdown, run

    result = run(reduced=True, hub_dir=tmp_path / "hub", repeats=1, with_preload=True)
    (tmp_path / "rehearsal.md").write_text(markdown(result))
    failed = [c for c in result["calls"] + result["first_answers"] + result["index_builds"] if not c["ok"]]
    assert not failed, failed
    assert result["unexpected_requests"] == []
    assert {d["model"] for d in result["downloads"]} == {
        "clip-vit-b-32-laion2b", "siglip-base", "openai-clip-vit-b-32", "blip-base-captioning"}
    for d in result["downloads"]:
        assert d["ratio"] <= 1.1, d
        assert not [f for f in d["files"] if f.endswith((".bin", ".h5", ".msgpack"))], d
    assert any("Building" in m or "Queued" in m for b in result["index_builds"] for m in b["progress_messages"])
    endpoints = {(c["model"], c["endpoint"].split(" ")[0]) for c in result["calls"]}
    assert {("blip-base-captioning", "/caption"), ("clip-vit-b-32-laion2b", "/categorise"),
            ("siglip-base", "/search"), ("openai-clip-vit-b-32", "/search")} <= endpoints
    # the README's preload_from_hub lines (pipelines.space_card) hold every file the loaders read: after the
    # Space-build step, the app fetched no model file itself, refs/pr revisions included
    assert len(result["preload"]["lines"]) == 4
    assert result["preload"]["model_bytes_fetched_by_the_app"] == {m: 0 for m in endpoints_models(result)}
    # the app measured every Hub model itself, and Compare labels the rows as random weights'
    m = result["measurements"]
    assert all(e["state"] == "done" for e in m["evaluations"]), m["evaluations"]
    assert {c["model"] for c in m["compare_rows"] if c["rows"]} == {d["model"] for d in result["downloads"]}
    assert all(c["lookalike_labelled"] for c in m["compare_rows"])
    assert m["n_idle"] and m["all_rows_ready_after_s"] > 0


def endpoints_models(result) -> set[str]:
    return {d["model"] for d in result["downloads"]}


def test_space_card_pins_each_model_to_the_commit_and_files_it_loads(local_hub, tmp_path):
    from pipelines.space_card import card_fields, write_front_matter

    local_hub.add_repo("laion/clip", {"open_clip_config.json": b"{}", "open_clip_model.safetensors": b"\x00" * 8,
                                      "open_clip_pytorch_model.bin": b"\x80" * 8, "model.safetensors": b"\x00" * 8,
                                      "config.json": b"{}"})
    local_hub.add_repo("openai/clip", {"config.json": b"{}", "pytorch_model.bin": b"\x80" * 8, "tf_model.h5": b"h"})
    pr = local_hub.add_repo("openai/clip", {"config.json": b"{}", "pytorch_model.bin": b"\x80" * 8,
                                            "tf_model.h5": b"h", "model.safetensors": b"\x00" * 8,
                                            "vocab.json": b"{}"}, revision="refs/pr/32")
    local_hub.add_repo("jxie/flickr8k", {"data/test-0.parquet": b"p"}, repo_type="dataset")
    catalog = tmp_path / "catalog.toml"
    catalog.write_text('''[models.a]\nfamily = "open_clip"\nsource = "hf-hub:laion/clip"
[models.b]\nfamily = "hf_clip"\nsource = "hf-hub:openai/clip@refs/pr/32"
[datasets]\nflickr8k = { source = "hf-hub:jxie/flickr8k", layout = "flickr8k-parquet" }
''')
    fields = card_fields(load_catalog(catalog))
    assert fields["models"] == ["laion/clip", "openai/clip"] and fields["datasets"] == ["jxie/flickr8k"]
    assert fields["preload_from_hub"][1] == f"openai/clip config.json,model.safetensors,vocab.json {pr}"
    assert fields["preload_from_hub"][0].startswith("laion/clip open_clip_config.json,open_clip_model.safetensors ")
    readme = tmp_path / "README.md"
    readme.write_text("---\ntitle: x\nmodels:\n  - old/model\nsdk: gradio\n---\n# body\n")
    write_front_matter(readme, fields)
    text = readme.read_text()
    assert "old/model" not in text and "title: x\nsdk: gradio\nmodels:\n  - laion/clip" in text
    assert text.endswith("---\n# body\n")
