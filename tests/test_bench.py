"""A smoke run of the benchmarks on tiny inputs: they run and render; the figures themselves are in BENCHMARKS.md."""
import pytest

from bench import search_latency, throughput
from bench.__main__ import throughput_markdown


@pytest.mark.slow
def test_benchmarks_smoke():
    from core.catalog import load_catalog
    from core.services import Services

    services = Services(load_catalog())
    r = {
        "machine": search_latency.machine(), "date": "now",
        "build_index": [throughput.build_index_rate(services, "demo-clip", n=20)],
        "categorise": [throughput.categorise_rate(services, "demo-clip", n=14)],
        "caption": [throughput.caption_latency(services, services.catalog.models_for("caption")[0], n=2)],
    }
    assert r["build_index"][0]["images_per_s"] > 0
    assert set(r["caption"][0]) >= {"beam1", "beam3", "beam5"}
    md = throughput_markdown(r)
    assert "images/s" in md and "beam 3" in md
    stages = search_latency.in_process(search_latency.queries(5))
    assert set(stages) == {"encode", "faiss", "assemble", "total"}
