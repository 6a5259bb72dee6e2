"""Vision-Language Studio: compose the tabs and launch. No model code lives here.

    python app.py                      # the bundled demo catalog, offline, on http://127.0.0.1:7860
    python app.py --catalog catalog.hub.toml   # real models from the Hugging Face Hub
    SPACE_ID=local/vl-studio python app.py     # what a Space runs: catalog.hub.toml, real models first
"""
from __future__ import annotations

import argparse
import logging
import os

import gradio as gr

from core.catalog import Catalog, load_catalog
from core.services import Services
from core.warmup import WarmStart, add_model_steps, import_before_serving, warm_models

MAX_FILE_SIZE = "20mb"  # uploads above this are refused by the server before any handler runs
QUEUE_SIZE = 64  # waiting requests beyond this are refused with "queue full" instead of piling up
ATTRIBUTION = (
    "Demo-world icons: [OpenMoji](https://openmoji.org), the open-source emoji and icon project, "
    "[CC BY-SA 4.0](https://creativecommons.org/licenses/by-sa/4.0/)."
)


def configure_plots() -> None:
    import matplotlib

    # Figures are rendered on the server, never in a window. Spelled as Gradio spells it: Gradio calls
    # matplotlib.use("agg") around every request, which is a no-op only when the name is the same (with "Agg" it
    # switched pyplot's backend on each request, racing the warm start's import of pyplot).
    matplotlib.use("agg")


def quiet_libraries() -> None:
    """At most one log line per request, none per query: the libraries' own INFO chatter and load-time progress
    bars (faiss's loader, httpx per HTTP call, transformers' weight loading) are left out of the server log."""
    from transformers.utils import logging as transformers_logging

    for name in ("faiss.loader", "httpx"):
        logging.getLogger(name).setLevel(logging.WARNING)
    transformers_logging.disable_progress_bar()


def configure_threads() -> None:
    """One request at a time per core: FAISS and torch each with few threads (2-core Space)."""
    import faiss
    import torch

    torch.set_num_threads(int(os.environ.get("VLSTUDIO_TORCH_THREADS", "2")))
    faiss.omp_set_num_threads(1)  # single queries are several times slower with 2 OpenMP threads here


class HubNotice:
    """A visible line when the catalog names Hub models and the Hub cannot be reached (probed on page load,
    bounded by a short timeout, the answer cached for a minute): those models fail, the bundled ones work."""

    TTL_S = 60

    def __init__(self, catalog: Catalog, timeout: float = 3.0):
        self.hub_models = [m for m, spec in catalog.models.items() if spec.source.startswith("hf-hub:")]
        self.timeout = timeout
        self._checked_at, self._text = -float("inf"), ""

    def __call__(self) -> str:
        import time

        from core.sources import hub_reachable

        if not self.hub_models:
            return ""
        if time.monotonic() - self._checked_at > self.TTL_S:
            self._text = "" if hub_reachable(self.timeout) else (
                "⚠️ **The Hugging Face Hub cannot be reached from this server right now.** Models from the Hub ("
                + ", ".join(self.hub_models) + ") work only if already downloaded; the bundled demo models work.")
            self._checked_at = time.monotonic()
        return self._text


WARM_POLL_S = 2.0  # how often an open page asks whether the warm start has news (only while it runs)


def build_demo(catalog: Catalog, services: Services | None = None, warm: WarmStart | None = None) -> gr.Blocks:
    """The app. Each tab's worked answer and the models behind it are steps of `warm`, which `launch` starts
    once the server is up; a page that loads before a step is done waits for it (it is never computed twice).
    Without `launch` (tests that only build the app), the first page load computes the answers, once."""
    from tabs import caption, categorise, compare, search
    from tabs.common import wire_arrival

    configure_plots()
    services = services or Services(catalog)
    warm = warm or WarmStart()
    notice = HubNotice(catalog)
    with gr.Blocks(title="Vision-Language Studio") as demo:
        gr.Markdown("# Vision-Language Studio\nSee how image-text models match words and pictures.")
        hub_line = gr.Markdown()
        demo.load(notice, None, hub_line, api_visibility="private")
        warm_line = gr.Markdown()
        _wire_warm_notice(demo, warm, warm_line)
        with gr.Tabs():
            arrivals = [tab.build(services, warm) for tab in (search, categorise, caption, compare)]
        gr.Markdown(ATTRIBUTION)
        for arrival in arrivals:
            wire_arrival(demo, warm, arrival)
    _add_model_steps(services, warm, arrivals)
    demo.queue(max_size=QUEUE_SIZE, default_concurrency_limit=2)
    return demo


def _add_model_steps(services: Services, warm: WarmStart, arrivals: list) -> None:
    """After the worked answers: what each tab's default model needs for that tab (a search model's indexes, a
    zero-shot model's class embeddings in both prompt styles), then the models the catalog marks `warm = true`
    (Hub models download here)."""
    tasks: dict[str, set[str]] = {}
    for arrival in arrivals:
        for name in arrival.models:
            tasks.setdefault(name, set()).add(arrival.task)
    for name in warm_models(services):
        tasks.setdefault(name, set()).update(services.catalog.model(name).tasks)
    for name, needs in tasks.items():
        add_model_steps(warm, services, name, needs)


def _wire_warm_notice(demo: gr.Blocks, warm: WarmStart, line: gr.Markdown) -> None:
    """A visible line while the warm start does something visitors should know about (a Hub download)."""
    timer = gr.Timer(WARM_POLL_S)

    def status():
        return warm.notice(), gr.Timer(active=warm.running())

    demo.load(status, None, [line, timer], concurrency_limit=None, show_progress="hidden", api_visibility="private")
    timer.tick(status, None, [line, timer], concurrency_limit=None, show_progress="hidden", api_visibility="private")


EVALUATE_ENV = "VLSTUDIO_EVALUATE"  # "0": the app does not measure its Hub models itself


def launch(demo: gr.Blocks, warm: WarmStart, services: Services | None = None, **kwargs) -> None:
    """Start the server, then the warm start in the background (the server answers meanwhile), then, once the warm
    start is done, the app's own measurements of its Hub models (`core.evaluations`, low priority). What requests
    and the warm start would import lazily is imported first, so no request meets a half-imported module."""
    import threading

    import_before_serving()
    demo.launch(prevent_thread_lock=True, **kwargs)
    warm.start()
    if services is not None and os.environ.get(EVALUATE_ENV, "1") != "0":
        threading.Thread(target=lambda: (warm.wait(), services.evaluations.start()), name="evaluations-start",
                         daemon=True).start()


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description="Launch Vision-Language Studio.")
    p.add_argument("--catalog", default=None, help="catalog file (default: $VLSTUDIO_CATALOG, else catalog.hub.toml on a Space "
                   "($SPACE_ID set), else catalog.toml)")
    p.add_argument("--host", default=os.environ.get("GRADIO_SERVER_NAME", "127.0.0.1"))
    p.add_argument("--port", type=int, default=int(os.environ.get("GRADIO_SERVER_PORT", "7860")))
    args = p.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    quiet_libraries()
    configure_threads()
    catalog = load_catalog(args.catalog)
    services, warm = Services(catalog), WarmStart()
    demo = build_demo(catalog, services, warm)
    launch(demo, warm, services, server_name=args.host, server_port=args.port, max_file_size=MAX_FILE_SIZE, show_error=False)
    demo.block_thread()


if __name__ == "__main__":
    main()
