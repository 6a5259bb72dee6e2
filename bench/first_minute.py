"""The first minute of a visit, from a fresh `python app.py`: the warm start, the first answers of the API, and
what each tab shows when a page loads in headless Chromium.

    python -m bench.first_minute                                   # this checkout -> bench/results/first_minute.json
    python -m bench.first_minute --root /tmp/before --label before \\
        --out bench/results/first_minute_before.json               # another checkout's app.py, same measurements

`cold`: each endpoint is the first request of its own fresh process, sent as soon as the server answers.
`warm`: one more process waits for the warm start to finish (the log line "warm start done"), then sends the
first /categorise, /caption and /search and opens the pages; a checkout without a warm start opens the pages
as soon as the server answers (`page`). Timings on a shared machine vary; these are single measurements.
"""
from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

from bench import save_result

ROOT = Path(__file__).resolve().parent.parent
CHROMIUM_ARGS = ["--headless=new", "--no-sandbox", "--disable-gpu", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync"]
WARM_DONE = re.compile(r"warm start done in ([\d.]+) s")
WARM_STEP = re.compile(r"warm start: (.+) \(([\d.]+) s\)")
# What counts as a tab's answer on screen (selectors that exist before and after the warm start).
TAB_RESULT = {
    "Search": "#search-tab button.thumbnail-item img, #search-tab .gallery img",
    "Categorise": "#categorise-label .output-class, #categorise-label h2",
    "Caption": "#caption-text textarea",
    "Compare": "#compare-confusion img",
}
CALLS = ("categorise", "caption", "search")
# the last test-split example of each folder (the tabs open on the first): whatever `demo_world.examples` wrote
PRODUCT = max((ROOT / "assets/examples/products").glob("test-*.png"))
SCENE = max((ROOT / "assets/examples/scenes").glob("test-*.png"))


class App:
    """`python app.py` of a checkout in a fresh process, its log in a temporary file."""

    def __init__(self, root: Path, port: int):
        self.root, self.port = root, port
        self.url = f"http://127.0.0.1:{port}/"
        self.log = Path(tempfile.mkstemp(prefix="first-minute-", suffix=".log")[1])
        self.t0 = time.perf_counter()
        with self.log.open("w") as out:
            self.proc = subprocess.Popen([sys.executable, "app.py", "--port", str(port)], cwd=root, stdout=out,
                                         stderr=subprocess.STDOUT)

    def since_start(self) -> float:
        return time.perf_counter() - self.t0

    def wait_until(self, ready, what: str, timeout: float = 180) -> float:
        while not ready():
            if self.since_start() > timeout or self.proc.poll() is not None:
                raise RuntimeError(f"{what}: not within {timeout} s (log: {self.log})")
            time.sleep(0.05)
        return self.since_start()

    def answering(self) -> bool:
        try:
            urllib.request.urlopen(self.url, timeout=1).close()
            return True
        except OSError:
            return False

    def warm_done(self) -> bool:
        return bool(WARM_DONE.search(self.log.read_text(errors="replace")))

    def warm_steps(self) -> dict[str, float]:
        """Seconds per warm-up step, from the app's log."""
        return {m[1]: float(m[2]) for m in WARM_STEP.finditer(self.log.read_text(errors="replace"))}

    def cpu_s(self) -> float:
        """CPU seconds the app's process has used so far (all threads): unlike wall time, barely inflated by other
        work on the machine."""
        fields = Path(f"/proc/{self.proc.pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")  # utime + stime

    def close(self) -> None:
        self.proc.terminate()
        self.proc.wait(timeout=30)
        self.log.unlink(missing_ok=True)


def first_calls(app: App, names: tuple[str, ...] = CALLS) -> dict:
    """The first /categorise, /caption and /search of the process (or those in `names`), one after the other."""
    from gradio_client import Client, handle_file

    client = Client(app.url, verbose=False)
    calls = {
        "categorise": lambda: client.predict(handle_file(str(PRODUCT)), "", "", "descriptive", api_name="/categorise"),
        "caption": lambda: client.predict(handle_file(str(SCENE)), "", 3, api_name="/caption"),
        "search": lambda: client.predict("a small cat at the top left", None, 10, "", "", api_name="/search"),
    }
    out = {}
    for name in names:
        t = time.perf_counter()
        calls[name]()
        out[name] = {"latency_s": time.perf_counter() - t, "answered_after_start_s": app.since_start()}
    return out


def cold_call(root: Path, name: str, port: int) -> dict:
    """`name` as the very first request of a fresh process, sent the moment the server answers."""
    app = App(root, port)
    try:
        load = os.getloadavg()[0]
        server_up = app.wait_until(app.answering, "server answering")
        return {**first_calls(app, (name,))[name], "server_up_s": server_up, "load_avg_1min_at_start": load}
    finally:
        app.close()


def _answer_visible(page, tab: str, timeout_ms: int) -> bool:
    from playwright.sync_api import TimeoutError as PlaywrightTimeout

    try:
        if tab == "Caption":
            page.wait_for_function("el => el && el.value.length > 0",
                                   arg=page.locator(TAB_RESULT[tab]).element_handle(timeout=timeout_ms),
                                   timeout=timeout_ms)
        else:
            page.locator(TAB_RESULT[tab]).first.wait_for(state="visible", timeout=timeout_ms)
        return True
    except PlaywrightTimeout:
        return False


def browser(app: App, timeout_s: float = 10) -> dict:
    """Per tab, a fresh page: seconds from asking for the page to the tab's answer on screen (None: no answer
    within `timeout_s`, no button clicked). Then, on a loaded page, seconds from opening Compare to its plots."""
    from playwright.sync_api import sync_playwright

    chromium = shutil.which("chromium") or "/usr/bin/chromium"
    out: dict = {"page_to_tabs_s": {}, "page_to_answer_s": {}}
    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=chromium, args=CHROMIUM_ARGS)
        try:
            for tab in TAB_RESULT:
                page = b.new_page(viewport={"width": 1400, "height": 1000})
                t = time.perf_counter()
                page.goto(app.url, wait_until="domcontentloaded")
                page.get_by_role("tab", name=tab).wait_for(timeout=int(timeout_s * 1000))
                out["page_to_tabs_s"][tab] = time.perf_counter() - t  # the app drawn, before any answer
                if tab != "Search":
                    page.get_by_role("tab", name=tab).click()
                seen = _answer_visible(page, tab, int(timeout_s * 1000))
                out["page_to_answer_s"][tab] = time.perf_counter() - t if seen else None
                page.close()
            page = b.new_page(viewport={"width": 1400, "height": 1000})
            page.goto(app.url, wait_until="load")
            _answer_visible(page, "Search", int(timeout_s * 1000))  # the page has loaded its answers, if any
            page.wait_for_timeout(500)
            t = time.perf_counter()
            page.get_by_role("tab", name="Compare").click()
            seen = _answer_visible(page, "Compare", int(timeout_s * 1000))
            out["open_compare_to_plots_s"] = time.perf_counter() - t if seen else None
        finally:
            b.close()
    return out


