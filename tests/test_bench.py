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
    from demo_world.free_corpus import build_free_split

    rows = [(r["image"].convert("RGB"), r["objects"]) for r in build_free_split("scenes", "test", 2)]
    m = explanations.explanation_pointing(Services(load_catalog()).encoder("demo-clip"), rows, grid=6)
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


def test_first_minute_section_renders_before_and_after():
    """The "First minute" section from a result shaped like bench.first_minute's (no processes started here)."""
    from bench import first_minute

    calls = {n: {"latency_s": 0.2, "answered_after_start_s": 12.0} for n in first_minute.CALLS}
    tabs = {t: 1.5 for t in first_minute.TAB_RESULT}
    browser = {"page_to_tabs_s": tabs, "page_to_answer_s": tabs, "open_compare_to_plots_s": 0.4}
    process = {"server_up_s": 5.0, "load_avg_1min_at_start": 1.0, "load_avg_1min_at_end": 2.0}
    after = {"date": "now", "label": "after", "cold": calls,
             "warm": {**process, "warm_done_s": 11.0, "first_calls": calls, "browser": browser,
                      "cpu_s_at_server_up": 4.0, "cpu_s_at_warm_done": 12.5}}
    before = {"date": "then", "label": "before", "cold": calls, "page": {**process, "browser": {
        "page_to_tabs_s": tabs, "page_to_answer_s": dict.fromkeys(tabs), "open_compare_to_plots_s": 3.1}}}
    md = first_minute.markdown(after, before)
    assert md.startswith("## First minute") and "no warm start" in md and "no answer" in md
    assert "**not met**" not in md and md.count("| met |") == 9
    assert "4.0 s / 12.5 s" in md and "Before: not measured" in first_minute.markdown(after)


def test_speed_goals_say_whether_they_come_from_one_run_and_regenerate_readme(tmp_path, monkeypatch):
    """The speed-goals table of BENCHMARKS.md and README is rendered from the stored results of two benchmarks:
    it says "one run" only when both carry the same run of `python -m bench`, and each verdict follows its figure."""
    import json

    import bench.__main__ as main

    t = lambda ms: {"p50_ms": ms, "p95_ms": ms}  # noqa: E731
    arch = {"date": "d1", "load_average_1min": [0.5, 1.0],
            "text_query": {"max_tokens": 11, "max_abs_embedding_difference": 1e-7,
                           "timings": {"before (context 77)": t(57), "after (stops at the end token)": t(14.2)}},
            "categorise": {"image": "640x480", "identical_maps": True, "timings": {"before": t(480), "after": t(401)}},
            "blip_caption": {"beam": 3, "tokens_with_maps": 20, "identical_tokens": "identical",
                             "max_map_difference": 0.0, "timings": {"before": t(4000), "after": t(1900)}},
            "int8_on_demo_clip": {"n_images": 10, "n_captions": 50, "float32": {"t2i_R@1": 20.0},
                                  "int8 text MLPs": {"t2i_R@1": 19.8}},
            "mobileclip": {"S0": {"repo": "r/S0", "text_speedup": 2.5, "image_speedup": 2.1, "qualifies": True}}}
    tabs = {"Search": 1.2, "Compare": 2.3}
    first = {"date": "d2", "warm": {"warm_done_s": 14.0, "load_avg_1min_at_start": 1.0, "load_avg_1min_at_end": 1.5,
                                    "browser": {"page_to_answer_s": tabs}}}
    run = {"id": "2026-01-01 00:00:00 UTC", "command": "python -m bench", "benches": ["real_architectures", "first_minute"]}
    monkeypatch.setattr(main, "RESULTS", tmp_path)
    for name, r in (("real_architectures", arch), ("first_minute", first)):
        (tmp_path / f"{name}.json").write_text(json.dumps(r | {"run": run}))
    md = main.speed_goals_markdown()
    assert "All from one run: `python -m bench`, started 2026-01-01 00:00:00 UTC" in md
    assert "| 14.2 ms | ≤ 15 ms | met |" in md and "| 1.90 s | ≤ 2 s, identical | met |" in md
    assert "| 401 ms | ≤ 400 ms | **not met** |" in md and "| 14.0 s | ≤ 15 s | met |" in md
    assert "| 2.30 s | ≤ 2 s | **not met** |" in md and "| -0.2 points | ≥ -0.5 points | met |" in md
    assert "| 2.50× / 2.10× | ≥ 2× / ≥ 2× to join | joins |" in md
    (tmp_path / "first_minute.json").write_text(json.dumps(first | {"run": run | {"id": "later"}}))
    assert "**Not from one run**" in main.speed_goals_markdown()
    readme = tmp_path / "README.md"
    readme.write_text(f"intro\n{main.SPEED_START}\nold table\n{main.SPEED_END}\nafter\n")
    assert main.regenerate_readme(md, readme)
    text = readme.read_text()
    assert "old table" not in text and "| 14.2 ms | ≤ 15 ms | met |" in text and text.endswith("after\n")
    assert text.startswith("intro\n") and "## Speed goals" not in text
    readme.write_text("no markers\n")
    assert not main.regenerate_readme(md, readme) and readme.read_text() == "no markers\n"


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


@pytest.mark.slow
def test_gradio_overhead_smoke():
    """The API-overhead benchmark against the trivial app only (the full app's server takes longer to start)."""
    from bench import gradio_overhead

    r = gradio_overhead.measure(rounds=2, only="ping", apps=("tiny",))
    assert r["apps"]["tiny"]["blocks"] == 2 and set(r["new_session_ms_textboxes"]) == {50, 200}
    names = {"tiny ping, gradio_client", "tiny ping, queue protocol", "tiny ping, /call (new session)"}
    assert names <= set(r["calls"])
    assert all(v["p50_ms"] > 0 for v in r["calls"].values()) and r["gaps"] == {}
    full = {"p50_ms": 20.0, "p95_ms": 30.0, "mean_ms": 22.0}
    r["calls"]["full ping, queue protocol"] = full
    r["gaps"] = {"full ping, queue protocol": {"median_ms": 1.0, "mean_ms": 1.5, "se_ms": 0.5}}
    r["apps"]["full"] = {"blocks": 129, "new_session_ms": 7.0}
    md = gradio_overhead.markdown({"date": "now", "only": "ping", **r})
    assert md.startswith("## API overhead") and '--only "ping"' in md
    assert "| full ping, queue protocol | +1.0 | +1.5 ± 1.0 |" in md and "full: 129 blocks, 7.00 ms" in md


@pytest.mark.slow
def test_private_collections_benchmark_smoke(tmp_path):
    """The your-pictures bench on four small photos with the default model: timed, memory sampled, rendered."""
    from bench import private_collections as bench
    from core.catalog import load_catalog

    bench.make_photos(tmp_path, 4, size=(256, 192))
    m = bench.measure_one(load_catalog().search_models()[0], tmp_path, repeats=1)
    assert m["pictures"] == 4 and m["median_s"] > 0 and m["held_mb"] > 0 and m["peak_extra_rss_mb"] >= 0
    r = {"date": "now", "pictures": 4, "size": "256x192", "jpeg_mb_total": 0.1, "repeats": 1, "models": [m],
         "end_to_end": {"model": m["model"], "pictures": 4, "total_s": 1.0, "build_s": 0.5}, "goal_s": 20.0,
         "load_average_1min": [0.0, 0.0]}
    assert "Your pictures" in bench.markdown(r) and "met" in bench.markdown(r)
