"""`/categorise` through a real Gradio server."""
from pathlib import Path

import pytest
from gradio_client import Client, handle_file
from gradio_client.exceptions import AppError
from PIL import Image

from demo_world.concepts import CATEGORIES

EXAMPLES = sorted(Path("assets/examples/products").glob("*.png"))


@pytest.fixture(scope="module")
def client(app_url):
    return Client(app_url, verbose=False)


def test_catalogue_categories(client):
    watch = next(p for p in EXAMPLES if p.name.endswith("alarm-clock.png"))
    out = client.predict(handle_file(str(watch)), "", "cnn-baseline", "descriptive", api_name="/categorise")
    assert set(out) == {"probabilities", "top", "margin", "doubtful", "far_from_known", "photo_reading"}
    assert out["far_from_known"] is False and out["photo_reading"] == ""
    assert set(out["probabilities"]) == set(CATEGORIES)
    assert out["top"] == "watches" and 0 <= out["margin"] <= 1
    assert out["doubtful"] == (out["margin"] < 0.2)
    zero_shot = client.predict(handle_file(str(watch)), "", "", "bare", api_name="/categorise")
    assert set(zero_shot["probabilities"]) == set(CATEGORIES)
    assert abs(sum(out["probabilities"].values()) - 1) < 1e-4


def test_custom_labels_and_baseline(client):
    kite = next(p for p in EXAMPLES if p.name.endswith("baby-bottle.png"))
    out = client.predict(handle_file(str(kite)), "toy, kitchen tool, computer", "dual-minilm-cnn", "", api_name="/categorise")
    assert list(out["probabilities"]) and set(out["probabilities"]) == {"toy", "kitchen tool", "computer"}
    out = client.predict(handle_file(str(kite)), "", "cnn-baseline", "descriptive", api_name="/categorise")
    assert out["top"] == "baby care"


@pytest.mark.parametrize(
    "labels, model, message",
    [("only-one", "demo-clip", "at least two labels"), ("", "nope", "Unknown model"),
     ("a, b", "cnn-baseline", "supervised classifier"), (",".join(f"l{i}" for i in range(101)), "demo-clip", "at most 100")],
)
def test_bad_input(client, labels, model, message):
    with pytest.raises(AppError, match=message):
        client.predict(handle_file(str(EXAMPLES[0])), labels, model, "descriptive", api_name="/categorise")


def test_odd_images_are_handled(client, tmp_path):
    cmyk = tmp_path / "cmyk.jpg"
    Image.new("CMYK", (300, 200), (0, 200, 200, 0)).save(cmyk)
    out = client.predict(handle_file(str(cmyk)), "", "", "bare", api_name="/categorise")
    assert out["top"] in CATEGORIES
    text = tmp_path / "x.png"
    text.write_text("nope")
    with pytest.raises(AppError, match="not an image"):
        client.predict(handle_file(str(text)), "", "", "descriptive", api_name="/categorise")
    with pytest.raises(AppError, match="Upload a product photo"):
        client.predict(None, "", "", "descriptive", api_name="/categorise")
