"""The Search tab and `/search` API, driven through a real Gradio server with gradio_client."""
import io
from pathlib import Path

import numpy as np
import pytest
from gradio_client import Client, handle_file
from PIL import Image



@pytest.fixture(scope="module")
def app_client(app_url):
    return Client(app_url, verbose=False)


def _png_of(data_uri: str) -> Image.Image:
    import base64

    assert data_uri.startswith("data:image/png;base64,")
    return Image.open(io.BytesIO(base64.b64decode(data_uri.split(",", 1)[1])))


def test_text_search_returns_ranked_results(app_client):
    results = app_client.predict("a dog on a blue background", None, 7, "", "", api_name="/search")
    assert len(results) == 7
    assert set(results[0]) == {"id", "score", "caption", "image", "never_seen_in_training", "far_from_known",
                               "photo_reading"}
    assert results[0]["far_from_known"] is False and results[0]["photo_reading"] == ""
    scores = [r["score"] for r in results]
    assert scores == sorted(scores, reverse=True) and all(-1 <= s <= 1 for s in scores)
    assert _png_of(results[0]["image"]).size == (128, 128)


@pytest.fixture(scope="module")
def objects_by_id():
    """What every picture of the scenes collection shows, from the regenerated splits (not from the index)."""
    from demo_world.free_corpus import iter_free_scenes

    return {s.id: {i.concept.name for i in s.items}
            for split in ("test", "heldout") for s, _ in iter_free_scenes(split, 1000)}


CONCEPTS = ["dog", "car", "pizza", "rocket", "laptop", "cat", "banana", "flamingo", "sunflower", "guitar", "umbrella",
            "apple", "bicycle", "tiger", "octopus", "sunglasses"]  # fixed before measuring; the last three held out


def test_default_model_finds_named_concepts_far_above_chance(app_client, objects_by_id):
    """"a <concept>" with the default model: a top-5 picture shows it for at least 4 of these concepts (chance:
    about 0.1 of them, each shown in ~3 of the 2,000 pictures; measured: 7 of 16, in line with the stored
    "a photo of a <concept>" hit@5 of 40.6% on seen concepts)."""
    found = []
    for concept in CONCEPTS:
        results = app_client.predict(f"a {concept}", None, 5, "", "", api_name="/search")
        found += [concept] if any(concept in objects_by_id[r["id"]] for r in results) else []
    assert len(found) >= 4, found


def test_pictures_of_never_seen_concepts_say_so(app_client, objects_by_id):
    from demo_world.concepts import load_concepts

    heldout = {c.name for c in load_concepts() if c.split == "heldout"}
    labelled = 0
    for query in ("a tiger", "an octopus on a dark background", "a pair of sunglasses"):
        for r in app_client.predict(query, None, 20, "", "", api_name="/search"):
            assert sorted(r["never_seen_in_training"]) == sorted(objects_by_id[r["id"]] & heldout), r["id"]
            labelled += bool(r["never_seen_in_training"])
    assert labelled  # half the collection shows a held-out concept


def test_image_search_finds_the_same_image_first(app_client, tmp_path):
    first = app_client.predict("a cat", None, 1, "", "", api_name="/search")[0]
    path = tmp_path / "query.png"
    _png_of(first["image"]).save(path)
    results = app_client.predict("", handle_file(str(path)), 3, "", "", api_name="/search")
    assert results[0]["id"] == first["id"] and results[0]["score"] > 0.99


def test_pictures_the_app_cannot_answer_are_flagged_for_api_callers(app_client, tmp_path):
    """far_from_known is a field a client can test, on every hit; the world's own pictures never carry it."""
    blank, noise = tmp_path / "blank.png", tmp_path / "noise.png"
    Image.new("RGB", (300, 200), (240, 240, 240)).save(blank)
    Image.fromarray(np.random.default_rng(0).integers(0, 256, (256, 256, 3), dtype=np.uint8)).save(noise)
    for path in (blank, noise):
        hits = app_client.predict("", handle_file(str(path)), 3, "", "", api_name="/search")
        assert hits and all(h["far_from_known"] and not h["photo_reading"] for h in hits), path.name
    own = Path("assets/examples/scenes").glob("test-*.png")
    for path in own:
        assert not app_client.predict("", handle_file(str(path)), 1, "", "", api_name="/search")[0]["far_from_known"]
    out = app_client.predict(handle_file(str(noise)), "", "", "descriptive", api_name="/categorise")
    assert out["far_from_known"] is True and out["photo_reading"] == ""


