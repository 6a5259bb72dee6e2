"""The Space with real Hub models, rehearsed end to end on this machine.

    python -m bench.rehearsal              # full: 1,000-image Flickr8k test collections, every Hub model
    python -m bench.rehearsal --reduced    # what CI runs: a few rows, small filler files, same models

It writes the look-alike Hub (`bench.lookalike`: the real repo ids, files per revision, configs, tokenizers, and
random weights of the exact architectures), serves it with `bench.localhub`, launches `app.py` with
`catalog.hub.toml` and `HF_ENDPOINT` pointed at it, from an empty Hub cache, and calls every endpoint with every
Hub model through `gradio_client`. Results go to `bench/results/rehearsal.json`:
cold start, peak memory, disk, bytes downloaded per model against the bytes its loader reads, every call's
outcome and latency, the time the app took to build each index itself, the Compare rows the app measured itself for
each Hub model (`core.evaluations`: no command run by hand) and when they were all ready, `/search` latency on a
bundled collection while those measurements run against the same once they are done, and every request the Hub
received that the app had no reason to make. Random weights measure compute, memory, downloads and plumbing,
never quality: the measured figures themselves are recorded only to show they exist, labelled look-alike.
"""
from __future__ import annotations

import argparse
import fnmatch
import logging
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

from bench import save_result
from bench.search_latency import machine as machine_info
from bench.localhub import LocalHub
from bench.lookalike import Plan, build

log = logging.getLogger(__name__)
ROOT = Path(__file__).resolve().parent.parent
CATALOG = ROOT / "catalog.hub.toml"
# What a client of a read-only Hub may ask: repo info, file listings, file downloads. Anything else (a discussion,
# a commit listing, a conversion Space, telemetry) is a call the app should not make.
EXPECTED_REQUESTS = (r"GET /api/models/*", r"GET /api/datasets/*", r"HEAD /*/resolve/*", r"GET /*/resolve/*")
QUERIES = ["a dog running on the grass", "two children playing on the beach", "a man in a red shirt climbing a rock"]


class PeakRss(threading.Thread):
    """Samples the resident memory of a process and its children every 0.2 s; `.peak_mb`."""

    def __init__(self, pid: int):
        super().__init__(daemon=True)
        self.pid, self.peak_mb, self._stop = pid, 0.0, threading.Event()

    def run(self) -> None:
        import psutil

        proc = psutil.Process(self.pid)
        while not self._stop.wait(0.2):
            try:
                rss = proc.memory_info().rss + sum(c.memory_info().rss for c in proc.children(recursive=True))
            except psutil.Error:
                return
            self.peak_mb = max(self.peak_mb, rss / 2**20)

    def stop(self) -> None:
        self._stop.set()


def _pcts(ms: list[float]) -> dict:
    if not ms:
        return {"p50_ms": None, "p95_ms": None}
    s = sorted(ms)
    return {"p50_ms": round(statistics.median(s), 1), "p95_ms": round(s[min(len(s) - 1, int(0.95 * len(s)))], 1)}


def _timed(fn, *args, **kwargs) -> tuple[float, object, str]:
    t = time.perf_counter()
    try:
        out, error = fn(*args, **kwargs), ""
    except Exception as e:  # the visitor's message, recorded as the call's outcome
        out, error = None, f"{e.__class__.__name__}: {e}"
    return (time.perf_counter() - t) * 1000, out, error


def _folder_mb(path: Path) -> float:
    return sum(p.stat().st_blocks * 512 for p in path.rglob("*") if p.is_file() and not p.is_symlink()) / 2**20


def _launch(env: dict, port: int, log_path: Path) -> subprocess.Popen:
    cmd = [sys.executable, str(ROOT / "app.py"), "--catalog", str(CATALOG), "--port", str(port)]
    return subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=log_path.open("w"), stderr=subprocess.STDOUT)


