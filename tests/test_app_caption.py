"""`/caption` through a real Gradio server."""
from pathlib import Path

import numpy as np
import pytest
from gradio_client import Client, handle_file
from gradio_client.exceptions import AppError
from PIL import Image

EXAMPLES = sorted(Path("assets/examples/scenes").glob("*.png"))


@pytest.fixture(scope="module")
def client(app_url):
    return Client(app_url, verbose=False)


def test_caption_shape(client):
    out = client.predict(handle_file(str(EXAMPLES[0])), "", 3, api_name="/caption")
    assert set(out) == {"caption", "tokens", "attention"}
    assert out["caption"] and len(out["tokens"]) == len(out["attention"])
    maps = np.array(out["attention"])
    assert maps.ndim == 3 and maps.shape[1] == maps.shape[2]
    assert np.allclose(maps.reshape(len(maps), -1).sum(1), 1, atol=1e-3)


def test_greedy_and_model_choice(client):
    out = client.predict(handle_file(str(EXAMPLES[1])), "demo-captioner", 1, api_name="/caption")
    assert out["tokens"]
    # a model off the picker (the seeds' show-attend-tell) still answers when an API call names it
    assert client.predict(handle_file(str(EXAMPLES[1])), "demo-sat-captioner", 1, api_name="/caption")["tokens"]


@pytest.mark.parametrize("beam, message", [(0, "beam size"), (50, "beam size"), (2.5, "beam size")])
def test_bad_beam(client, beam, message):
    with pytest.raises(AppError, match=message):
        client.predict(handle_file(str(EXAMPLES[0])), "", beam, api_name="/caption")


def test_bad_images(client, tmp_path):
    text = tmp_path / "x.png"
    text.write_text("not a picture")
    with pytest.raises(AppError, match="not an image"):
        client.predict(handle_file(str(text)), "", 3, api_name="/caption")
    with pytest.raises(AppError, match="Upload a photo"):
        client.predict(None, "", 3, api_name="/caption")
    with pytest.raises(AppError, match="Unknown model"):
        client.predict(handle_file(str(EXAMPLES[0])), "nope", 3, api_name="/caption")
    tiny = tmp_path / "tiny.png"
    Image.new("LA", (1, 1)).save(tiny)
    with pytest.raises(AppError, match="too small"):
        client.predict(handle_file(str(tiny)), "", 2, api_name="/caption")
    grey = tmp_path / "grey.png"
    Image.new("LA", (90, 60), (120, 200)).save(grey)
    assert client.predict(handle_file(str(grey)), "", 2, api_name="/caption")["tokens"]
    # and the app still answers a normal request right after
    assert client.predict(handle_file(str(EXAMPLES[0])), "", 1, api_name="/caption")["caption"]