def scenario(root: Path, wait_for_warm: bool, port: int) -> dict:
    """A fresh process: the server answering, then (with a warm start) its end and the first API calls, then the
    pages in Chromium."""
    app = App(root, port)
    try:
        r: dict = {"load_avg_1min_at_start": os.getloadavg()[0],  # other work on the machine inflates every figure
                   "server_up_s": app.wait_until(app.answering, "server answering"), "cpu_s_at_server_up": app.cpu_s()}
        if wait_for_warm:
            r["warm_done_s"] = app.wait_until(app.warm_done, "warm start done")
            r["cpu_s_at_warm_done"] = app.cpu_s()
            r["warm_steps_s"] = app.warm_steps()
            r["first_calls"] = first_calls(app)
        r["browser"] = browser(app)
        r["load_avg_1min_at_end"] = os.getloadavg()[0]
        return r
    finally:
        app.close()


def run(root: Path = ROOT, label: str = "after", port: int = 7881) -> dict:
    """Each endpoint first in a fresh process as soon as the server answers (`cold`), then one process for the
    pages (`warm`: after its warm start, with the first calls once warm; `page` for code without a warm start)."""
    from bench.search_latency import machine

    has_warm_start = (root / "core" / "warmup.py").is_file()
    r = {"machine": machine(), "date": time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime()), "label": label,
         "root": str(root), "cold": {name: cold_call(root, name, port + i) for i, name in enumerate(CALLS)}}
    r["warm" if has_warm_start else "page"] = scenario(root, has_warm_start, port + len(CALLS))
    return r


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--root", type=Path, default=ROOT, help="the checkout whose app.py is measured")
    p.add_argument("--label", default="after")
    p.add_argument("--out", type=Path, default=Path("bench/results/first_minute.json"))
    args = p.parse_args(argv)
    result = run(args.root.resolve(), args.label)
    save_result(args.out, result)
    print(json.dumps(result, indent=2))