def _wait_for_server(url: str, proc: subprocess.Popen, timeout: float) -> None:
    import urllib.request

    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if proc.poll() is not None:
            raise RuntimeError(f"app.py exited with {proc.returncode} before serving")
        try:
            urllib.request.urlopen(url + "/gradio_api/info", timeout=2).close()
            return
        except OSError:
            time.sleep(0.25)
    raise TimeoutError(f"app.py did not answer within {timeout:.0f} s")


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Rehearsal:
    def __init__(self, hub: LocalHub, url: str, images: list[Path], repeats: int):
        from gradio_client import Client

        # a generous read timeout: on a loaded machine the first config fetch waits behind the warm start
        client = Client(url, verbose=False, httpx_kwargs={"timeout": 300})
        self.hub, self.client, self.images, self.repeats = hub, client, images, repeats
        self.calls: list[dict] = []
        self.first_answers: list[dict] = []
        self.builds: list[dict] = []
        self.evaluations: list[dict] = []
        self.compare_rows: list[dict] = []
        self.search_during: list[tuple[float, bool]] = []  # (ms, an index build was also waited for)
        self.search_idle: list[float] = []
        self.all_rows_after_s: float | None = None

    def call(self, model: str, endpoint: str, args_list: list[tuple], label: str = "") -> None:
        """The first call (download + load) is reported apart; the next ones give p50 / p95."""
        first_ms, _, first_error = _timed(self.client.predict, *args_list[0], api_name=endpoint)
        self.first_answers.append({"model": model, "endpoint": endpoint + label, "ms": round(first_ms, 1),
                                   "ok": not first_error, "error": first_error})
        ms, errors = [], []
        for i in range(self.repeats):
            elapsed, _, error = _timed(self.client.predict, *args_list[i % len(args_list)], api_name=endpoint)
            (errors.append(error) if error else ms.append(elapsed))
        error = first_error or (errors[0] if errors else "")
        self.calls.append({"model": model, "endpoint": endpoint + label, "ok": not error, "error": error,
                           "n": len(ms), **_pcts(ms)})
        log.info("%s %s%s: %s", model, endpoint, label, self.calls[-1])

    def wait_for_index(self, model: str, collection: str, timeout: float) -> None:
        """Search until the index the app builds itself is served; record how long that took."""
        start = time.perf_counter()
        seen = []
        while time.perf_counter() - start < timeout:
            _, _, error = _timed(self.client.predict, QUERIES[0], None, 1, model, collection, api_name="/search")
            if not error:
                break
            seen.append(error)
            if "Building" not in error and "Queued" not in error:
                break  # a real failure: recorded below
            time.sleep(1.0)
        self.builds.append({"model": model, "collection": collection, "ready_after_s": round(time.perf_counter() - start, 1),
                            "ok": not error, "error": error, "progress_messages": sorted(set(seen))[:3]})

    BUNDLED_QUERY = ("a dog on a blue background", None, 10, "dual-minilm-cnn",
                     "demo scenes (test split + never-seen concepts)")

    def wait_for_measurements(self, hub_models: dict, started: float, timeout: float, idle_searches: int = 30) -> None:
        """Poll `/evaluations` until every measurement is finished, timing a `/search` of a bundled collection
        each time one is running; then the same search as often with nothing running; then each Hub model's
        Compare rows (`/compare`)."""
        end = time.monotonic() + timeout
        states: list[dict] = []
        while time.monotonic() < end:
            states = self.client.predict(api_name="/evaluations")
            running = [s for s in states if s["state"] == "running"]
            if not any(s["state"] in ("waiting", "running") for s in states):
                break
            if running:
                ms, _, error = _timed(self.client.predict, *self.BUNDLED_QUERY, api_name="/search")
                if not error:
                    self.search_during.append((ms, any(s["state"] == "waiting" for s in states)))
            time.sleep(0.5)
        self.all_rows_after_s = round(time.perf_counter() - started, 1)
        self.evaluations = states
        for _ in range(idle_searches):
            ms, _, error = _timed(self.client.predict, *self.BUNDLED_QUERY, api_name="/search")
            if not error:
                self.search_idle.append(ms)
        for name in hub_models:
            rows = [r for r in self.client.predict(name, api_name="/compare") if r["measured"].startswith("measured by this app")]
            self.compare_rows.append({"model": name, "rows": len(rows), "lookalike_labelled": all(r["lookalike"] for r in rows),
                                      "splits": sorted({r["split"] for r in rows}),
                                      "metrics": sorted({r["metric"] for r in rows})})

    def search_model(self, model: str, collection: str) -> None:
        from gradio_client import handle_file

        self.call(model, "/search", [(q, None, 10, model, collection) for q in QUERIES], " (text)")
        self.call(model, "/search", [("", handle_file(str(p)), 10, model, collection) for p in self.images], " (image)")


