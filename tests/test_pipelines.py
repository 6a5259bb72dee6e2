"""Every pipeline runs end to end on a tiny budget, and what it writes loads back through the registry."""
import json

import numpy as np
import pytest
import torch
from PIL import Image

from core.catalog import load_catalog
from core.services import Services
from demo_world.free_corpus import write_free_corpus
from index import load_index
from models.registry import create_model


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    return write_free_corpus(tmp_path_factory.mktemp("dw") / "demo_world_free", scale=0.02,
                             splits=["train", "val", "test"])


@pytest.mark.slow
def test_train_clip_build_index_and_evaluate(tmp_path, corpus):
    from evaluation.evaluate import main as evaluate_main
    from pipelines.build_index import main as build_main
    from pipelines.train_clip import main as train_main

    model_dir = tmp_path / "models" / "tiny-clip"
    train_main(["--out", str(model_dir), "--steps", "3", "--train-scenes", "64", "--val-scenes", "16",
                "--batch-size", "16", "--eval-every", "3"])
    config = json.loads((model_dir / "open_clip_config.json").read_text())
    assert config["training"]["history"][-1]["step"] == 3
    catalog = tmp_path / "catalog.toml"
    catalog.write_text(f'[models.tiny]\nfamily = "open_clip"\nsource = "{model_dir}"\n')
    build_main(["--model", "tiny", "--dataset", str(corpus), "--config", "scenes", "--split", "test",
                "--out", str(tmp_path / "idx"), "--catalog", str(catalog)])
    loaded = load_index(tmp_path / "idx", expect_model="tiny")
    assert loaded.index.ntotal == 20 and loaded.info.split == "scenes/test"
    evaluate_main(["--model", "tiny", "--dataset", str(corpus), "--split", "test", "--catalog", str(catalog)])
    result = json.loads((model_dir / "eval" / "demo_world_free--scenes-test.json").read_text())
    assert result["n_images"] == 20 and result["n_captions"] == 100 and "t2i_R@1" in result["metrics"]


@pytest.fixture(scope="module")
def tower_cache(tmp_path_factory):
    """The frozen trunk's features of a few seeded train and val pictures (scenes and products)."""
    from pipelines.tower_cache import main

    out = tmp_path_factory.mktemp("cache") / "lite0"
    main(["--out", str(out), "--scenes", "40", "--products", "28", "--val-scenes", "12", "--val-products", "14",
          "--threads", "1"])
    return out


def test_tower_cache_layout(tower_cache):
    from pipelines.tower_cache import load_split

    feats, cells, meta = load_split(tower_cache, "train")
    assert feats.shape == (68, 192, 6, 6) and feats.dtype == np.float16  # 192 px through blocks[:6]: stride 32
    assert cells.shape == (68, 6, 6) and [m["kind"] for m in meta].count("product") == 28
    assert all((cells[i] >= 0).any() for i in range(68))  # every picture's objects claim at least one cell
    assert json.loads((tower_cache / "cache.json").read_text())["grid"] == 6


@pytest.mark.slow
def test_train_cnn_baseline_and_evaluate(tmp_path, corpus, tower_cache):
    import pipelines.train_cnn_baseline as cnn
    from evaluation.evaluate import evaluate

    out = tmp_path / "cnn"
    cnn.main(["--out", str(out), "--cache", str(tower_cache), "--steps", "4", "--batch-size", "16", "--eval-every", "2",
              "--threads", "1"])
    clf = create_model("cnn_classifier", out, "cnn")
    assert len(clf.classes) == 7
    catalog = tmp_path / "catalog.toml"
    catalog.write_text(f'[models.cnn]\nfamily = "cnn_classifier"\nsource = "{out}"\ntasks = ["categorise"]\n')
    result = evaluate(Services(load_catalog(catalog)), "cnn", str(corpus), "products", "test")
    assert set(result["styles"]) == {"supervised"} and result["n_images"] == 14


@pytest.mark.slow
def test_collection_of_two_splits_with_familiarity_floors_and_paraphrases(tmp_path, monkeypatch):
    """`--split test+heldout` makes one collection of both, marks never-seen concepts, and calibrates the floors
    on val; the paraphrase evaluation runs on the same collection."""
    import demo_world.free_corpus as free
    from evaluation.paraphrases import main as paraphrases
    from pipelines.build_index import main as build_main

    corpus = free.write_free_corpus(tmp_path / "free", scale=0.03, splits=["val", "test", "heldout"])
    build_main(["--model", "dual-minilm-cnn", "--dataset", str(corpus), "--config", "scenes", "--split",
                "test+heldout", "--calibrate-split", "val", "--out", str(tmp_path / "idx")])
    index = load_index(tmp_path / "idx", expect_model="dual-minilm-cnn")
    assert index.index.ntotal == 60 and index.info.split == "scenes/test+heldout"
    unseen = [list(u) for u in index.meta["unseen"]]
    assert not any(unseen[:30]) and all(unseen[30:])  # the held-out half, and only it, shows never-seen concepts
    record = index.info.extra["familiarity"]
    assert record["calibration_split"] == "scenes/val" and record["text"]["queries"] > 30 * 5  # + "a <name>"
    assert record["image"]["queries"] == 30
    out = tmp_path / "para.json"
    paraphrases(["--model", "dual-minilm-cnn", "--dataset", str(corpus), "--out", str(out)])
    result = json.loads(out.read_text())
    assert result["n_images"] == 60 and 0 <= result["metrics"]["paraphrase hit@5"] <= 100
    assert result["command"].startswith("python -m evaluation.paraphrases")


