"""The open-vocabulary world: the concept table, free layouts, geometry-true captions, held-out concepts kept
out of every training split, and the CHAIR / position / concept measures."""
import numpy as np
import pytest

from PIL import Image

from demo_world.concepts import (
    CATEGORIES, CONCEPT_TABLE, NEVER_HELD_OUT, build_concepts, load_concepts, to_tsv, with_article,
)
from demo_world.free_captions import free_scene_captions
from demo_world.free_corpus import (
    PRODUCT_SPLITS, SCENE_SPLITS, TRAINING_SPLITS, build_free_split, iter_free_products, iter_free_scenes, load_split,
    undecoded, write_free_corpus,
)
from demo_world.free_scenes import (
    COLOUR_NAMES, COLOURS, Background, FreeItem, FreeScene, colour_name, position_label, relation, render_free,
)
from demo_world.icons import _svg_dir, render_icon
from evaluation.hallucination import Lexicon, chair, position_accuracy, position_claims
from models.captioner import tokenize


@pytest.fixture(scope="module")
def concepts():
    return load_concepts()


@pytest.fixture(scope="module")
def lexicon():
    return Lexicon.from_concept_table()


# --- the concept table ------------------------------------------------------------------------------------


def test_concept_table_counts_and_categories(concepts):
    names = [c.name for c in concepts]
    assert len(concepts) >= 800 and len(set(names)) == len(names)
    products = [c for c in concepts if c.is_product]
    assert len(products) >= 150 and {c.category for c in products} == set(CATEGORIES)
    held = [c for c in concepts if c.split == "heldout"]
    assert len(held) >= 150 and sum(c.is_product for c in held) >= 30
    for category in CATEGORIES:  # every category keeps seen and held-out products
        splits = {c.split for c in products if c.category == category}
        assert splits == {"train", "heldout"}, category


def test_concept_codepoints_exist_in_openmoji(concepts):
    svg = _svg_dir()
    assert all((svg / f"{c.codepoint}.svg").is_file() for c in concepts)
    assert len({c.codepoint for c in concepts}) == len(concepts)
    for c in concepts[::97]:  # a sample renders
        assert render_icon(c.codepoint, 24)[..., 3].max() > 0.5, c.name


def test_icons_models_were_trained_on_are_never_held_out(concepts):
    by_cp = {c.codepoint: c for c in concepts}
    never = NEVER_HELD_OUT.split()
    assert len(set(never)) == len(never) == 103
    assert all(by_cp[cp].split == "train" for cp in never)


def test_synonyms_never_name_another_concept_or_a_colour(concepts):
    names = {c.name for c in concepts}
    for c in concepts:
        assert not (set(c.synonyms) & names) and c.name not in c.synonyms
        assert not any(ch.isdigit() for s in c.synonyms for ch in s)
    assert not (set(COLOUR_NAMES) & {n for c in concepts for n in c.names})


def test_concept_table_is_reproducible():
    pytest.importorskip("emoji")
    assert to_tsv(build_concepts()) == CONCEPT_TABLE.read_text()


def test_articles():
    assert [with_article(n) for n in ("dog", "owl", "grapes", "bus", "umbrella with rain drops")] == [
        "a dog", "an owl", "some grapes", "a bus", "an umbrella with rain drops"]


# --- free layouts ------------------------------------------------------------------------------------------


def test_colour_names_are_nearest():
    for name, rgb in COLOURS.items():
        assert colour_name(rgb) == name
    assert colour_name((250, 10, 10)) == "red" and colour_name((5, 5, 40)) in ("black", "navy blue")


def test_free_scenes_are_deterministic_and_well_formed():
    a = list(iter_free_scenes("val", 40, seed=3))
    assert a == list(iter_free_scenes("val", 40, seed=3)) and a != list(iter_free_scenes("val", 40, seed=4))
    counts = set()
    for scene, captions in iter_free_scenes("val", 300):
        counts.add(len(scene.items))
        assert len(captions) == 5 and len(set(captions)) == 5
        assert len({it.concept.name for it in scene.items}) == len(scene.items)
        for it in scene.items:
            x0, y0, x1, y1 = it.box
            assert 0 <= x0 < x1 <= 1 and 0 <= y0 < y1 <= 1 and abs((x1 - x0) - (y1 - y0)) < 1e-9
    assert counts == {1, 2, 3, 4}


def test_rendering_is_the_same_picture_at_any_size():
    for scene, _ in iter_free_scenes("test", 8):
        small = np.asarray(render_free(scene, 128)).astype(float)
        large = np.asarray(render_free(scene, 512).resize((128, 128), resample=4)).astype(float)  # BOX
        assert small.shape == (128, 128, 3) and np.abs(small - large).mean() < 6, scene.id