def test_products_collection(app_client):
    results = app_client.predict("a laptop isolated on white", None, 3, "dual-minilm-cnn", "demo products (test split + never-seen products)",
                                 api_name="/search")
    assert all(r["id"].startswith("free-prod-") for r in results)
    assert any("laptop" in r["caption"] for r in results)


@pytest.mark.parametrize(
    "args, message",
    [
        (("", None, 5, "", ""), "Type a description"),
        (("   ", None, 5, "", ""), "Type a description"),
        (("a dog", None, 0, "", ""), "1 to 50"),
        (("a dog", None, 51, "", ""), "1 to 50"),
        (("a dog", None, 5, "no-such-model", ""), "demo-clip"),
        (("a dog", None, 5, "", "no such collection"), "demo scenes"),
    ],
)
def test_bad_input_gets_a_clear_message(app_client, args, message):
    from gradio_client.exceptions import AppError

    with pytest.raises(AppError, match=message):
        app_client.predict(*args, api_name="/search")
    assert app_client.predict("a dog", None, 1, "", "", api_name="/search")  # still serving


def test_not_an_image_and_text_plus_image(app_client, tmp_path):
    from gradio_client.exceptions import AppError

    fake = tmp_path / "notes.png"
    fake.write_text("this is not an image")
    with pytest.raises(AppError, match="not an image"):
        app_client.predict("", handle_file(str(fake)), 3, "", "", api_name="/search")
    real = tmp_path / "real.png"
    Image.new("RGB", (64, 64), "red").save(real)
    with pytest.raises(AppError, match="not both"):
        app_client.predict("a dog", handle_file(str(real)), 3, "", "", api_name="/search")


def test_long_query_is_truncated_not_refused(app_client):
    long = "a dog on a blue background " * 40
    results = app_client.predict(long, None, 3, "", "", api_name="/search")
    assert len(results) == 3
    assert np.isfinite([r["score"] for r in results]).all()


def test_explain_endpoint_gives_a_map_and_word_weights(app_client, tmp_path):
    hit = app_client.predict("a dog", None, 1, "demo-clip", "demo scenes (test split + never-seen concepts)", api_name="/search")[0]
    path = tmp_path / "hit.png"
    _png_of(hit["image"]).save(path)
    out = app_client.predict(handle_file(str(path)), "a dog", "demo-clip", api_name="/explain")
    assert set(out) == {"heatmap", "tokens", "score", "method"}
    heat = np.array(out["heatmap"])
    assert heat.shape == (6, 6) and heat.min() >= 0 and heat.max() == pytest.approx(1.0)
    assert [t["token"] for t in out["tokens"]] == ["a", "dog"]
    assert out["score"] == pytest.approx(hit["score"], abs=2e-3)  # the hit's own cosine (PNG round trip aside)
    assert out["method"] == "occlusion"


@pytest.mark.parametrize("args, message", [
    ((None, "a dog", ""), "Upload the image"),
    (("IMAGE", "  ", ""), "Type a text to explain"),
    (("IMAGE", "a dog", "cnn-baseline"), "model"),
])
def test_explain_endpoint_refuses_bad_input_clearly(app_client, args, message):
    from gradio_client.exceptions import AppError
    from pathlib import Path

    image = handle_file(str(sorted(Path("assets/examples/products").glob("*.png"))[0]))
    args = tuple(image if a == "IMAGE" else a for a in args)
    with pytest.raises(AppError, match=message):
        app_client.predict(*args, api_name="/explain")
