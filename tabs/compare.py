"""Compare tab: every model's measured figures side by side (read from the evaluation files), confusion matrices,
score distributions, cost, a live side-by-side search; and `/compare`."""
from __future__ import annotations

import gradio as gr
import numpy as np
from matplotlib.figure import Figure

from core.compare import REFERENCE_HEADERS, REFERENCE_ROWS, load_evaluations, long_table, wide_table
from core.inputs import InputError
from core.services import BoundedCache, Services
from core.warmup import WarmStart
from tabs.common import Arrival, rendered, visitor_errors, worked_answer
from tabs.search import run_search

SIDE_BY_SIDE_K = 6


def _grid(n: int, width: float, height: float):
    cols = min(n, 3)
    rows = (n + cols - 1) // cols
    fig = Figure(figsize=(width * cols, height * rows))  # no pyplot: its global figure list would grow
    axes = np.atleast_1d(fig.subplots(rows, cols)).ravel()
    for ax in axes[n:]:
        ax.axis("off")
    return fig, axes


def _empty(message: str):
    fig = Figure(figsize=(6, 1.5))
    ax = fig.subplots()
    ax.text(0.5, 0.5, message, ha="center", va="center")
    ax.axis("off")
    return fig


def confusion_figure(evaluations: list[dict], style: str):
    shown = [(ev, ev["styles"].get(style) or ev["styles"].get("supervised")) for ev in evaluations if ev.get("styles")]
    shown = [(ev, s) for ev, s in shown if s]
    if not shown:
        return _empty("no categorisation results yet")
    fig, axes = _grid(len(shown), 4.2, 4.0)
    for ax, (ev, s) in zip(axes, shown):
        cm = np.array(s["confusion_matrix"])
        ax.imshow(cm, cmap="Blues")
        short = [c if len(c) <= 10 else c[:9] + "…" for c in ev["classes"]]
        ax.set_xticks(range(len(cm)), short, rotation=60, ha="right", fontsize=7)
        ax.set_yticks(range(len(cm)), short, fontsize=7)
        for (i, j), v in np.ndenumerate(cm):
            ax.text(j, i, str(v), ha="center", va="center", fontsize=6, color="white" if v > cm.max() / 2 else "black")
        used = style if style in ev["styles"] else "supervised"
        ax.set_title(f"{ev['model']} ({used})\naccuracy {s['accuracy']:.1f}%", fontsize=9)
    fig.tight_layout()
    return fig


def score_figure(evaluations: list[dict]):
    shown = [ev for ev in evaluations if ev.get("scores")]
    if not shown:
        return _empty("no retrieval score distributions yet")
    fig, axes = _grid(len(shown), 4.2, 2.8)
    for ax, ev in zip(axes, shown):
        s = ev["scores"]
        bins = np.array(s["bins"])
        for key, colour in (("non_matching", "#999999"), ("matching", "#d62728")):
            counts = np.array(s[key], dtype=float)
            # one filled step outline per histogram: the same picture as a bar per bin, a hundred times fewer artists
            ax.stairs(counts / max(1, counts.sum()), bins, fill=True, alpha=0.6, color=colour,
                      label=f"{key.replace('_', '-')} (mean {s[key + '_mean']:.2f})")
        ax.set_title(f"{ev['model']} · {ev['config']}/{ev['split']} · gap {s['gap']:.2f}", fontsize=9)
        ax.set_xlabel("cosine similarity", fontsize=8)
        ax.legend(fontsize=7)
    fig.tight_layout()
    return fig