@pytest.mark.slow
def test_train_dual_encoder_resumes_and_builds_a_grounded_captioner(tmp_path, tower_cache, corpus, monkeypatch):
    import pipelines.train_dual_encoder as dual
    from evaluation.evaluate import evaluate
    from pipelines.grounded_captioner import main as build_captioner

    args = ["--out", str(tmp_path / "dual"), "--cache", str(tower_cache), "--checkpoint", str(tmp_path / "ck.pt"),
            "--steps", "2", "--batch-size", "16", "--eval-every", "1", "--threads", "1"]
    real, calls = dual._val_scores, []

    def interrupted(*a, **k):  # the run dies right after its first checkpoint
        calls.append(1)
        if len(calls) == 2:
            raise KeyboardInterrupt
        return real(*a, **k)

    monkeypatch.setattr(dual, "_val_scores", interrupted)
    with pytest.raises(KeyboardInterrupt):
        dual.main(args)
    monkeypatch.setattr(dual, "_val_scores", real)
    dual.main(args)  # resumes at step 1
    history = json.loads((tmp_path / "dual" / "config.json").read_text())["training"]["history"]
    assert [h["step"] for h in history] == [1, 2]
    with pytest.raises(SystemExit, match="another configuration"):
        dual.main(args[:-6] + ["--steps", "3", "--batch-size", "16", "--eval-every", "1", "--threads", "1"])

    enc = create_model("dual_encoder", tmp_path / "dual", "dual")
    # the text tower is locked: text embeddings are MiniLM's own sentence embeddings
    assert enc.encode_text(["computers"]).shape == (1, 384) and enc.context_length == 256
    assert np.allclose(enc.encode_text(["computers"])[0], enc.sentence_embeddings(["computers"]).numpy()[0], atol=1e-5)
    assert enc.encode_image([Image.new("RGB", (300, 200), "red")]).shape == (1, 384)
    shipped = (tmp_path / "dual" / "model.safetensors").stat().st_size
    assert shipped < 10e6  # the ImageNet trunk is not in the file: it comes from pip

    build_captioner(["--dual", str(tmp_path / "dual"), "--cache", str(tower_cache), "--out", str(tmp_path / "cap"),
                     "--threads", "1"])
    catalog = tmp_path / "catalog.toml"
    catalog.write_text(f'[models.cap]\nfamily = "grounded_captioner"\nsource = "{tmp_path / "cap"}"\ntasks = ["caption"]\n')
    result = evaluate(Services(load_catalog(catalog)), "cap", str(corpus), "scenes", "test", limit=3)
    assert {"BLEU-4", "objects_named", "CHAIR_i", "position_accuracy"} <= set(result["captioning"]["beam 3"])


@pytest.mark.slow
def test_train_captioner_and_evaluate(tmp_path, corpus):
    from evaluation.evaluate import evaluate
    from pipelines.train_captioner import main

    out = tmp_path / "cap"
    with pytest.raises(SystemExit, match="no small-CNN trunk"):  # the bundled dual encoder has a pretrained tower
        main(["--out", str(out), "--steps", "1"])
    main(["--out", str(out), "--init-encoder", "", "--steps", "4", "--frozen-steps", "2", "--train-scenes", "48",
          "--val-scenes", "6", "--batch-size", "8", "--eval-every", "2"])
    config = json.loads((out / "config.json").read_text())
    assert [h["step"] for h in config["training"]["history"]] == [2, 4]
    assert "CHAIR_i" in config["training"]["history"][-1]  # val hallucination is measured, and counts in selection
    catalog = tmp_path / "catalog.toml"
    catalog.write_text(f'[models.cap]\nfamily = "show_attend_tell"\nsource = "{out}"\ntasks = ["caption"]\n')
    result = evaluate(Services(load_catalog(catalog)), "cap", str(corpus), "scenes", "test", limit=5)
    assert set(result["captioning"]) == {"beam 1", "beam 3", "beam 3, no repeat guard"}
    assert {"BLEU-4", "objects_named", "pointing"} <= set(result["captioning"]["beam 3"])
    assert set(result["cost"]["latency_ms"]) == {"caption_beam1", "caption_beam3"}