def test_boxes_match_pixels():
    for scene, _ in iter_free_scenes("test", 6, seed=11):
        img = np.asarray(render_free(scene, 128)).astype(int)
        bg = (scene.background.render(128) * 255 + 0.5).astype(int)
        differs = np.abs(img - bg).sum(-1) > 40  # (H, W) pixels that are not background
        inside = np.zeros_like(differs)
        for it in scene.items:
            x0, y0, x1, y1 = (round(v * 128) for v in it.box)
            inside[y0:y1, x0:x1] = True
        assert differs[inside].any() and not differs[~inside].any(), scene.id


def test_products_are_balanced_and_described():
    counts = dict.fromkeys(CATEGORIES, 0)
    for scene, captions, description in iter_free_products("test", 70):
        counts[scene.category] += 1
        assert scene.items[0].concept.name in description and len(captions) == 5
    assert set(counts.values()) == {10}


def test_held_out_concepts_never_occur_in_training_splits(concepts):
    held = {c.name for c in concepts if c.split == "heldout"}
    for split in TRAINING_SPLITS:
        for scene, _ in iter_free_scenes(split, 2000 if split == "train" else SCENE_SPLITS[split]):
            assert not held & {it.concept.name for it in scene.items}, (split, scene.id)
        for scene, _, _ in iter_free_products(split, PRODUCT_SPLITS[split]):
            assert scene.items[0].concept.name not in held
    for scene, _ in iter_free_scenes("heldout", 200):
        assert len(held & {it.concept.name for it in scene.items}) == 1
    assert all(s.items[0].concept.name in held for s, _, _ in iter_free_products("heldout", 70))


def test_parquet_records_carry_the_concept_split(tmp_path):
    data = build_free_split("scenes", "heldout", 6)
    assert {"background_style", "objects"} <= set(data.column_names)
    assert all(any(o["concept_split"] == "heldout" for o in objs) for objs in data["objects"])
    assert data[0]["image"].size == (128, 128)


def test_parquet_bytes_are_reproducible():
    a, b = (undecoded(build_free_split("scenes", "val", 5, seed=0)) for _ in range(2))
    assert a["image"] == b["image"] and a["captions"] == b["captions"]
    assert a["image"] != undecoded(build_free_split("scenes", "val", 5, seed=1))["image"]


def test_write_and_load_corpus(tmp_path):
    out = write_free_corpus(tmp_path / "dw", scale=0.01, splits=["test"])
    assert (out / "README.md").read_text().startswith("---\nlicense: cc-by-sa-4.0")
    test = load_split(out, "scenes", "test")
    assert {"id", "image", "captions", "objects", "background", "category", "description"} <= set(test.column_names)
    assert len(test) == 10 and isinstance(test[0]["image"], Image.Image) and test[0]["image"].size == (128, 128)
    assert set(load_split(out, "products", "test")["category"]) <= set(CATEGORIES)
    with pytest.raises(FileNotFoundError):
        load_split(out, "scenes", "train")  # only the splits asked for are written


# --- captions from the geometry ------------------------------------------------------------------------------


def _scene(*boxes, names=("dog", "cat", "car")):
    by_name = {c.name: c for c in load_concepts()}
    items = tuple(FreeItem(by_name[n], b) for n, b in zip(names, boxes))
    return FreeScene("t", Background("plain", (200, 30, 30)), items)


def test_position_words_only_where_true():
    assert position_label((0.02, 0.02, 0.22, 0.22)) == "top left"
    assert position_label((0.4, 0.02, 0.6, 0.22)) == "top"
    assert position_label((0.4, 0.4, 0.6, 0.6)) == "center"
    assert position_label((0.25, 0.4, 0.45, 0.6)) == ""  # centre x 0.35: neither left nor center
    assert position_label((0.1, 0.1, 0.9, 0.9)) == ""  # fills the frame
    left, right = (0.05, 0.4, 0.25, 0.6), (0.7, 0.4, 0.9, 0.6)
    a, b = _scene(left, right).items
    assert relation(a, b, a_in_front=False) == "to the left of" and relation(b, a, True) == "to the right of"


def test_generated_position_words_match_the_geometry(lexicon):
    """Every position or relation claim in 2,000 generated captions is true of the boxes (the metric's check)."""
    tokens, objects = [], []
    for scene, captions in iter_free_scenes("test", 400):
        objs = [{"name": it.concept.name, "box": it.box} for it in scene.items]
        for caption in captions:
            tokens.append(tokenize(caption))
            objects.append(objs)
    result = position_accuracy(tokens, objects, lexicon)
    assert result["n_position_claims"] > 1000 and result["position_accuracy"] == 100.0
    assert chair(tokens, [[o["name"] for o in objs] for objs in objects], lexicon)["CHAIR_i"] == 0.0


def test_captions_of_a_known_scene():
    """The dog sits top left, the cat bottom right: every caption names both, and no caption places either
    anywhere else."""
    scene = _scene((0.02, 0.02, 0.22, 0.22), (0.75, 0.75, 0.95, 0.95))
    lex = Lexicon.from_concept_table()
    objs = [{"name": "dog", "box": scene.items[0].box}, {"name": "cat", "box": scene.items[1].box}]
    for seed in range(5):
        for caption in free_scene_captions(scene, np.random.default_rng(seed)):
            named = set().union(*(m.concepts for m in lex.mentions(tokenize(caption))))
            assert {"dog", "cat"} <= named, caption
            assert all(position_claims(tokenize(caption), objs, lex)), caption