def cost_figure(evaluations: list[dict]):
    by_model: dict[str, dict] = {}
    for ev in evaluations:
        if ev.get("cost"):
            by_model.setdefault(ev["model"], ev["cost"])
    if not by_model:
        return _empty("no cost measurements yet")
    names = list(by_model)
    fig = Figure(figsize=(11, 0.6 * len(names) + 1.6))
    ax_size, ax_lat = fig.subplots(1, 2)
    ax_size.barh(names, [by_model[n]["weights_bytes"] / 1e6 for n in names], color="#4c72b0")
    ax_size.set_xlabel("weight files (MB)")
    keys = sorted({k for c in by_model.values() for k in c["latency_ms"]})
    y = np.arange(len(names))
    h = 0.8 / max(1, len(keys))
    for i, k in enumerate(keys):
        ax_lat.barh(y + i * h, [by_model[n]["latency_ms"].get(k, 0) for n in names], height=h, label=k)
    ax_lat.set_yticks(y + 0.4 - h / 2, names)
    ax_lat.set_xlabel("median latency, ms per item (CPU)")
    ax_lat.legend(fontsize=7)
    fig.tight_layout()
    return fig


def side_by_side(services: Services, query: str, image, left: str, right: str, collection: str):
    """One query answered by two models over the same collection."""
    if left == right:
        raise InputError("Choose two different models to compare.")
    out = []
    for model in (left, right):
        if collection not in services.catalog.collections(model):
            raise InputError(f"{model} has no index of {collection!r}; pick a collection both models have.")
        result = run_search(services, query, image, SIDE_BY_SIDE_K, model, collection)
        out.append([(_image(h.image_png), f"{h.score:.3f} · {h.caption}") for h in result.hits])
    return out


def _image(png: bytes):
    import io

    from PIL import Image

    return Image.open(io.BytesIO(png))


def _shared_collections(services: Services, models: list[str]) -> list[str]:
    sets = [set(services.catalog.collections(m)) for m in models]
    return sorted(set.intersection(*sets)) if sets else []


LONG_HEADERS = ["model", "dataset", "split", "metric", "value", "command"]
MEASURE_POLL_S = 3.0  # how often an open Compare tab asks for the app's own measurements while they run


def all_evaluations(services: Services) -> list[dict]:
    """The stored evaluation files, then the figures the app measured itself (`core.evaluations`)."""
    return load_evaluations(services.catalog) + services.evaluations.results()


def measuring_status(services: Services) -> str:
    lines = services.evaluations.status_lines()
    return "\n\n".join(f"⏳ {line}" for line in lines)


