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


@pytest.mark.slow
def test_explanations_benchmark_smoke():
    """The explanation bench on two scenes with the demo CLIP: every figure present, rendered."""
    from bench import explanations
    from core.catalog import load_catalog
    from core.services import Services
    from demo_world.corpus import build_split

    rows = [(r["image"].convert("RGB"), r["objects"]) for r in build_split("scenes", "test", 2)]
    m = explanations.measure(Services(load_catalog()).encoder("demo-clip"), rows, grid=6)
    assert m["objects"] >= 2 and set(m["pointing"]) == {"occlusion", "gradient"}
    assert 0 < m["pointing_chance"] < 100 and -1 <= m["agreement_spearman_mean"] <= 1
    md = explanations.markdown({"date": "now", "scenes": 2, "grid": 6, "models": {"demo-clip": m}})
    assert "| demo-clip | " in md


def test_real_architectures_interleaves_and_renders():
    from bench import real_architectures as ra

    calls = []
    r = ra.interleaved({"a": lambda i: calls.append(("a", i)), "b": lambda i: calls.append(("b", i))}, 3)
    assert calls == [("a", 0), ("b", 0), ("a", 0), ("b", 0), ("a", 1), ("b", 1), ("a", 2), ("b", 2)]
    assert r["a"]["n"] == 3
    t = lambda before, after: {"before": {"p50_ms": before, "p95_ms": before}, "after": {"p50_ms": after, "p95_ms": after}}  # noqa: E731
    fake = {"date": "now", "torch_threads": 2, "repeats": 3,
            "text_query": {"max_tokens": 11, "max_abs_embedding_difference": 0.0,
                           "timings": {**t(100, 12), "cache": {"p50_ms": 0.01, "p95_ms": 0.01}}},
            "categorise": {"timings": t(2600, 450)}, "siglip_image_search": {"index": "1000", "timings":
                                                                              {"x": {"p50_ms": 390, "p95_ms": 400}}},
            "blip_caption": {"beam": 3, "tokens_with_maps": 20, "timings": t(4000, 2500)}}
    md = ra.markdown(fake)
    assert "| 100 ms | 12 ms (p95 12) | 8.3× | ≤ 15 ms | met |" in md
    assert "2500 ms (p95 2500) | 1.6× | ≤ 2000 ms | **not met** |" in md