def preload(hub: LocalHub, cache: Path) -> dict:
    """Do what a Space build does with the README's `preload_from_hub`: the lines `pipelines.space_card` writes for
    catalog.hub.toml (each model's revision resolved to its commit, only the files its loader reads), each file
    downloaded at that commit into the Hub cache. Returns {"lines", "seconds", "bytes"}."""
    from huggingface_hub import hf_hub_download

    from core.catalog import load_catalog
    from pipelines.space_card import card_fields

    t = time.perf_counter()
    old = os.environ.get("HF_ENDPOINT")
    os.environ["HF_ENDPOINT"] = hub.url
    try:
        lines = card_fields(load_catalog(CATALOG))["preload_from_hub"]
    finally:
        os.environ.pop("HF_ENDPOINT") if old is None else os.environ.__setitem__("HF_ENDPOINT", old)
    before = sum(hub.bytes_served.values())
    for line in lines:
        repo, files, sha = line.split(" ")
        for name in files.split(","):
            hf_hub_download(repo, name, revision=sha, cache_dir=str(cache), endpoint=hub.url, token=False)
    return {"lines": lines, "seconds": round(time.perf_counter() - t, 1), "bytes": sum(hub.bytes_served.values()) - before}


def run(reduced: bool = False, hub_dir: Path | None = None, repeats: int | None = None,
        caption_sample: int | None = None, with_preload: bool = False) -> dict:
    from core.catalog import load_catalog
    from core.sources import parse_source
    from models.registry import family_files

    plan = Plan.reduced() if reduced else Plan()
    hub_dir = Path(hub_dir or ROOT / "runs" / ("lookalike-hub-reduced" if reduced else "lookalike-hub"))
    t = time.perf_counter()
    build(hub_dir, plan)
    log.info("look-alike Hub ready in %.0f s at %s", time.perf_counter() - t, hub_dir)
    repeats = repeats or (3 if reduced else 10)
    load_before = os.getloadavg()[0]
    catalog = load_catalog(CATALOG)
    hub_models = {n: s for n, s in catalog.models.items() if s.source.startswith("hf-hub:")}

    with tempfile.TemporaryDirectory(prefix="rehearsal-") as tmp, LocalHub(hub_dir) as hub:
        hub.warm()  # the real Hub answers metadata at once; ours hashes its files first, outside the timings
        tmp = Path(tmp)
        home = tmp / "hf-home"
        env = {**os.environ, "HF_ENDPOINT": hub.url, "HF_HOME": str(home), "HF_HUB_CACHE": str(home / "hub"),
               "HF_HUB_DISABLE_XET": "1", "HF_HUB_DISABLE_TELEMETRY": "1", "GRADIO_ANALYTICS_ENABLED": "False",
               "HF_TOKEN": "", "VLSTUDIO_INDEX_DIR": str(tmp / "indexes"), "PYTHONUNBUFFERED": "1",
               "VLSTUDIO_MAX_MODELS": "8",  # as README's Space settings: every Hub model stays loaded once
               "VLSTUDIO_EVAL_DIR": str(tmp / "evaluations"),
               "VLSTUDIO_EVAL_CAPTIONS": str(caption_sample or (8 if reduced else 100))}
        env.pop("HF_HUB_OFFLINE", None)
        images = _example_images(tmp, plan)
        preloaded = preload(hub, home / "hub") if with_preload else None
        served_before_app = dict(hub.bytes_served)
        port = _free_port()
        url = f"http://127.0.0.1:{port}"
        start = time.perf_counter()
        proc = _launch(env, port, tmp / "app.log")
        peak = PeakRss(proc.pid)
        peak.start()
        try:
            _wait_for_server(url, proc, timeout=300)
            cold_start_s = time.perf_counter() - start
            r = Rehearsal(hub, url, images, repeats)
            _exercise(r, catalog, hub_models, timeout=3600)
            r.wait_for_measurements(hub_models, start, timeout=3600)
        finally:
            peak.stop()
            proc.terminate()
            proc.wait(30)
            app_log = (tmp / "app.log").read_text(errors="replace")
        disk_mb = _folder_mb(home)
        served_after_app = dict(hub.bytes_served)
        downloads = _downloads(hub, hub_dir, hub_models, family_files)
        unexpected = [q for q in hub.requests if not any(fnmatch.fnmatch(q, p) for p in EXPECTED_REQUESTS)]

    result = {
        "machine": machine_info(), "date": time.strftime("%Y-%m-%d"), "reduced": reduced,
        "command": "python -m bench.rehearsal" + (" --reduced" if reduced else "") + (" --preload" if with_preload else ""),
        "plan": {"flickr8k_rows": plan.flickr8k_rows, "fashion_rows": plan.fashion_rows,
                 "filler_scale": plan.filler_scale},
        "cold_start_s": round(cold_start_s, 1), "peak_rss_mb": round(peak.peak_mb, 1), "disk_mb": round(disk_mb, 1),
        "downloads": downloads, "first_answers": r.first_answers, "calls": r.calls, "index_builds": r.builds,
        "unexpected_requests": sorted(set(unexpected)),
        "preload": preloaded and {**preloaded, "model_bytes_fetched_by_the_app": {
            name: sum(v - served_before_app.get(k, 0) for k, v in served_after_app.items()
                      if k.startswith(f"model:{parse_source(spec.source).repo_id}/"))
            for name, spec in hub_models.items()}},
        "measurements": {"all_rows_ready_after_s": r.all_rows_after_s, "evaluations": r.evaluations,
                         "compare_rows": r.compare_rows,
                         "caption_sample": int(env.get("VLSTUDIO_EVAL_CAPTIONS", 0)) or None,
                         "search_while_measuring": _pcts([ms for ms, _ in r.search_during]),
                         "search_while_measuring_no_build": _pcts([ms for ms, waiting in r.search_during if not waiting]),
                         "n_while_measuring": len(r.search_during),
                         "n_while_measuring_no_build": sum(1 for _, w in r.search_during if not w),
                         "search_idle": _pcts(r.search_idle), "n_idle": len(r.search_idle)},
        "load_average_1min_before_after": [round(load_before, 1), round(os.getloadavg()[0], 1)],
        "app_errors": [line for line in app_log.splitlines() if "Traceback" in line or "ERROR" in line][:20],
    }
    return result


