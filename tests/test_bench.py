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


@pytest.mark.slow
def test_scale_benchmark_smoke(monkeypatch):
    """The scale benchmark on 3,000 vectors (with the exact-search limit lowered so an IVF index is chosen)."""
    import numpy as np

    import index.store
    from bench import scale

    monkeypatch.setattr(index.store, "FLAT_MAX", 1000)
    rng = np.random.default_rng(0)
    base = rng.normal(size=(300, 32)).astype(np.float32)
    base /= np.linalg.norm(base, axis=1, keepdims=True)
    xb = scale.expand(base, 3000, noise=0.05)
    assert xb.shape == (3000, 32) and np.allclose(np.linalg.norm(xb, axis=1), 1, atol=1e-5)
    lifted = scale.lift(xb[:10], 64)
    assert lifted.shape == (10, 64) and np.allclose(lifted @ lifted.T, xb[:10] @ xb[:10].T, atol=1e-4)  # isometry
    xq = scale.expand(base[:40], 40, noise=0.05, seed=1)
    r = scale.run_one(xb, xq[:20], xq[20:], "smoke")
    assert r["ours"]["factory"].startswith("IVF") and 0 <= r["ours"]["recall@10"] <= 1
    assert "scale" in scale.markdown({"date": "now", "runs": [r]}).lower()


def test_ray_embedding_rates_and_table():
    """The Ray benchmark's arithmetic and table on made-up timings (the benchmark itself starts Ray clusters)."""
    from bench import ray_embedding

    assert ray_embedding.steady_rate([(0.0, 1.0, 64), (1.0, 2.5, 64), (0.5, 2.0, 32)]) == pytest.approx(64)
    r = ray_embedding.rates({"seconds": 7.0, "images_per_s": 100.0}, {"seconds": 24.4, "images_per_s": 500 / 5.5}, 500)
    assert r["single"]["fixed_s"] == pytest.approx(2) and r["ray"]["fixed_s"] == pytest.approx(18.9)
    assert r["overhead"] == pytest.approx(0.1)
    md = ray_embedding.markdown({"date": "now", "ray": "2.60.0", "load_average_before_after": [1.0, 2.0],
                                 "runs": [{"model": "demo-clip", "cpus": 1} | r]})
    assert "| demo-clip | 1 | 500 | 100.0 images/s | 90.9 images/s | +10% | ≤ +15% | met |" in md
