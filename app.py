"""Vision-Language Studio: compose the tabs and launch. No model code lives here.

    python app.py                      # the bundled demo catalog, offline, on http://127.0.0.1:7860
    python app.py --catalog catalog.hub.toml   # real models from the Hugging Face Hub
"""
from __future__ import annotations

import argparse
import logging
import os

import gradio as gr

from core.catalog import Catalog, load_catalog
from core.services import Services

MAX_FILE_SIZE = "20mb"  # uploads above this are refused by the server before any handler runs
QUEUE_SIZE = 64  # waiting requests beyond this are refused with "queue full" instead of piling up
ATTRIBUTION = (
    "Demo-world icons: [OpenMoji](https://openmoji.org), the open-source emoji and icon project, "
    "[CC BY-SA 4.0](https://creativecommons.org/licenses/by-sa/4.0/)."
)


def configure_plots() -> None:
    import matplotlib

    matplotlib.use("Agg")  # figures are rendered on the server, never in a window


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


def build_demo(catalog: Catalog, services: Services | None = None) -> gr.Blocks:
    from tabs import caption, categorise, compare, search

    configure_plots()
    services = services or Services(catalog)
    notice = HubNotice(catalog)
    with gr.Blocks(title="Vision-Language Studio") as demo:
        gr.Markdown("# Vision-Language Studio\nSee how image-text models match words and pictures.")
        hub_line = gr.Markdown()
        demo.load(notice, None, hub_line, api_visibility="private")
        with gr.Tabs():
            search.build(services)
            categorise.build(services)
            caption.build(services)
            compare.build(services)
        gr.Markdown(ATTRIBUTION)
    demo.queue(max_size=QUEUE_SIZE, default_concurrency_limit=2)
    return demo


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description="Launch Vision-Language Studio.")
    p.add_argument("--catalog", default=None, help="catalog file (default: $VLSTUDIO_CATALOG or catalog.toml)")
    p.add_argument("--host", default=os.environ.get("GRADIO_SERVER_NAME", "127.0.0.1"))
    p.add_argument("--port", type=int, default=int(os.environ.get("GRADIO_SERVER_PORT", "7860")))
    args = p.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    configure_threads()
    demo = build_demo(load_catalog(args.catalog))
    demo.launch(server_name=args.host, server_port=args.port, max_file_size=MAX_FILE_SIZE, show_error=False)


if __name__ == "__main__":
    main()
