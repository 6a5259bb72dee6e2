"""The app measures its Hub models itself (core.evaluations): in the background, from the vectors of the indexes it
built, written atomically, keyed by revisions (an unchanged one is never recomputed), with progress; Compare labels
look-alike rows. Also the catalogue parameter of Categorise and the Space's default catalog."""
import json
import shutil
import time
from pathlib import Path

import numpy as np
import pytest

from core.catalog import load_catalog
from core.services import Services

ROOT = Path(__file__).resolve().parent.parent


def _hub_catalog(tmp_path: Path, hub) -> Path:
    """The bundled catalog plus two "Hub" models (the bundled demo CLIP and captioner, published to the local Hub
    with a look-alike card) and the look-alike Flickr8k and fashion datasets, with indexes the app builds."""
    card = "---\nlookalike: true\n---\nrandom weights\n"
    for repo, folder in (("vl-test/demo-clip", "demo-clip"), ("vl-test/demo-captioner", "demo-sat-captioner")):
        staged = tmp_path / "stage" / folder
        shutil.copytree(ROOT / "assets" / "models" / folder, staged, ignore=shutil.ignore_patterns("eval"))
        (staged / "README.md").write_text(card)
        hub.add_repo(repo, staged)
    path = tmp_path / "hub-catalog.toml"
    path.write_text(f'''include = ["{ROOT / 'catalog.toml'}"]
[models.hub-clip]
family = "open_clip"
source = "hf-hub:vl-test/demo-clip"
tasks = ["search", "categorise"]
[models.hub-captioner]
family = "show_attend_tell"
source = "hf-hub:vl-test/demo-captioner"
tasks = ["caption"]
[[indexes]]
model = "hub-clip"
collection = "Flickr8k (test split)"
source = "hf-hub:vl-test/index-not-published-1"
build = {{ dataset = "flickr8k", split = "test" }}
[[indexes]]
model = "hub-clip"
collection = "Fashion products"
source = "hf-hub:vl-test/index-not-published-2"
build = {{ dataset = "fashion-products", split = "train" }}
[defaults]
search = {{ model = "hub-clip", collection = "Flickr8k (test split)" }}
categorise = {{ model = "hub-clip", catalogue = "fashion: master" }}
caption = "hub-captioner"
[catalogues."fashion: master"]
collection = "Fashion products"
field = "masterCategory"
[catalogues."fashion: master".classes]
Apparel = ["clothing such as a t-shirt or jeans"]
Accessories = ["a watch, a bag or sunglasses"]
Footwear = ["shoes or sandals"]
[catalogues."fashion: sub"]
collection = "Fashion products"
field = "subCategory"
[catalogues."fashion: sub".classes]
Topwear = ["a t-shirt"]
Bottomwear = ["jeans"]
Watches = ["a watch"]
Shoes = ["shoes"]
[datasets]
flickr8k = {{ source = "hf-hub:jxie/flickr8k", layout = "flickr8k-parquet" }}
fashion-products = {{ source = "hf-hub:ashraq/fashion-product-images-small", layout = "fashion-products" }}
''')
    return path


@pytest.fixture
def hub_catalog(lookalike_hub, tmp_path):
    return load_catalog(_hub_catalog(tmp_path, lookalike_hub))


