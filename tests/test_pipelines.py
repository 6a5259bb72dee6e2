"""Every pipeline runs end to end on a tiny budget, and what it writes loads back through the registry."""
import json

import pytest

from core.catalog import load_catalog
from core.services import Services
from demo_world.corpus import write_corpus
from index import load_index
from models.registry import create_model


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    return write_corpus(tmp_path_factory.mktemp("dw") / "demo_world", scale=0.02)


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
    result = json.loads((model_dir / "eval" / "demo_world--scenes-test.json").read_text())
    assert result["n_images"] == 20 and result["n_captions"] == 100 and "t2i_R@1" in result["metrics"]


@pytest.mark.slow
def test_train_cnn_baseline_and_evaluate(tmp_path, corpus, monkeypatch):
    import pipelines.train_cnn_baseline as cnn
    from evaluation.evaluate import evaluate

    monkeypatch.setitem(cnn.PRODUCT_SPLITS, "train", 70)
    monkeypatch.setitem(cnn.PRODUCT_SPLITS, "val", 14)
    out = tmp_path / "cnn"
    cnn.main(["--out", str(out), "--steps", "4", "--batch-size", "16", "--eval-every", "2"])
    clf = create_model("cnn_classifier", out, "cnn")
    assert len(clf.classes) == 7
    catalog = tmp_path / "catalog.toml"
    catalog.write_text(f'[models.cnn]\nfamily = "cnn_classifier"\nsource = "{out}"\ntasks = ["categorise"]\n')
    result = evaluate(Services(load_catalog(catalog)), "cnn", str(corpus), "products", "test")
    assert set(result["styles"]) == {"supervised"} and result["n_images"] == 14


@pytest.mark.slow
def test_train_dual_encoder(tmp_path):
    from pipelines.train_dual_encoder import main

    out = tmp_path / "dual"
    main(["--out", str(out), "--steps", "2", "--train-scenes", "64", "--train-products", "14", "--val-scenes", "16",
          "--batch-size", "16", "--eval-every", "2"])
    enc = create_model("dual_encoder", out, "dual")
    assert enc.encode_text(["computers"]).shape == (1, 128) and enc.context_length == 256
