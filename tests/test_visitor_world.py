"""The visitor's first experience of the open-vocabulary world: paraphrase queries, the default model chosen on
them, example pictures labelled when they show never-seen concepts, and the "far from anything known" notice."""
import json
from pathlib import Path

import numpy as np
import pytest

from core.catalog import load_catalog
from core.compare import results_path
from core.familiarity import PERCENTILE, floor_of, floors, unfamiliar_notice
from demo_world.concepts import load_concepts
from demo_world.examples import UNSEEN, read_labels
from evaluation.captioning import tokenize
from evaluation.paraphrases import hit_at_k, load_paraphrases

ROOT = Path(__file__).resolve().parent.parent
CONCEPTS = {c.name: c for c in load_concepts()}


def test_paraphrases_never_use_a_name_or_synonym_of_what_they_look_for():
    queries = load_paraphrases()
    assert len(queries) >= 80
    heldout = 0
    for q in queries:
        words = tokenize(q.query)
        for name in q.concepts:
            assert name in CONCEPTS, (q.query, name)
            for phrase in CONCEPTS[name].names:  # the name and its synonyms: the only words training texts use
                p = tokenize(phrase)
                assert not any(words[i : i + len(p)] == p for i in range(len(words) - len(p) + 1)), (q.query, phrase)
        heldout += any(CONCEPTS[n].split == "heldout" for n in q.concepts)
    assert 30 <= heldout <= len(queries) - 30  # both seen and never-seen concepts are asked for


def test_hit_at_k_counts_only_findable_queries_by_hand():
    from evaluation.paraphrases import Paraphrase

    text = np.eye(3, dtype=np.float32)
    images = np.eye(3, dtype=np.float32)[[0, 1, 2, 2]]
    present = [{"dog"}, {"cat"}, {"tiger"}, {"tiger", "cat"}]
    queries = [Paraphrase("a puppy", ("dog",)), Paraphrase("a kitten", ("cat",)), Paraphrase("a unicorn", ("unicorn",))]
    metrics, rows = hit_at_k(text, images, present, queries, heldout={"tiger"}, k=1)
    assert metrics["paraphrase queries"] == 2  # nothing to find for "a unicorn": not counted
    assert [r["hit"] for r in rows] == [True, True]


def test_default_search_model_understands_visitors_best():
    """The Search tab's default (the catalog's first search model) has the highest measured paraphrase hit@5."""
    catalog = load_catalog()
    scores = {}
    for name in catalog.search_models():
        path = results_path(ROOT / catalog.model(name).source, "demo_world_free", "paraphrases", "test+heldout")
        scores[name] = json.loads(path.read_text())["metrics"]["paraphrase hit@5"]
    assert catalog.search_models()[0] == max(scores, key=scores.get), scores


@pytest.mark.parametrize("folder", ["scenes", "products"])
def test_examples_are_labelled_and_never_trained_on(folder):
    labels = read_labels(ROOT / "assets" / "examples" / folder)
    files = sorted(p.name for p in (ROOT / "assets" / "examples" / folder).glob("*.png"))
    assert sorted(labels) == files
    held = 0
    for name, label in labels.items():
        split = name.split("-")[0]
        assert split in ("test", "heldout")  # never a train or val picture
        concepts = [part.replace(f" ({UNSEEN})", "") for part in label.split(", ")]
        for concept, part in zip(concepts, label.split(", ")):
            assert concept in CONCEPTS
            assert (CONCEPTS[concept].split == "heldout") == part.endswith(f"({UNSEEN})")
        held += split == "heldout"
        assert (split == "heldout") == any(CONCEPTS[c].split == "heldout" for c in concepts)
    assert held >= 2


class FakeIndex:
    def __init__(self, xb, extra=None):
        self.xb = xb
        self.info = type("Info", (), {"extra": extra or {}})()

    def search(self, xq, k):
        s = xq @ self.xb.T
        i = np.argsort(-s, axis=1)[:, :k]
        return np.take_along_axis(s, i, 1), i


def test_floors_are_the_percentile_of_in_world_top_scores():
    rng = np.random.default_rng(0)
    xb = rng.normal(size=(50, 8)).astype(np.float32)
    xb /= np.linalg.norm(xb, axis=1, keepdims=True)
    queries = xb[rng.integers(50, size=400)] + 0.3 * rng.normal(size=(400, 8)).astype(np.float32)
    queries /= np.linalg.norm(queries, axis=1, keepdims=True)
    record = floors(queries, None, FakeIndex(xb), split="scenes/val")
    top1 = (queries @ xb.T).max(1)
    assert record["text"]["floor"] == pytest.approx(np.percentile(top1, PERCENTILE), abs=1e-5)
    assert (top1 < record["text"]["floor"]).mean() <= PERCENTILE / 100 + 1e-9
    assert "image" not in record and record["calibration_split"] == "scenes/val"


def test_unfamiliar_notice_only_under_the_floor():
    assert unfamiliar_notice(0.5, 0.3, "text") == []
    assert unfamiliar_notice(0.5, None, "text") == []  # never calibrated: never a warning
    (line,) = unfamiliar_notice(0.12, 0.3, "text")
    assert "0.120" in line and "0.300" in line and "not matches" in line and "99%" in line