def test_the_app_measures_its_hub_models_in_the_background(hub_catalog, tmp_path, monkeypatch):
    from core import evaluations as ev_mod
    from core.compare import long_table, wide_table
    from evaluation.retrieval import recall_at_k

    monkeypatch.setenv(ev_mod.CAPTION_SAMPLE_ENV, "3")
    services = Services(hub_catalog, index_dir=tmp_path / "indexes")
    evaluations = ev_mod.Evaluations(services, tmp_path / "evals")
    kinds = sorted((j.model, j.kind, j.catalogue) for j in (s.job for s in evaluations.statuses()))
    assert kinds == [("hub-captioner", "captioning", ""), ("hub-clip", "retrieval", ""),
                     ("hub-clip", "zero-shot", "fashion: master"), ("hub-clip", "zero-shot", "fashion: sub")]
    assert all(s.state == "waiting" for s in evaluations.statuses())  # nothing measured before start

    seen = set()
    evaluations.start()
    end = time.monotonic() + 1800  # generous: a loaded CI machine
    while evaluations.running() and time.monotonic() < end:  # progress while it runs, as Compare polls it
        for s in evaluations.statuses():
            seen.add((s.state, bool(s.total)))
        time.sleep(0.05)
    assert evaluations.wait(1)
    assert ("waiting", False) in seen  # the indexes were being built first
    statuses = {s.job.kind + s.job.catalogue: s for s in evaluations.statuses()}
    assert all(s.state == "done" and s.total and s.done == s.total for s in statuses.values()), \
        [s.message() for s in statuses.values()]
    assert evaluations.status_lines() == []

    results = {r["config"] + r.get("catalogue", ""): r for r in evaluations.results()}
    assert set(results) == {"retrieval", "zero-shotfashion: master", "zero-shotfashion: sub", "captioning"}
    assert all(r["lookalike"] is True and r["computed_by"] == "app" and r["protocol"] for r in results.values())

    # retrieval: the standard protocol on the index's own vectors = a brute-force recomputation from the data
    encoder = services.encoder("hub-clip")
    index = services.index("hub-clip", "Flickr8k (test split)")
    captions = [list(c) for c in index.meta["captions"]]
    owner = np.repeat(np.arange(len(captions)), [len(c) for c in captions])
    images = [__import__("PIL.Image").Image.open(__import__("io").BytesIO(b)) for b in index.meta["image"]]
    ref = recall_at_k(encoder.encode_text([c for cs in captions for c in cs]), encoder.encode_image(images), owner)
    r = results["retrieval"]
    assert r["n_images"] == 6 and r["n_captions"] == 30
    for k, v in ref.items():
        assert r["metrics"][k] == pytest.approx(v, abs=1e-6), k

    # zero-shot: products whose label is not a class are left out and counted
    z = results["zero-shotfashion: master"]
    labels = [str(c) for c in index_meta(services, "Fashion products")["category"]]
    assert z["n_images"] == sum(c in ("Apparel", "Accessories", "Footwear") for c in labels)
    assert z["n_images"] + z["n_left_out"] == len(labels)
    for style in ("descriptive", "bare"):
        cm = np.array(z["styles"][style]["confusion_matrix"])
        assert cm.sum() == z["n_images"] and set(z["styles"][style]["per_class"]) == set(z["classes"])
    assert results["captioning"]["n_images"] == 3 and "BLEU-4" in results["captioning"]["captioning"]["beam 3"]
    assert "CHAIR_i" in results["captioning"]["captioning"]["beam 3"]

    # Compare: the rows say who measured them, on how much, and that the weights are random
    rows = long_table(evaluations.results())
    assert rows and all(r["lookalike"] and "measured by this app" in r["measured"] for r in rows)
    headers, wide = wide_table(evaluations.results())
    assert all("look-alike" in row[0] and "images" in row[-1] for row in wide)

    # a restart with the same revisions recomputes nothing
    def never(*args, **kwargs):
        raise AssertionError("recomputed an unchanged result")

    for kind in ev_mod.MEASURES:
        monkeypatch.setitem(ev_mod.MEASURES, kind, never)
    from evaluation.evaluate import evaluate_catalog  # the offline command: same code, same files, same keys

    assert evaluate_catalog(Services(hub_catalog, index_dir=tmp_path / "indexes"), tmp_path / "evals") == 0
    again = ev_mod.Evaluations(Services(hub_catalog, index_dir=tmp_path / "indexes"), tmp_path / "evals")
    again.run_all(wait_for_indexes=120)
    assert {s.state for s in again.statuses()} == {"stored"}
    assert len(again.results()) == 4

    # a changed revision recomputes that result, and only that one
    path = again.path(next(s.job for s in again.statuses() if s.job.kind == "retrieval"))
    stored = json.loads(path.read_text())
    stored["key"]["model_revision"] = "an-older-revision"
    path.write_text(json.dumps(stored))
    calls = []
    monkeypatch.setitem(ev_mod.MEASURES, "retrieval", lambda *a: calls.append(a) or {"n_images": 0, "metrics": {}})
    third = ev_mod.Evaluations(Services(hub_catalog, index_dir=tmp_path / "indexes"), tmp_path / "evals")
    third.run_all(wait_for_indexes=120)
    assert len(calls) == 1
    assert sorted(s.state for s in third.statuses()) == ["done", "stored", "stored", "stored"]
    assert json.loads(path.read_text())["key"]["model_revision"] != "an-older-revision"


def index_meta(services, collection):
    return services.index("hub-clip", collection).meta


def test_results_are_written_atomically(tmp_path, monkeypatch):
    from core import evaluations as ev_mod

    path = tmp_path / "result.json"
    ev_mod.write_atomic(path, {"figures": 1})

    def crash(obj, f, **kwargs):
        f.write('{"figures": ')  # half a file, then the process dies
        raise KeyboardInterrupt

    monkeypatch.setattr(ev_mod.json, "dump", crash)
    with pytest.raises(KeyboardInterrupt):
        ev_mod.write_atomic(path, {"figures": 2})
    monkeypatch.undo()
    assert json.loads(path.read_text()) == {"figures": 1}  # the old file, whole
    assert [p.name for p in tmp_path.iterdir()] == ["result.json"]  # no temporary file left behind


