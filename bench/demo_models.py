"""The bundled models at a visitor's pace: one uploaded picture embedded, one text query encoded, one picture
captioned and categorised, in-process, with the app's thread settings.

    python -m bench.demo_models [--repeats 50] [--out bench/results/demo_models.json]

Uploads are the sizes visitors send (a 1024x768 photo, a 224 px example): the time covers decoding-free
preprocessing (pad to square, resize) and the image tower. Text queries are val-split captions never seen before by
the process (the app's query cache is bypassed). p50 / p95 over `repeats`, after two warm-up calls.
"""
from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path

import numpy as np

from bench import save_result

GOALS_MS = {"upload embedding": 30.0, "text query": 10.0}


def _timed(fn, repeats: int) -> dict:
    for _ in range(2):
        fn(0)
    times = []
    for i in range(repeats):
        t = time.perf_counter()
        fn(i)
        times.append(time.perf_counter() - t)
    ms = np.asarray(times) * 1000
    return {"p50_ms": float(np.percentile(ms, 50)), "p95_ms": float(np.percentile(ms, 95)), "n": repeats}


def run(repeats: int = 50) -> dict:
    from app import configure_threads
    from core.catalog import load_catalog
    from core.categorise import categorise
    from core.services import Services
    from demo_world.free_corpus import iter_free_scenes
    from demo_world.free_scenes import render_free

    configure_threads()
    services = Services(load_catalog())
    catalog = services.catalog
    search_model = catalog.picker_models("search")[0]
    captioner = catalog.picker_models("caption")[0]
    enc, cap = services.encoder(search_model), services.encoder(captioner)
    scenes = [s for s, _ in iter_free_scenes("val", repeats + 2)]
    photos = [render_free(s, 768).resize((1024, 768)) for s in scenes[:8]]  # a visitor's 4:3 upload
    small = [render_free(s, 224) for s in scenes]
    texts = [c for _, cs in iter_free_scenes("val", repeats + 2, seed=1) for c in cs][: repeats + 2]
    from bench.search_latency import machine

    return {
        "machine": machine(),
        "date": time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime()),
        "load_average": os.getloadavg(),
        "search_model": search_model,
        "captioner": captioner,
        "torch_threads": __import__("torch").get_num_threads(),
        "upload embedding, 1024x768": _timed(lambda i: enc.encode_image([photos[i % len(photos)]]), repeats),
        "upload embedding, 224 px": _timed(lambda i: enc.encode_image([small[i]]), repeats),
        "text query": _timed(lambda i: enc.encode_text([texts[i]]), repeats),
        "caption, 224 px": _timed(lambda i: cap.caption(small[i], beam_size=3), repeats),
        "categorise, 224 px (no heat-map)": _timed(
            lambda i: categorise(enc, small[i], None, "descriptive", heatmap=False), repeats),
    }


def markdown(r: dict) -> str:
    rows = []
    for name in ("upload embedding, 1024x768", "upload embedding, 224 px", "text query", "caption, 224 px",
                 "categorise, 224 px (no heat-map)"):
        v = r[name]
        goal = next((g for k, g in GOALS_MS.items() if name.startswith(k)), None)
        verdict = "" if goal is None else ("met" if v["p50_ms"] <= goal else "**not met**")
        rows.append(f"| {name} | {v['p50_ms']:.1f} | {v['p95_ms']:.1f} | {'' if goal is None else f'≤ {goal:.0f}'} | {verdict} |")
    load = ", ".join(f"{x:.1f}" for x in r["load_average"])
    return f"""## The bundled models at a visitor's pace (ms)

`python -m bench.demo_models`, {r['date']}, {r['torch_threads']} torch threads, load average at the start {load}:
{r['search_model']} (Search and Categorise) and {r['captioner']} (Caption), in-process, p50 / p95 over
{r['text query']['n']} calls.

| what | p50 | p95 | goal (p50) | |
|---|---|---|---|---|
{chr(10).join(rows)}
"""


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--repeats", type=int, default=50)
    p.add_argument("--out", type=Path, default=Path("bench/results/demo_models.json"))
    args = p.parse_args(argv)
    result = run(args.repeats)
    save_result(args.out, result)
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