def _example_images(tmp: Path, plan: Plan) -> list[Path]:
    import numpy as np

    from bench.lookalike import photo

    rng = np.random.default_rng(plan.seed + 99)
    paths = []
    for i, size in enumerate([(500, 375), (375, 500), (640, 480)]):
        path = tmp / f"visitor-{i}.jpg"
        photo(rng, size).save(path, quality=90)
        paths.append(path)
    return paths


def _exercise(r: Rehearsal, catalog, hub_models: dict, timeout: float) -> None:
    from gradio_client import handle_file

    for name, spec in hub_models.items():
        for collection in [i.collection for i in catalog.indexes if i.model == name]:
            r.wait_for_index(name, collection, timeout)
            r.search_model(name, collection)
        if "categorise" in spec.tasks:
            r.call(name, "/categorise", [(handle_file(str(p)), "", name, "descriptive") for p in r.images])
            r.call(name, "/categorise", [(handle_file(str(p)), "dog, cat, car, bicycle", name, "")
                                         for p in r.images], " (own labels)")
        if "caption" in spec.tasks:
            r.call(name, "/caption", [(handle_file(str(p)), name, 3) for p in r.images], " (beam 3)")
        r.call(name, "/compare", [(name,)])


def _downloads(hub: LocalHub, hub_dir: Path, hub_models: dict, family_files) -> list[dict]:
    """Per Hub model: the bytes the Hub served for its repo, and the bytes of the files its loader reads."""
    from core.sources import parse_source

    out = []
    for name, spec in hub_models.items():
        source = parse_source(spec.source)
        folder = hub.repo_dir("model", source.repo_id, source.revision or "main")
        patterns = family_files(spec.family) or ["*"]
        needed = sum(p.stat().st_size for p in hub.files(folder)
                     if any(fnmatch.fnmatch(p.relative_to(folder).as_posix(), pat) for pat in patterns))
        served = {k: v for k, v in hub.bytes_served.items() if k.startswith(f"model:{source.repo_id}/")}
        downloaded = sum(served.values())
        out.append({"model": name, "revision": source.revision or "main", "bytes_downloaded": downloaded,
                    "bytes_loaded": needed, "ratio": round(downloaded / needed, 3) if needed else None,
                    "files": sorted(k.split("/", 2)[-1] for k in served)})
    return out