def test_model_card_lookalike_field(tmp_path):
    from core.evaluations import model_card_lookalike

    (tmp_path / "a").mkdir()
    (tmp_path / "a" / "README.md").write_text("---\nlicense: mit\nlookalike: true\n---\n# x\n")
    (tmp_path / "b").mkdir()
    (tmp_path / "b" / "README.md").write_text("---\nlicense: mit\n---\nlookalike: true (not in the front matter)\n")
    assert model_card_lookalike(str(tmp_path / "a")) is True
    assert model_card_lookalike(str(tmp_path / "b")) is False
    assert model_card_lookalike(str(tmp_path / "no-card")) is False


def test_categorise_takes_the_catalogue(hub_catalog, tmp_path):
    from PIL import Image

    from core.inputs import InputError
    from tabs.categorise import EXAMPLES_DIR, run_categorise

    services = Services(hub_catalog, index_dir=tmp_path / "indexes")
    assert hub_catalog.catalogue_names() == ["fashion: master", "demo products", "fashion: sub"]
    example = str(sorted(EXAMPLES_DIR.glob("*.png"))[0])
    picture = Image.open(example)
    for name, classes in (("fashion: master", ["Apparel", "Accessories", "Footwear"]),
                          ("fashion: sub", ["Topwear", "Bottomwear", "Watches", "Shoes"])):
        _, result = run_categorise(services, picture, "", "demo-clip", "descriptive", name)
        assert sorted(result.probs) == sorted(classes) and result.prompts == hub_catalog.catalogue(name).prompts("descriptive")
    _, demo = run_categorise(services, picture, "", "demo-clip", "bare", "demo products")
    assert len(demo.probs) == 7
    _, default = run_categorise(services, picture, "", "demo-clip", "descriptive")  # no catalogue: the default
    assert sorted(default.probs) == ["Accessories", "Apparel", "Footwear"]
    _, own = run_categorise(services, picture, "cat, dog", "demo-clip", "custom", "fashion: master")
    assert sorted(own.probs) == ["cat", "dog"]  # a visitor's own labels still win
    with pytest.raises(InputError, match="catalogue"):
        run_categorise(services, picture, "", "demo-clip", "descriptive", "no such catalogue")
    with pytest.raises(InputError, match="supervised"):
        run_categorise(services, picture, "", "cnn-baseline", "descriptive", "fashion: master")


def test_categorise_api_catalogue_parameter(app_url):
    from gradio_client import Client, handle_file
    from gradio_client.exceptions import AppError

    from tabs.categorise import EXAMPLES_DIR

    client = Client(app_url, verbose=False)
    example = handle_file(str(sorted(EXAMPLES_DIR.glob("*.png"))[0]))
    old = client.predict(example, "", "demo-clip", "descriptive", api_name="/categorise")  # existing callers
    new = client.predict(example, "", "demo-clip", "descriptive", "demo products", api_name="/categorise")
    assert old["probabilities"] == pytest.approx(new["probabilities"]) and len(new["probabilities"]) == 7
    with pytest.raises(AppError, match="catalogue"):
        client.predict(example, "", "demo-clip", "descriptive", "nope", api_name="/categorise")


def test_a_space_serves_the_hub_catalog_by_default(monkeypatch):
    from core.catalog import DEFAULT_CATALOG, SPACE_CATALOG, default_catalog_path

    monkeypatch.delenv("VLSTUDIO_CATALOG", raising=False)
    monkeypatch.delenv("SPACE_ID", raising=False)
    assert default_catalog_path() == DEFAULT_CATALOG  # locally: offline, the bundled world
    monkeypatch.setenv("SPACE_ID", "vl-studio/vision-language-studio")
    assert default_catalog_path() == SPACE_CATALOG
    catalog = load_catalog()
    assert catalog.path == SPACE_CATALOG
    # each tab opens on a real model and a real collection; the bundled world is one pick away
    assert catalog.search_models()[0] == "clip-vit-b-32-laion2b"
    assert catalog.collections("clip-vit-b-32-laion2b")[0] == "Flickr8k (test split)"
    assert catalog.models_for("categorise")[0] == "clip-vit-b-32-laion2b"
    assert catalog.catalogue_names()[0] == "fashion products: masterCategory"
    assert catalog.models_for("caption")[0] == "blip-base-captioning"
    assert {"dual-minilm-cnn", "demo-clip"} <= set(catalog.search_models()) and catalog.bundled("caption")
    monkeypatch.setenv("VLSTUDIO_CATALOG", str(DEFAULT_CATALOG))  # told otherwise
    assert load_catalog().path == DEFAULT_CATALOG


