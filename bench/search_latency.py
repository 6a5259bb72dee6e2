"""Search latency: in-process stages, through the API against Gradio's own floor, and cold start.

    python -m bench.search_latency [--queries 200] [--out bench/results/search_latency.json]

Ratios and percentiles are measured in one run on this machine; see BENCHMARKS.md.
"""
from __future__ import annotations

import argparse
import json
import platform
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import numpy as np

from demo_world.free_corpus import iter_free_scenes

from bench import save_result


def _pct(xs: list[float], q: float) -> float:
    return float(np.percentile(np.asarray(xs) * 1000, q))  # ms


def queries(n: int) -> list[str]:
    caps = [c for _, cs in iter_free_scenes("val", n) for c in cs]
    return caps[::5][:n]


def in_process(texts: list[str], k: int = 10) -> dict:
    from app import configure_threads
    from core.catalog import load_catalog
    from core.search import _hits
    from core.services import Services

    configure_threads()
    services = Services(load_catalog())
    model = services.catalog.search_models()[0]
    enc, idx = services.encoder(model), services.index(model, services.catalog.collections(model)[0])
    stages: dict[str, list[float]] = {"encode": [], "faiss": [], "assemble": [], "total": []}
    for t in texts:
        t0 = time.perf_counter()
        xq = enc.encode_text([t])
        t1 = time.perf_counter()
        D, I = idx.search(xq, k)
        t2 = time.perf_counter()
        _hits(idx, D[0], I[0])
        t3 = time.perf_counter()
        for name, dt in zip(stages, (t1 - t0, t2 - t1, t3 - t2, t3 - t0)):
            stages[name].append(dt)
    return {name: {"p50_ms": _pct(v, 50), "p95_ms": _pct(v, 95)} for name, v in stages.items()}


def through_api(texts: list[str], k: int = 10) -> dict:
    import gradio as gr
    from gradio_client import Client

    from app import build_demo, configure_threads
    from core.catalog import load_catalog

    configure_threads()
    demo = build_demo(load_catalog())
    with demo:
        def ping(text: str = "") -> list[dict]:
            """A trivial endpoint: Gradio's own request path, nothing else."""
            return [{"text": text}]

        gr.api(ping, api_name="bench_ping")
    demo.launch(prevent_thread_lock=True, server_name="127.0.0.1")
    client = Client(demo.local_url, verbose=False)
    client.predict(texts[0], None, k, "", "", api_name="/search")  # warm: load model and index
    out = {}
    try:
        for name, call in (
            ("floor", lambda t: client.predict(t, api_name="/bench_ping")),
            ("search", lambda t: client.predict(t, None, k, "", "", api_name="/search")),
        ):
            times = []
            for t in texts:
                t0 = time.perf_counter()
                call(t)
                times.append(time.perf_counter() - t0)
            out[name] = {"p50_ms": _pct(times, 50), "p95_ms": _pct(times, 95)}
    finally:
        demo.close()
    out["search_minus_floor_p50_ms"] = out["search"]["p50_ms"] - out["floor"]["p50_ms"]
    return out


def cold_start(port: int = 7871, timeout: float = 120) -> dict:
    """`python app.py` to the first answered /search, in a fresh process."""
    t0 = time.perf_counter()
    proc = subprocess.Popen([sys.executable, "app.py", "--port", str(port)], stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    try:
        url = f"http://127.0.0.1:{port}/"
        while True:
            try:
                urllib.request.urlopen(url, timeout=1)
                break
            except OSError:
                if time.perf_counter() - t0 > timeout or proc.poll() is not None:
                    raise RuntimeError("app did not start")
                time.sleep(0.1)
        ready = time.perf_counter() - t0
        from gradio_client import Client

        Client(url, verbose=False).predict("a dog", None, 5, "", "", api_name="/search")
        return {"server_up_s": ready, "first_search_answered_s": time.perf_counter() - t0}
    finally:
        proc.terminate()
        proc.wait(timeout=30)


def machine() -> dict:
    import os

    return {"cpu_count": os.cpu_count(), "platform": platform.platform(), "python": platform.python_version()}


def run(n_queries: int = 200) -> dict:
    texts = queries(n_queries)
    from core.catalog import load_catalog

    catalog = load_catalog()
    model = catalog.search_models()[0]
    return {
        "machine": machine(),
        "date": time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime()),
        "queries": len(texts),
        "model": model,
        "collection": catalog.collections(model)[0],
        "cold_start": cold_start(),
        "in_process": in_process(texts),
        "api": through_api(texts),
    }


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--queries", type=int, default=200)
    p.add_argument("--out", type=Path, default=Path("bench/results/search_latency.json"))
    args = p.parse_args(argv)
    result = run(args.queries)
    save_result(args.out, result)
    print(json.dumps(result, indent=2))


def _met(ok: bool) -> str:
    return "met" if ok else "**not met**"


def markdown(r: dict) -> str:
    """The search section of BENCHMARKS.md."""
    ip, api, cs = r["in_process"], r["api"], r["cold_start"]
    rows = [
        ("text encode (in-process)", ip["encode"]),
        ("FAISS search, k=10", ip["faiss"]),
        ("result assembly", ip["assemble"]),
        ("total in-process", ip["total"]),
        ("trivial `gr.api` endpoint (Gradio's floor)", api["floor"]),
        ("`/search` through gradio_client", api["search"]),
    ]
    table = "\n".join(f"| {name} | {v['p50_ms']:.2f} | {v['p95_ms']:.2f} |" for name, v in rows)
    floor_gap = api['search_minus_floor_p50_ms']
    return f"""## Search latency (ms)

`python -m bench.search_latency`, {r['date']}: {r['queries']} text queries (val-split captions) against the default
model's first collection ({r.get('model', 'demo-clip')}, {r.get('collection', 'demo scenes, 1,000 pictures')}).

| stage | p50 | p95 |
|---|---|---|
{table}

`/search` minus Gradio's floor, p50: **{floor_gap:.1f} ms** (ratio {api['search']['p50_ms'] / api['floor']['p50_ms']:.2f}×).

| goal | measured | |
|---|---|---|
| in-process p50 ≤ 10 ms | {ip['total']['p50_ms']:.2f} ms | {_met(ip['total']['p50_ms'] <= 10)} |
| `/search` p50 within 15 ms of the floor | {floor_gap:+.1f} ms | {_met(floor_gap <= 15)} |
| cold start to first `/search` ≤ 15 s | {cs['first_search_answered_s']:.1f} s | {_met(cs['first_search_answered_s'] <= 15)} |

## Cold start

`python app.py` to the server answering: {cs['server_up_s']:.1f} s; to the first answered `/search`
(model and index loaded lazily on that request): **{cs['first_search_answered_s']:.1f} s**.
"""


if __name__ == "__main__":
    main()