def _s(v: float | None) -> str:
    return "no answer (within 10 s, nothing clicked)" if v is None else f"{v:.2f} s"


def _met(ok: bool) -> str:
    return "met" if ok else "**not met**"


def markdown(after: dict, before: dict | None = None) -> str:
    """The "First minute" section of BENCHMARKS.md: before (if measured) and after, with the goals."""
    b_page, b_cold = (before["page"], before["cold"]) if before else (None, None)
    w, cold = after["warm"], after["cold"]
    na = "n/a"
    rows = [("`python app.py` to the server answering (the pages' process)", b_page and _s(b_page["server_up_s"]),
             _s(w["server_up_s"]), "", "")]
    rows.append(("warm start done, after start", "no warm start", _s(w["warm_done_s"]), "≤ 15 s",
                 _met(w["warm_done_s"] <= 15)))
    if "cpu_s_at_warm_done" in w:
        rows.append(("CPU seconds the app used from start to the server answering / to the warm start done "
                     "(all threads; what the wall time would be near on an otherwise idle machine)",
                     b_page and b_page.get("cpu_s_at_server_up") and f"{b_page['cpu_s_at_server_up']:.1f} s / no warm start",
                     f"{w['cpu_s_at_server_up']:.1f} s / {w['cpu_s_at_warm_done']:.1f} s", "", ""))
    for name in CALLS:
        after_s = w["first_calls"][name]["latency_s"]
        rows.append((f"first `/{name}` of the process (before: the first request, sent as soon as the server "
                     "answers; after: once the warm start is done)", b_cold and _s(b_cold[name]["latency_s"]),
                     _s(after_s), "≤ 1 s", _met(after_s <= 1)))
    for name in CALLS:
        rows.append((f"first `/{name}`, the first request of a fresh process, sent as soon as the server answers "
                     "(after: during the warm start)", b_cold and _s(b_cold[name]["latency_s"]),
                     _s(cold[name]["latency_s"]), "", ""))
    for tab, after_s in w["browser"]["page_to_answer_s"].items():
        shell = w["browser"]["page_to_tabs_s"][tab]
        rows.append((f"page requested to the {tab} tab's answer on screen, nothing clicked (after: the app's tabs "
                     f"drawn at {shell:.2f} s)", b_page and _s(b_page["browser"]["page_to_answer_s"][tab]),
                     _s(after_s), "≤ 2 s", _met(after_s is not None and after_s <= 2)))
    after_open = w["browser"]["open_compare_to_plots_s"]
    rows.append(("opening Compare on a loaded page to its plots visible",
                 b_page and _s(b_page["browser"]["open_compare_to_plots_s"]), _s(after_open), "≤ 1 s",
                 _met(after_open is not None and after_open <= 1)))
    table = "\n".join(f"| {what} | {bef or na} | {aft} | {goal} | {ok} |" for what, bef, aft, goal, ok in rows)
    loads = ", ".join(f"{name} {r['load_avg_1min_at_start']:.1f}→{r['load_avg_1min_at_end']:.1f}"
                      for name, r in (("before", b_page), ("after", w)) if r)
    before_line = (f"Before: `{before['label']}` measured {before['date']} with the same code "
                   "(`python -m bench.first_minute --root <checkout of 3df1a78> --label before "
                   "--out bench/results/first_minute_before.json`)." if before else "Before: not measured.")
    return f"""## First minute

`python -m bench.first_minute` (also `python -m bench --only first_minute`), {after['date']}: a fresh
`python app.py` for each endpoint's first request and one for the pages, the API through `gradio_client`, pages
in headless Chromium (Debian's package). {before_line} Single measurements on 2 CPUs shared with other work, so
they vary by a second or more between runs (1-minute load average at the start and end of the pages' process:
{loads}).

| figure | before | after | goal | |
|---|---|---|---|---|
{table}

A request that arrives during the warm start waits for the loads already under way (and may start the load of a
model the warm start has not reached yet, in parallel); it never loads a model twice.
"""


if __name__ == "__main__":
    main()