def markdown(r: dict) -> str:
    mb = 1e6
    head = (f"## The Space with Hub models, rehearsed\n\n`{r['command']}`, {r['date']}: `app.py` with "
            "`catalog.hub.toml`, an empty Hub cache, and a look-alike Hub on this machine (`bench.lookalike`: the "
            "real repo ids, files per revision, configs and tokenizers, **random weights of the exact "
            "architectures**). Compute, memory and download sizes are the real ones; quality is not measured "
            "and no figure here says anything about it.\n")
    if load := r.get("load_average_1min_before_after"):
        head += f"\nLoad average (1 min) on the {r['machine']['cpu_count']} CPUs: {load[0]} before, {load[1]} after.\n"
    if r.get("conditions"):
        head += f"\n{r['conditions']}\n"
    lines = [head, "| what | figure | goal | |", "|---|---|---|---|",
             f"| cold start (process start → server answers) | {r['cold_start_s']} s | | |",
             f"| peak memory of the app (RSS, every Hub model used) | {r['peak_rss_mb']:,.0f} MB | | |",
             f"| Hub cache on disk after the run | {r['disk_mb']:,.0f} MB | | |",
             f"| requests the app had no reason to make | {len(r['unexpected_requests'])} | 0 | "
             f"{'met' if not r['unexpected_requests'] else '**not met**'} |", ""]
    lines += ["| model | revision | downloaded | read by the loader | ratio (goal ≤ 1.1) |", "|---|---|---|---|---|"]
    for d in r["downloads"]:
        ok = d["ratio"] is not None and d["ratio"] <= 1.1
        lines.append(f"| {d['model']} | {d['revision']} | {d['bytes_downloaded'] / mb:,.1f} MB | "
                     f"{d['bytes_loaded'] / mb:,.1f} MB | {d['ratio']} {'met' if ok else '**not met**'} |")
    lines += ["", "| index the app built itself | ready after | ok |", "|---|---|---|"]
    for b in r["index_builds"]:
        lines.append(f"| {b['collection']}, {b['model']} | {b['ready_after_s']} s | {'yes' if b['ok'] else b['error']} |")
    lines += ["", "Each model is downloaded and loaded before its first call below: by the warm start (`warm = true` "
              "models) or by the first index build that needs it, so \"ready after\" above includes the download and "
              "load of each collection's model when it came first; the first call is then a warm one.", "",
              "| model | endpoint | first call | p50 | p95 | ok |", "|---|---|---|---|---|---|"]
    firsts = {(f["model"], f["endpoint"]): f for f in r["first_answers"]}
    for c in r["calls"]:
        f = firsts.get((c["model"], c["endpoint"]), {})
        lines.append(f"| {c['model']} | {c['endpoint']} | {f.get('ms', 0) / 1000:.1f} s | {c['p50_ms']} ms | "
                     f"{c['p95_ms']} ms | {'yes' if c['ok'] else c['error'][:120]} |")
    if pre := r.get("preload"):
        lines += ["", f"**Preload** (what the Space build does with `preload_from_hub`, from `pipelines.space_card`): "
                  f"{pre['bytes'] / mb:,.1f} MB in {pre['seconds']} s; model bytes the app then fetched itself: "
                  + ", ".join(f"{m} {b:,}" for m, b in pre["model_bytes_fetched_by_the_app"].items()) + " (goal 0)."]
    lines += _measurements_markdown(r.get("measurements"))
    return "\n".join(lines) + "\n"


