"""`/compare` through a real Gradio server, and the API surface of the whole app."""
import json
from pathlib import Path

import pytest
from gradio_client import Client
from gradio_client.exceptions import AppError


@pytest.fixture(scope="module")
def client(app_url):
    return Client(app_url, verbose=False)


def test_compare_returns_the_stored_figures(client):
    rows = client.predict("", api_name="/compare")
    assert rows and set(rows[0]) == {"model", "dataset", "split", "metric", "value", "command", "lookalike", "measured"}
    assert {"demo-clip", "dual-minilm-cnn", "cnn-baseline", "demo-captioner"} <= {r["model"] for r in rows}
    stored = json.loads(Path("assets/models/cnn-baseline/eval/demo_world_free--products-test.json").read_text())
    acc = next(r["value"] for r in rows if r["model"] == "cnn-baseline" and r["metric"] == "supervised accuracy"
               and r["dataset"] == "demo_world_free" and r["split"] == "products/test")
    assert acc == pytest.approx(stored["styles"]["supervised"]["accuracy"], abs=1e-4)


def test_compare_filters_by_model(client):
    rows = client.predict("demo-clip", api_name="/compare")
    assert rows and {r["model"] for r in rows} == {"demo-clip"}
    with pytest.raises(AppError, match="Unknown model"):
        client.predict("nope", api_name="/compare")


def test_api_lists_exactly_the_documented_endpoints(client):
    api = client.view_api(print_info=False, return_format="dict")
    assert set(api["named_endpoints"]) == {"/search", "/explain", "/categorise", "/caption", "/compare",
                                                "/evaluations", "/build_collection", "/forget_collection"}
    assert not api["unnamed_endpoints"]
