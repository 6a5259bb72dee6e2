"""The first minute of a visit, from a fresh `python app.py`: the warm start, the first answers of the API, and
what each tab shows when a page loads in headless Chromium.

    python -m bench.first_minute                                   # this checkout -> bench/results/first_minute.json
    python -m bench.first_minute --root /tmp/before --label before \\
        --out bench/results/first_minute_before.json               # another checkout's app.py, same measurements

Each scenario starts its own process: `warm` waits for the warm start to finish (the log line "warm start done")
before the first requests; `early` sends them as soon as the server answers. A checkout without a warm start
runs `early` only. Timings on a shared machine vary; the figures are single measurements, not a distribution.
"""
from __future__ import annotations

import argparse
import json
import re
import shutil
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

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
PRODUCT = ROOT / "assets/examples/products/prod-test-00004-watch.png"  # not a tab's worked example
SCENE = ROOT / "assets/examples/scenes/test-000003-mushroom-motorcycle.png"


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

    def close(self) -> None:
        self.proc.terminate()
        self.proc.wait(timeout=30)
        self.log.unlink(missing_ok=True)


def first_calls(app: App) -> dict:
    """The first /categorise, /caption and /search of the process, one after the other."""
    from gradio_client import Client, handle_file

    client = Client(app.url, verbose=False)
    calls = {
        "categorise": lambda: client.predict(handle_file(str(PRODUCT)), "", "", "descriptive", api_name="/categorise"),
        "caption": lambda: client.predict(handle_file(str(SCENE)), "", 3, api_name="/caption"),
        "search": lambda: client.predict("a small cat at the top left", None, 10, "", "", api_name="/search"),
    }
    out = {}
    for name, call in calls.items():
        t = time.perf_counter()
        call()
        out[name] = {"latency_s": time.perf_counter() - t, "answered_after_start_s": app.since_start()}
    return out


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
    import os

    app = App(root, port)
    try:
        r: dict = {"load_avg_1min_at_start": os.getloadavg()[0],  # other work on the machine inflates every figure
                   "server_up_s": app.wait_until(app.answering, "server answering")}
        if wait_for_warm:
            r["warm_done_s"] = app.wait_until(app.warm_done, "warm start done")
            r["warm_steps_s"] = app.warm_steps()
        r["first_calls"] = first_calls(app)
        r["browser"] = browser(app)
        r["load_avg_1min_at_end"] = os.getloadavg()[0]
        return r
    finally:
        app.close()


def run(root: Path = ROOT, label: str = "after", port: int = 7881) -> dict:
    from bench.search_latency import machine

    has_warm_start = (root / "core" / "warmup.py").is_file()
    r = {"machine": machine(), "date": time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime()), "label": label,
         "root": str(root), "early": scenario(root, False, port)}
    if has_warm_start:
        r["warm"] = scenario(root, True, port + 1)
    return r


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--root", type=Path, default=ROOT, help="the checkout whose app.py is measured")
    p.add_argument("--label", default="after")
    p.add_argument("--out", type=Path, default=Path("bench/results/first_minute.json"))
    args = p.parse_args(argv)
    result = run(args.root.resolve(), args.label)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result, indent=2))


def _s(v: float | None) -> str:
    return "no answer (within 10 s, nothing clicked)" if v is None else f"{v:.2f} s"


def _met(ok: bool) -> str:
    return "met" if ok else "**not met**"


def markdown(after: dict, before: dict | None = None) -> str:
    """The "First minute" section of BENCHMARKS.md: before (if measured) and after, with the goals."""
    b = (before or {}).get("early")
    w, e = after["warm"], after["early"]
    na = "n/a"
    rows = [("`python app.py` to the server answering", b and _s(b["server_up_s"]), _s(w["server_up_s"]), "", "")]
    rows.append(("warm start done, after start", "no warm start", _s(w["warm_done_s"]), "≤ 15 s",
                 _met(w["warm_done_s"] <= 15)))
    for name in ("categorise", "caption", "search"):
        after_s = w["first_calls"][name]["latency_s"]
        rows.append((f"first `/{name}` of the process (before: right after the server answers; after: once warm)",
                     b and _s(b["first_calls"][name]["latency_s"]), _s(after_s), "≤ 1 s", _met(after_s <= 1)))
    for tab, after_s in w["browser"]["page_to_answer_s"].items():
        before_s = b["browser"]["page_to_answer_s"][tab] if b else None
        shell = w["browser"]["page_to_tabs_s"][tab]
        rows.append((f"page requested to the {tab} tab's answer on screen, nothing clicked (after: the app's tabs "
                     f"drawn at {shell:.2f} s)", _s(before_s) if b else na, _s(after_s), "≤ 2 s",
                     _met(after_s is not None and after_s <= 2)))
    after_open = w["browser"]["open_compare_to_plots_s"]
    rows.append(("opening Compare on a loaded page to its plots visible",
                 _s(b["browser"]["open_compare_to_plots_s"]) if b else na, _s(after_open), "≤ 1 s",
                 _met(after_open is not None and after_open <= 1)))
    table = "\n".join(f"| {what} | {bef or na} | {aft} | {goal} | {ok} |" for what, bef, aft, goal, ok in rows)
    early = "; ".join(f"`/{n}` {c['latency_s']:.2f} s (answered {c['answered_after_start_s']:.1f} s after start)"
                      for n, c in e["first_calls"].items())
    loads = ", ".join(f"{name} {r['load_avg_1min_at_start']:.1f}→{r['load_avg_1min_at_end']:.1f}"
                      for name, r in (("before", b), ("after, warm", w), ("after, early", e))
                      if r and "load_avg_1min_at_start" in r)
    before_line = (f"Before: `{before['label']}` measured {before['date']} with the same code "
                   "(`python -m bench.first_minute --root <checkout of 3df1a78> --label before "
                   "--out bench/results/first_minute_before.json`)." if before else "Before: not measured.")
    return f"""## First minute

`python -m bench.first_minute` (also `python -m bench --only first_minute`), {after['date']}: a fresh
`python app.py` per scenario, the API through `gradio_client`, pages in headless Chromium (Debian's package).
{before_line} Single measurements on 2 CPUs shared with other work, so they vary by a second or more between runs
(1-minute load average at the start and end of each run: {loads or "not recorded"}).

| figure | before | after | goal | |
|---|---|---|---|---|
{table}

A visitor who arrives *during* the warm start (after: first requests sent the moment the server answers, in a
fresh process) waits for the loads already under way instead of starting new ones: {early}.
"""


if __name__ == "__main__":
    main()