def _measurements_markdown(m: dict | None) -> list[str]:
    if not m:
        return []
    lines = ["", f"**The app measures its Hub models itself** (`core.evaluations`, no command run by hand): every "
             f"Compare row below was ready {m['all_rows_ready_after_s']} s after the app process started (empty "
             f"cache: downloads, index builds and the endpoint calls above included; captions on "
             f"{m['caption_sample']} photos). The figures are random weights' and are not shown: the rows are "
             "labelled look-alike in Compare.", "",
             "| model | Compare rows measured by the app | collections | look-alike labelled |", "|---|---|---|---|"]
    for c in m["compare_rows"]:
        lines.append(f"| {c['model']} | {c['rows']} | {', '.join(c['splits'])} | {'yes' if c['lookalike_labelled'] else '**no**'} |")
    lines += ["", "| measurement | state | seconds |", "|---|---|---|"]
    for e in m["evaluations"]:
        lines.append(f"| {e['model']}: {e['kind']}{' (' + e['catalogue'] + ')' if e['catalogue'] else ''} on "
                     f"{e['collection']} | {e['state']}{': ' + e['error'][:80] if e['error'] else ''} | {e['seconds']} |")
    idle, during, alone = m["search_idle"], m["search_while_measuring"], m["search_while_measuring_no_build"]
    ratio = (round(alone["p50_ms"] / idle["p50_ms"], 2) if alone["p50_ms"] and idle["p50_ms"] else None)
    lines += ["", "| `/search` (bundled collection, text) | p50 | p95 | n |", "|---|---|---|---|",
              f"| while a measurement runs | {during['p50_ms']} ms | {during['p95_ms']} ms | {m['n_while_measuring']} |",
              f"| while a measurement runs and no index is being built | {alone['p50_ms']} ms | {alone['p95_ms']} ms | "
              f"{m['n_while_measuring_no_build']} |",
              f"| idle (every measurement done) | {idle['p50_ms']} ms | {idle['p95_ms']} ms | {m['n_idle']} |",
              f"| ratio, measuring (no build) / idle (goal ≤ 1.2) | {ratio} | | |"]
    return lines


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--reduced", action="store_true", help="CI's version: few rows, small filler files")
    p.add_argument("--hub-dir", type=Path, default=None, help="where the look-alike Hub is written (kept, reused)")
    p.add_argument("--repeats", type=int, default=None, help="timed calls per endpoint and model")
    p.add_argument("--out", type=Path, default=ROOT / "bench" / "results" / "rehearsal.json")
    p.add_argument("--preload", action="store_true", help="first do what a Space build does with the README's "
                   "preload_from_hub (pipelines.space_card's lines), then check the app fetches no model file itself")
    p.add_argument("--caption-sample", type=int, default=None, help="photos each captioner is measured on "
                   "(default: the Space's 100; 8 with --reduced)")
    args = p.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    logging.getLogger("httpx").setLevel(logging.WARNING)
    result = run(args.reduced, args.hub_dir, args.repeats, args.caption_sample, args.preload)
    save_result(args.out, result)
    sys.stdout.write(markdown(result))
    failed = [c for c in result["calls"] if not c["ok"]] + [b for b in result["index_builds"] if not b["ok"]]
    failed += [e for e in result["measurements"]["evaluations"] if e["state"] not in ("done", "stored")]
    sys.exit(1 if failed or result["unexpected_requests"] else 0)


if __name__ == "__main__":
    main()
