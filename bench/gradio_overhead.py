"""Where the API's per-call time goes: the full app against a trivial one-endpoint Gradio app.

    python -m bench.gradio_overhead [--rounds 40] [--only "ping, gradio_client$|queue"]
                                    [--out bench/results/gradio_overhead.json]

Each app is served by its own process; this process is the client. Every round calls every (app, endpoint,
client) variant once, in turn, so background load falls on all of them alike; gaps are paired by round. Clients:
gradio_client (reused, as a script would; with a new session per call; constructed per call), Gradio's queue
protocol read directly (the server's share: no client-side polling), and the documented `/gradio_api/call` API
(a new session per call).
"""
from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np

from bench import save_result

APPS = ("tiny", "full")


def _ping(text: str = "") -> list[dict]:
    """A trivial endpoint: Gradio's own request path, nothing else."""
    return [{"text": text}]


def build(app: str):
    import gradio as gr

    if app == "tiny":
        with gr.Blocks() as demo:
            gr.api(_ping, api_name="bench_ping")
        return demo
    from app import build_demo, configure_threads
    from core.catalog import load_catalog

    configure_threads()
    demo = build_demo(load_catalog())
    with demo:
        gr.api(_ping, api_name="bench_ping")
    return demo


def new_session_ms(demo, n: int = 15) -> float:
    """Median cost of the per-session state Gradio builds on a session's first request (every block's config)."""
    from gradio.state_holder import SessionState

    xs = []
    for _ in range(n):
        t0 = time.perf_counter()
        SessionState(demo)
        xs.append(time.perf_counter() - t0)
    return float(np.median(xs) * 1000)


def textboxes(n: int):
    """A one-endpoint app padded with n textboxes: how the new-session cost scales with the number of blocks."""
    import gradio as gr

    with gr.Blocks() as demo:
        for _ in range(n):
            gr.Textbox()
        gr.api(_ping, api_name="bench_ping")
    return demo


def serve(app: str, port: int) -> None:
    demo = build(app)
    demo.launch(prevent_thread_lock=True, server_name="127.0.0.1", server_port=port, quiet=True)
    print("READY", json.dumps({"blocks": len(demo.blocks), "new_session_ms": new_session_ms(demo),
                               "loadavg_1min": os.getloadavg()[0]}), flush=True)
    sys.stdin.read()  # until the parent closes the pipe
    demo.close()