def test_worked_answers_are_the_bundled_worlds_until_the_real_default_is_ready(hub_catalog, tmp_path):
    """A Space's tabs open on Hub models: on arrival, the bundled world answers with a line saying what is
    loading; once the default model and collection are ready, a page load shows the real collection's picture."""
    from app import build_demo
    from core.services import IndexNotReady
    from core.warmup import WarmStart
    from tabs.search import EXAMPLE_QUERIES, REAL_EXAMPLE_QUERY

    services = Services(hub_catalog, index_dir=tmp_path / "indexes")
    demo = build_demo(hub_catalog, services, WarmStart())
    on_load = [f.fn for f in demo.fns.values() if getattr(f.fn, "__name__", "") == "on_load"]
    search, categorise, caption = [fn() for fn in on_load[:3]]
    assert search[-1] == EXAMPLE_QUERIES[0] and "is loading" in search[1] and "hub-clip" in search[1]
    assert "are loading" in categorise[2] and categorise[4:] == ["dual-minilm-cnn", "demo products"]
    assert "are loading" in caption[5] and caption[4] == "demo-captioner"

    for collection in ("Flickr8k (test split)", "Fashion products"):
        with pytest.raises(IndexNotReady):
            services.index("hub-clip", collection)
    assert services.builds.wait(600)
    services.encoder("hub-captioner")
    search, categorise, caption = [fn() for fn in on_load[:3]]
    assert search[-1] == REAL_EXAMPLE_QUERY and "is loading" not in search[1] and search[2]["model"] == "hub-clip"
    assert "loading" not in categorise[2] and categorise[4:] == ["hub-clip", "fashion: master"]
    assert set(categorise[0]["confidences"][i]["label"] for i in range(3)) == {"Apparel", "Accessories", "Footwear"}
    assert caption[4] == "hub-captioner" and caption[5] == ""


def test_catalogue_templates_are_chosen_on_rows_the_app_never_measures(lookalike_hub, tmp_path):
    """`evaluation.catalogue_prompts`: a validation set drawn from the rows of the dataset split that the
    catalogue's collection does not hold (the app measures the catalogue on the collection), labelled by the
    catalogue's field, and greedy forward selection over the candidates (random-weight plumbing: no figure here
    means anything)."""
    from core.layouts import load_split
    from evaluation.catalogue_prompts import GENERIC_CANDIDATES, select

    path = _hub_catalog(tmp_path, lookalike_hub)
    whole = Services(load_catalog(path), index_dir=tmp_path / "indexes")
    with pytest.raises(ValueError, match="whole 'train' split"):
        select(whole, "fashion: master")
    path.write_text(path.read_text().replace('split = "train" }', 'split = "train", sample = 6 }'))
    catalog = load_catalog(path)
    services = Services(catalog, index_dir=tmp_path / "indexes")
    out = select(services, "fashion: master", size=500, seed=1)
    spec = catalog.datasets["fashion-products"]
    every = load_split(spec, "", "train")
    collection = set(load_split(spec, "", "train", sample=6)["id"])  # what the app indexes and measures
    v = out["validation"]
    assert v["disjoint_from_collection"] and not collection & set(v["ids"])
    assert v["validation_rows"] == len(every) - 6 == len(v["ids"]) + v["left_out_unknown_label"]
    labels = dict(zip(every["id"], every["category"]))  # masterCategory
    assert sum(out["class_counts"].values()) == len(v["ids"])
    for cls, n in out["class_counts"].items():
        assert n == sum(labels[i] == cls for i in v["ids"])
    assert out["models"] == ["hub-clip"] and out["templates"]
    assert set(out["templates"]) <= set(GENERIC_CANDIDATES) | set(catalog.catalogue("fashion: master").templates)
    assert out["mean_val_accuracy"] == pytest.approx(out["per_model"]["hub-clip"])
    assert out["history"][-1]["mean_val_accuracy"] == out["mean_val_accuracy"]


def test_greedy_template_selection_adds_while_it_helps():
    from evaluation.catalogue_prompts import greedy_templates

    gain = {"a": 5.0, "b": 3.0, "c": -1.0, "d": 0.0}
    chosen, best, history = greedy_templates(lambda ts: sum(gain[t] for t in ts), list(gain))
    assert chosen == ["a", "b"] and best == 8.0 and [h["added"] for h in history] == ["a", "b"]