def test_search_warns_when_the_best_hit_is_under_the_floor():
    from core.search import search_text

    class Encoder:
        name, revision = "fake-familiar", "r0"

        def check_text(self, text):
            return type("C", (), {"truncated": False})()

        def encode_text(self, texts):
            return np.array([[1.0, 0.0]], dtype=np.float32)

    import pandas as pd

    meta = pd.DataFrame({"id": ["a", "b"], "caption": ["x", "y"], "image": [b"", b""],
                         "unseen": [["tiger"], []]})
    xb = np.array([[0.2, 0.98], [0.0, 1.0]], dtype=np.float32)
    index = FakeIndex(xb, {"familiarity": {"text": {"floor": 0.5}}})
    index.meta, index.index = meta, type("I", (), {"ntotal": 2})()
    result = search_text(Encoder(), index, "a tax return", 2)
    assert result.hits[0].unseen == ("tiger",)
    assert any("Nothing in this collection looks much like your description" in n for n in result.notices)
    index.info.extra["familiarity"]["text"]["floor"] = 0.1
    assert not search_text(Encoder(), index, "a tax return", 2).notices


def test_bundled_indexes_carry_floors_measured_on_val():
    from core.services import Services

    services = Services(load_catalog())
    for spec in services.catalog.indexes:
        index = services.index(spec.model, spec.collection)
        record = index.info.extra["familiarity"]
        assert record["calibration_split"].endswith("/val") and record["percentile"] == PERCENTILE
        for kind in ("text", "image"):
            assert record[kind]["queries"] >= 700
            assert -1 < floor_of(index, kind) < record[kind]["median_top1"]
        assert index.info.split.endswith("test+heldout")
        assert any(len(u) for u in index.meta["unseen"])  # held-out pictures are marked


def test_visitor_pictures_are_not_our_generator_and_score_like_a_test_split():
    """Non-square, JPEG, rotated icons on other backgrounds; seeded; boxes inside the frame; seen and held-out
    concepts both present, products with their category."""
    import io

    from PIL import Image

    from demo_world.visitor_pictures import CANVASES, build

    scenes, again = build("scenes", 12), build("scenes", 12)
    assert scenes["objects"] == again["objects"]  # seeded
    splits = set()
    for row in scenes.cast_column("image", __import__("datasets").Image(decode=False)):
        image = Image.open(io.BytesIO(row["image"]["bytes"]))
        assert image.format == "JPEG" and image.size in CANVASES
        assert 1 <= len(row["objects"]) <= 3
        for o in row["objects"]:
            x0, y0, x1, y1 = o["box"]
            assert 0 <= x0 < x1 <= 1 and 0 <= y0 < y1 <= 1
            assert CONCEPTS[o["name"]].split == o["concept_split"]
            splits.add(o["concept_split"])
    assert splits == {"train", "heldout"}
    products = build("products", 8)
    assert all(len(objs) == 1 and objs[0]["category"] == cat for objs, cat in zip(products["objects"], products["category"]))
    assert {objs[0]["concept_split"] for objs in products["objects"]} == {"train", "heldout"}


def test_categorise_warns_about_uploads_far_from_every_known_product(monkeypatch):
    """A model that recognises cell by cell (the bundled dual encoder) is checked by its recognition floor; one
    without is checked against its product collection's floor; a supervised classifier is not checked."""
    from core.services import Services
    from tabs.categorise import run_categorise

    services = Services(load_catalog())
    example = str(sorted((ROOT / "assets" / "examples" / "products").glob("test-*.png"))[0])
    encoder = services.encoder("dual-minilm-cnn")
    monkeypatch.setattr(encoder, "recognition_floor", 2.0)  # above any probability: nothing is recognised
    _, result = run_categorise(services, example, "", "dual-minilm-cnn", "descriptive")
    assert result.far_from_known and any("recognises nothing of this world" in n for n in result.notices)
    _, result = run_categorise(services, example, "", "cnn-baseline", "descriptive")  # no embeddings: no check
    assert not result.far_from_known
    monkeypatch.setattr(encoder, "recognition_floor", None)  # no recognition: the product collection's floor
    index = services.index("dual-minilm-cnn", "demo products (test split + never-seen products)")
    record = index.info.extra["familiarity"]["image"]
    monkeypatch.setitem(record, "floor", 2.0)  # above any cosine: everything is "far"
    _, result = run_categorise(services, example, "", "dual-minilm-cnn", "descriptive")
    assert any("Nothing in the demo products" in n and "picture" in n for n in result.notices)
    monkeypatch.setitem(record, "floor", -2.0)
    _, result = run_categorise(services, example, "", "dual-minilm-cnn", "descriptive")
    assert not any("Nothing in" in n for n in result.notices)


def test_stored_name_embeddings_are_what_the_text_tower_computes(tmp_path):
    """The recognition's concept-name weights ship with the model (pipelines.recognition_floor) so a fresh process
    does not spend its first categorisation on them: they must be exactly what MiniLM computes from today's names,
    and stored ones computed from other names are ignored."""
    import torch

    from core.services import Services
    from models.dual_encoder import (NAME_EMBEDDINGS, load_name_embeddings, name_embeddings, save_name_embeddings,
                                     seen_concept_names)

    services = Services(load_catalog())
    encoder = services.encoder("dual-minilm-cnn")
    folder = Path(services.catalog.model("dual-minilm-cnn").source)
    tower = encoder.model.cfg.text_tower
    names = seen_concept_names()
    assert (folder / NAME_EMBEDDINGS).is_file() and encoder._names is not None  # read at load, not computed
    computed = name_embeddings(encoder.sentence_encoder, names)
    assert torch.allclose(encoder._names, computed, atol=1e-6)
    save_name_embeddings(tmp_path, tower, names[:3], computed[:3])
    assert load_name_embeddings(tmp_path, tower, names[:3]) is not None
    assert load_name_embeddings(tmp_path, tower, names[1:4]) is None  # other names: recomputed by the caller
    assert load_name_embeddings(tmp_path, "hf-hub:someone/else", names[:3]) is None
    assert load_name_embeddings(tmp_path / "nothing-here", tower, names[:3]) is None