# --- CHAIR and position accuracy against hand-computed examples ---------------------------------------------


def test_chair_hand_computed():
    lex = Lexicon({"dog": ["puppy"], "cat": [], "teddy bear": [], "bear": [], "fork and knife": []})
    captions = [
        "a dog and a cat on red",  # 2 mentions, 0 hallucinated (image: dog, cat)
        "a puppy next to a bear",  # 2 mentions: puppy = dog (present), bear (absent) -> 1 hallucinated
        "a teddy bear and a fork and knife",  # 2 mentions: teddy bear (present), fork and knife (absent) -> 1
        "a blue background",  # no mention
    ]
    present = [["dog", "cat"], ["dog"], ["teddy bear"], ["cat"]]
    result = chair([tokenize(c) for c in captions], present, lex)
    assert result["n_mentions"] == 6 and result["n_hallucinated"] == 2
    assert result["CHAIR_i"] == pytest.approx(100 * 2 / 6)
    assert result["CHAIR_s"] == pytest.approx(100 * 2 / 4)


def test_position_claims_hand_computed():
    lex = Lexicon({"dog": [], "cat": []})
    dog, cat = (0.05, 0.05, 0.25, 0.25), (0.7, 0.7, 0.9, 0.9)  # top left, bottom right
    objs = [{"name": "dog", "box": dog}, {"name": "cat", "box": cat}]
    claims = lambda text: position_claims(tokenize(text), objs, lex)  # noqa: E731
    assert claims("a dog at the top left and a cat in the lower right") == [True, True]
    assert claims("a dog at the bottom left and a cat on the right") == [False, True]
    assert claims("a dog to the left of a cat") == [True]
    assert claims("a cat above a small dog") == [False]
    assert claims("a dog in the middle") == [False]
    assert claims("a dog and a cat on a red background") == []
    assert claims("a horse at the top") == []  # not a known object: CHAIR's business
    result = position_accuracy([tokenize("a dog at the top left and a cat in the middle")], [objs], lex)
    assert result == {"position_accuracy": 50.0, "n_position_claims": 2}


# --- the evaluate command on the open world --------------------------------------------------------------------


class _EchoCaptioner:
    """Captions every picture with the given function of its row: a stand-in with the captioner interface."""

    def __init__(self, answers):
        self.answers = iter(answers)

    def caption(self, image, beam_size=3):
        from models.captioner import CaptionResult

        text = next(self.answers)
        tokens = tokenize(text)
        return CaptionResult(text, tokens, np.full((len(tokens), 8, 8), 1 / 64), 0.0)


def test_captioning_results_report_chair_and_positions():
    from evaluation.evaluate import CAPTION_SETTINGS, captioning_results

    data = build_free_split("scenes", "test", 12)
    truthful = [caps[0] for caps in data["captions"]] * len(CAPTION_SETTINGS)
    out = captioning_results(_EchoCaptioner(truthful), data)["captioning"]["beam 3"]
    assert out["CHAIR_i"] == 0.0 and out["CHAIR_s"] == 0.0 and out["n_mentions"] >= 12
    assert out["n_position_claims"] == 0 or out["position_accuracy"] == 100.0
    liar = ["a dog and a cat at the top left"] * (12 * len(CAPTION_SETTINGS))
    out = captioning_results(_EchoCaptioner(liar), data)["captioning"]["beam 1"]
    present = [{o["name"] for o in objs} for objs in data["objects"]]
    wrong = sum(("dog" not in p) + ("cat" not in p) for p in present)
    assert out["CHAIR_i"] == pytest.approx(100 * wrong / 24)


@pytest.mark.slow
def test_evaluate_reports_seen_and_held_out_concepts(tmp_path):
    from core.catalog import load_catalog
    from core.services import Services
    from evaluation.evaluate import evaluate

    corpus = tmp_path / "demo_world_free"
    (corpus / "scenes").mkdir(parents=True)
    build_free_split("scenes", "heldout", 24).to_parquet(str(corpus / "scenes" / "heldout-00000-of-00001.parquet"))
    result = evaluate(Services(load_catalog()), "demo-clip", str(corpus), "scenes", "heldout")
    concepts = result["concepts"]
    assert set(concepts["retrieval"]) == {"heldout"} and concepts["retrieval"]["heldout"]["n_captions"] == 120
    assert 0 <= concepts["hit"]["heldout"]["hit@5"] <= 100 and concepts["hit"]["seen"]["n_concepts"] > 0
    zs = concepts["zero_shot"]["heldout"]
    assert zs["n_images"] == 24 and zs["top1"] <= zs["top5"]
    assert zs["n_classes"] == sum(c.split == "heldout" for c in load_concepts())