def _start(app: str, port: int) -> tuple[subprocess.Popen, dict]:
    proc = subprocess.Popen([sys.executable, "-m", "bench.gradio_overhead", "--serve", app, "--port", str(port)],
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    word, _, info = proc.stdout.readline().partition(" ")
    if word != "READY":
        proc.kill()
        raise RuntimeError(f"{app} did not start")
    return proc, json.loads(info)


def call_api(http, url: str, name: str, data: list):
    """Gradio's documented two-step HTTP API (a new session per call): POST the inputs, then read the event
    stream to `complete`."""
    r = http.post(f"{url}gradio_api/call/{name}", json={"data": data})
    r.raise_for_status()
    with http.stream("GET", f"{url}gradio_api/call/{name}/{r.json()['event_id']}") as s:
        event = None
        for line in s.iter_lines():
            if line.startswith("event:"):
                event = line[6:].strip()
            elif line.startswith("data:") and event in ("complete", "error"):
                if event == "error":
                    raise RuntimeError(line)
                return json.loads(line[5:])


def call_queue(http, url: str, fn_index: int, data: list, session: str):
    """The queue protocol gradio_client speaks (one session, join then read the stream), read as messages arrive."""
    r = http.post(f"{url}gradio_api/queue/join", json={"data": data, "fn_index": fn_index, "session_hash": session})
    r.raise_for_status()
    with http.stream("GET", f"{url}gradio_api/queue/data", params={"session_hash": session}) as s:
        for line in s.iter_lines():
            if line.startswith("data:"):
                msg = json.loads(line[5:])
                if msg.get("msg") == "process_completed":
                    if not msg.get("success"):
                        raise RuntimeError(msg)
                    return msg["output"]["data"]


def fn_index(http, url: str, api_name: str) -> int:
    deps = http.get(f"{url}config").json()["dependencies"]
    return next(d["id"] for d in deps if d.get("api_name") == api_name)


def _one_shot(Client, url: str, text: str):
    """What a script that makes one call pays: the client's construction (config, API info), then the call.
    Closed outside the timing: `close` waits up to 1 s for the heartbeat thread of an app with a gr.State."""
    c = Client(url, verbose=False)
    try:
        return c.predict(text, api_name="/bench_ping")
    finally:
        threading.Thread(target=c.close, daemon=True).start()


def _variants(urls: dict, clients: dict, http, k: int) -> dict:
    from gradio_client import Client

    text = "a red car on a grey road"
    out = {}
    for app, url in urls.items():
        c, idx, session = clients[app], fn_index(http, url, "bench_ping"), f"bench-{app}"
        out[f"{app} ping, gradio_client"] = lambda c=c: c.predict(text, api_name="/bench_ping")
        out[f"{app} ping, gradio_client, new session"] = lambda c=c: (
            c.reset_session(), c.predict(text, api_name="/bench_ping"))
        out[f"{app} ping, new gradio_client"] = lambda u=url: _one_shot(Client, u, text)
        out[f"{app} ping, queue protocol"] = lambda u=url, i=idx, s=session: call_queue(http, u, i, [text], s)
        out[f"{app} ping, /call (new session)"] = lambda u=url: call_api(http, u, "bench_ping", [text])
    if "full" in urls:
        c, url = clients["full"], urls["full"]
        idx = fn_index(http, url, "search")
        for kk in (k, 1):
            out[f"full search k={kk}, gradio_client"] = lambda kk=kk: c.predict(
                text, None, kk, "", "", api_name="/search")
            out[f"full search k={kk}, queue protocol"] = lambda kk=kk: call_queue(
                http, url, idx, [text, None, kk, "", ""], "bench-search")
    return out


def _stats(ms: np.ndarray) -> dict:
    return {"p50_ms": float(np.percentile(ms, 50)), "p95_ms": float(np.percentile(ms, 95)), "mean_ms": float(ms.mean())}


def _gaps(ms: dict[str, np.ndarray]) -> dict:
    """Each full-app call minus the trivial app's ping through the same client, paired by round."""
    out = {}
    for name, v in ms.items():
        tiny = "tiny ping," + name.partition(",")[2]
        if name.startswith("full") and tiny in ms:
            d = v - ms[tiny]
            out[name] = {"median_ms": float(np.median(d)), "mean_ms": float(d.mean()),
                         "se_ms": float(d.std(ddof=1) / np.sqrt(len(d))) if len(d) > 1 else 0.0}
    return out


def measure(rounds: int = 40, k: int = 10, only: str = "", apps: tuple[str, ...] = APPS, base_port: int = 7931) -> dict:
    import httpx
    from gradio_client import Client

    servers = {}
    try:
        for i, app in enumerate(apps):
            servers[app] = _start(app, base_port + i)
        urls = {app: f"http://127.0.0.1:{base_port + i}/" for i, app in enumerate(apps)}
        clients = {app: Client(url, verbose=False) for app, url in urls.items()}
        http = httpx.Client(timeout=60)
        variants = {n: f for n, f in _variants(urls, clients, http, k).items() if re.search(only, n)}
        payload = {n: len(json.dumps(f())) for n, f in variants.items()  # warms connections, sessions, the model
                   if "queue protocol" in n}
        for call in variants.values():
            call()
        times = {name: [] for name in variants}
        load = [os.getloadavg()[0]]
        for _ in range(rounds):
            for name, call in variants.items():
                t0 = time.perf_counter()
                call()
                times[name].append(time.perf_counter() - t0)
        load.append(os.getloadavg()[0])
        for c in clients.values():
            threading.Thread(target=c.close, daemon=True).start()
        scaling = {n: new_session_ms(textboxes(n)) for n in (50, 200)}
    finally:
        for proc, _ in servers.values():
            proc.stdin.close()
            proc.wait(timeout=30)
    ms = {name: np.asarray(v) * 1000 for name, v in times.items()}
    return {"rounds": rounds, "loadavg_1min": load, "apps": {app: info for app, (_, info) in servers.items()},
            "new_session_ms_textboxes": scaling, "payload_bytes": payload,
            "calls": {name: _stats(v) for name, v in ms.items()}, "gaps": _gaps(ms)}


def run(rounds: int = 40, only: str = "") -> dict:
    from bench.search_latency import machine

    return {"machine": machine(), "date": time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime()), "only": only,
            **measure(rounds, only=only)}


def markdown(r: dict) -> str:
    rows = "\n".join(f"| {name} | {v['p50_ms']:.1f} | {v['p95_ms']:.1f} | {v['mean_ms']:.1f} |"
                     for name, v in r["calls"].items())
    gaps = "\n".join(f"| {name} | {g['median_ms']:+.1f} | {g['mean_ms']:+.1f} ± {2 * g['se_ms']:.1f} |"
                      for name, g in r["gaps"].items())
    apps = "; ".join(f"{app}: {a['blocks']} blocks, {a['new_session_ms']:.2f} ms" for app, a in r["apps"].items())
    pads = "; ".join(f"{n} textboxes: {v:.2f} ms" for n, v in r["new_session_ms_textboxes"].items())
    la = ", ".join(f"{x:.2f}" for x in r["loadavg_1min"])
    only = f' --only "{r["only"]}"' if r.get("only") else ""
    return f"""## API overhead: the full app against a trivial Gradio app (ms)

`python -m bench.gradio_overhead{only}`, {r['date']}: {r['rounds']} rounds, every variant called once per round;
client and servers in separate processes; 1-min load average {la}.

| call | p50 | p95 | mean |
|---|---|---|---|
{rows}

Full app minus the trivial app's ping through the same client, paired by round:

| call | median | mean ± 2 SE |
|---|---|---|
{gaps}

A session's first request builds every block's config (Gradio's `SessionState`), in-process: {apps}; {pads}.
"""


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--rounds", type=int, default=40)
    p.add_argument("--only", default="", help="only the variants whose name matches this regex")
    p.add_argument("--out", type=Path, default=Path("bench/results/gradio_overhead.json"))
    p.add_argument("--serve", choices=APPS, help=argparse.SUPPRESS)
    p.add_argument("--port", type=int, help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.serve:
        return serve(args.serve, args.port)
    result = run(args.rounds, args.only)
    save_result(args.out, result)
    print(markdown(result))


if __name__ == "__main__":
    main()