@pytest.mark.slow
def test_train_captioner_on_a_timm_encoder_from_the_hub(tmp_path, corpus, local_hub, monkeypatch):
    """The real catalog's path: timm weights fetched from a Hub repo, a dataset read in the corpus layout, and
    nothing cached in memory (as with real photos at 224 px)."""
    import timm
    from safetensors.torch import load_file, save_file

    from pipelines.train_captioner import main

    monkeypatch.setattr("pipelines.train_captioner.CACHE_BYTES", 0)

    net = timm.create_model("resnet10t", pretrained=False)  # random weights stand in for the published ones
    weights = tmp_path / "weights"
    weights.mkdir()
    save_file(net.state_dict(), str(weights / "model.safetensors"))
    (weights / "config.json").write_text(json.dumps({"architecture": "resnet10t", "num_classes": 1000}))
    local_hub.add_repo("timm/resnet10t.test", weights)
    out = tmp_path / "cap"
    main(["--out", str(out), "--encoder", "timm:resnet10t", "--image-size", "64",
          "--init-encoder", "hf-hub:timm/resnet10t.test", "--dataset", str(corpus), "--config", "scenes",
          "--steps", "2", "--frozen-steps", "2", "--train-scenes", "12", "--val-scenes", "4", "--batch-size", "4",
          "--eval-every", "2"])
    assert any("timm/resnet10t.test/resolve/" in r for r in local_hub.requests)
    saved = load_file(str(out / "model.safetensors"))
    hub = {k: v for k, v in net.state_dict().items() if not k.startswith("fc.")}
    assert all(torch.equal(saved["encoder.model." + k], v) for k, v in hub.items())  # frozen throughout: the Hub's
    captioner = create_model("show_attend_tell", out, "cap")
    result = captioner.caption(Image.new("RGB", (90, 60), "white"), beam_size=2)
    assert result.attention.shape == (len(result.tokens), 2, 2)  # 64 px / stride 32
    assert np.allclose(result.attention.sum(axis=(1, 2)), 1, atol=1e-5)
    with pytest.raises(ValueError, match="does not hold resnet18 weights"):
        from models.captioner import TimmTrunk
        TimmTrunk("resnet18").load_pretrained(weights)


@pytest.mark.slow
@pytest.mark.parametrize("unfreeze", ["heads", "last", "all"])
def test_finetune_clip_unfreezes_what_it_says(tmp_path, unfreeze):
    from safetensors.torch import load_file

    from pipelines.finetune_clip import main

    out = tmp_path / "ft"
    main(["--base", "assets/models/demo-clip", "--out", str(out), "--unfreeze", unfreeze, "--steps", "3",
          "--train-products", "32", "--val-products", "14", "--batch-size", "16", "--eval-every", "1",
          "--lr", "0.01", "--patience", "5"])
    config = json.loads((out / "open_clip_config.json").read_text())
    training = config["training"]
    assert training["config"]["unfreeze"] == unfreeze and training["history"][0]["step"] == 0
    before = load_file("assets/models/demo-clip/open_clip_model.safetensors")
    after = load_file(str(out / "open_clip_model.safetensors"))
    changed = {k for k in before if not torch.equal(before[k], after[k])}
    if training["val_best"] > training["val_before"]:  # else the base weights were kept, unchanged
        assert changed
        if unfreeze == "heads":
            assert all(k.startswith(("text_projection", "logit_scale", "visual.attnpool")) for k in changed)
        if unfreeze == "last":
            assert not any(k.startswith(("visual.layer1", "token_embedding", "transformer.resblocks.0.")) for k in changed)
    else:
        assert not changed
    create_model("open_clip", out, "ft")  # loads back


@pytest.mark.slow
def test_two_shards_merge_into_the_single_pass_index(tmp_path, corpus):
    from pipelines.build_index import build
    from pipelines.shards import embed_shard, merge, read_shards

    services = Services(load_catalog())
    single = build(services, "demo-clip", str(corpus), "scenes", "test", tmp_path / "single")
    for shard in (1, 0):  # any order, any machine
        embed_shard(services, "demo-clip", str(corpus), "scenes", "test", shard, 2, tmp_path / "emb")
    with pytest.raises(ValueError, match="missing"):
        embed_shard(services, "demo-clip", str(corpus), "scenes", "test", 0, 3, tmp_path / "partial")
        read_shards(tmp_path / "partial")
    merged = merge("demo-clip", str(corpus), "scenes", "test", tmp_path / "emb", tmp_path / "merged")
    a, b = load_index(tmp_path / "single", expect_model="demo-clip"), load_index(tmp_path / "merged", expect_model="demo-clip")
    assert a.index.ntotal == b.index.ntotal == 20
    assert list(a.meta["id"]) == list(b.meta["id"]) and list(a.meta["caption"]) == list(b.meta["caption"])
    np.testing.assert_allclose(a.index.reconstruct_n(0, 20), b.index.reconstruct_n(0, 20), atol=1e-5)
    assert (merged.factory, merged.count, merged.model_revision) == (single.factory, single.count, single.model_revision)