def build(services: Services, warm: WarmStart) -> Arrival:
    """The tab; its plots are drawn once per process (by the warm start) and shown on arrival."""
    evaluations = load_evaluations(services.catalog)
    headers, rows = wide_table(evaluations)
    search_models = services.catalog.picker_models("search")
    shared = _shared_collections(services, search_models[:2])
    with gr.Tab("Compare", id="compare", elem_id="compare-tab"):
        gr.Markdown(
            "Every figure here is read from the evaluation files written by `python -m evaluation.evaluate` "
            "(fixed seed, standard protocols) and stored beside each model. Click a column header to sort."
        )
        measuring = gr.Markdown(elem_id="compare-measuring")
        wide = gr.Dataframe(rows, headers=headers, label="Measured figures (empty cell: does not apply)", wrap=True)
        with gr.Accordion("Every figure with the command that produced it", open=False):
            long = gr.Dataframe([[r[k] for k in LONG_HEADERS] for r in long_table(evaluations)],
                                headers=LONG_HEADERS, max_height=400)
        with gr.Accordion("Reference figures quoted from the source documents (not measured here)", open=False):
            gr.Markdown("Quoted as the seeds report them, on their own data and protocols: **not measured by this "
                        "app** and not comparable line for line with the rows above.")
            gr.Dataframe(REFERENCE_ROWS, headers=REFERENCE_HEADERS, wrap=True, elem_id="compare-references")
        if services.evaluations.statuses():  # a catalog with Hub models: the app measures them in the background
            timer = gr.Timer(MEASURE_POLL_S)

            def refresh():
                evs = all_evaluations(services)
                running = services.evaluations.running()
                return (measuring_status(services), gr.Dataframe(wide_table(evs)[1]),
                        gr.Dataframe([[r[k] for k in LONG_HEADERS] for r in long_table(evs)]), gr.Timer(active=running))

            timer.tick(refresh, None, [measuring, wide, long, timer], api_visibility="private",
                       show_progress="hidden", concurrency_limit=None)
        with gr.Tab("Confusion matrices"):
            style = gr.Radio(["descriptive", "bare"], value="descriptive", label="Zero-shot prompts")
            cm_plot = gr.Plot(elem_id="compare-confusion")
            confusions = BoundedCache(4)  # one drawing per prompt style, shared by every visitor

            def on_style(s: str):
                s = s if s in ("descriptive", "bare") else "descriptive"
                return confusions.get(s, lambda: rendered([cm_plot], [confusion_figure(evaluations, s)])[0])

            style.change(on_style, style, cm_plot, postprocess=False, api_visibility="private")
        with gr.Tab("Score distributions"):
            gr.Markdown("Cosine similarity of matching (caption, its image) and non-matching pairs. Models use "
                        "different score scales; what ranks images well is the gap between the two, not the "
                        "absolute value (the seeds' \"0.25 for CLIP vs 0.07 for BERT+ResNet\" puzzle).")
            score_plot = gr.Plot()
        with gr.Tab("Size and speed"):
            cost_plot = gr.Plot()
        with gr.Tab("Side by side"):
            with gr.Row():
                query = gr.Textbox(label="Description", placeholder="e.g. a red car at the top left", scale=3)
                image = gr.Image(label="…or an image", type="filepath", sources=["upload", "clipboard"], height=120, scale=1)
            with gr.Row():
                left = gr.Dropdown(search_models, value=search_models[0] if search_models else None, label="Left model")
                right = gr.Dropdown(search_models, value=search_models[1] if len(search_models) > 1 else None, label="Right model")
                collection = gr.Dropdown(shared, value=shared[0] if shared else None, label="Collection")
                go = gr.Button("Compare", variant="primary")
            with gr.Row():
                left_gallery = gr.Gallery(label="Left model", columns=3, height=300)
                right_gallery = gr.Gallery(label="Right model", columns=3, height=300)

            @visitor_errors
            def on_compare(q, img, a, b, c):
                return side_by_side(services, q, img, a, b, c)

            def on_models(a, b):
                choices = _shared_collections(services, [m for m in (a, b) if m])
                return gr.Dropdown(choices=choices, value=choices[0] if choices else None)

            go.click(on_compare, [query, image, left, right, collection], [left_gallery, right_gallery], api_visibility="private")
            query.submit(on_compare, [query, image, left, right, collection], [left_gallery, right_gallery], api_visibility="private")
            for dd in (left, right):
                dd.change(on_models, [left, right], collection, api_visibility="private")

        # Drawn once per process by the warm start (2-3 s of matplotlib on 2 cores), not at build time nor per
        # visitor; in a lane of its own, beside the models' steps, which need nothing of it.
        arrival = worked_answer(warm, "compare plots", [cm_plot, score_plot, cost_plot], lambda: (
            confusion_figure(evaluations, style.value), score_figure(evaluations), cost_figure(evaluations)),
            models=search_models[:2], task="search", lane="plots")  # the side-by-side search's defaults

        def compare_api(model: str = "") -> list[dict]:
            """Every measured figure as rows {model, dataset, split, metric, value, command}, read from the
            evaluation files; `model` filters to one catalog model (empty: all)."""
            rows = long_table(all_evaluations(services))
            if model:
                if model not in services.catalog.models:
                    raise gr.Error(f"Unknown model {model!r}; known: {', '.join(services.catalog.models)}.", print_exception=False)
                rows = [r for r in rows if r["model"] == model]
            return rows

        gr.api(compare_api, api_name="compare", concurrency_limit=4)

        def evaluations_api() -> list[dict]:
            """The app's own measurements of its Hub models, one entry per (model, task, collection): {model,
            kind, collection, catalogue, state (waiting, running, done, stored, failed), done, total, step,
            error, seconds, message}. Finished figures are in /compare."""
            return [s.as_dict() for s in services.evaluations.statuses()]

        gr.api(evaluations_api, api_name="evaluations", concurrency_limit=None)
    return arrival
