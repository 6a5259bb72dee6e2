"""Search tab: text→image and image→image search over a FAISS index, the explanation of a clicked result, and
the `/search` and `/explain` APIs."""
from __future__ import annotations

import base64
import io

import gradio as gr
from gradio import FileData
from PIL import Image

from core.explain import METHODS, Explanation, explain, heatmap, overlay
from core.inputs import InputError, clean_text, load_image, parse_choice, parse_k
from core.search import SearchResult, search_image, search_text
from core.services import Services
from core.warmup import WarmStart
from tabs.common import Arrival, notices_markdown, upload_dirs, visitor_errors, worked_answer

# (query, label): held-out concepts are in the collections but in no model's training data.
EXAMPLES = [
    ("a dog on a blue background", "a dog on a blue background"),
    ("a small cat at the top left", "a small cat at the top left"),
    ("a pizza and a flamingo", "a pizza and a flamingo"),
    ("a laptop isolated on white", "a laptop isolated on white"),
    ("a tiger", "a tiger (never seen in training)"),
    ("an octopus on a dark background", "an octopus on a dark background (never seen in training)"),
    ("a pair of sunglasses", "a pair of sunglasses (never seen in training)"),
]
EXAMPLE_QUERIES = [q for q, _ in EXAMPLES]
MAX_K = 50
DEFAULT_K = 12
REAL_EXAMPLE_QUERY = "a dog running through the grass"  # the worked answer on a collection of real photos


def run_search(services: Services, query: str | None, image, k, model: str | None, collection: str | None) -> SearchResult:
    """Validate everything, then search by text or by image (exactly one of them)."""
    catalog = services.catalog
    model = parse_choice(model or catalog.search_models()[0], catalog.search_models(), "model")
    collections = catalog.collections(model)
    collection = parse_choice(collection or collections[0], collections, "collection")
    k = parse_k(k, lo=1, hi=MAX_K)
    has_text = bool(query and str(query).strip())
    if image is not None and has_text:
        raise InputError("Search with a text or with an image, not both at once.")
    encoder, index = services.encoder(model), services.index(model, collection)
    if image is not None:
        return search_image(encoder, index, load_image(image, allowed_dirs=upload_dirs()), k)
    return search_text(encoder, index, query or "", k)


def explain_models(services: Services) -> list[str]:
    """Models that embed texts and images (the supervised classifier has no text side)."""
    catalog = services.catalog
    names = catalog.search_models() + [m for m in catalog.models_for("categorise") if m not in catalog.search_models()]
    return [m for m in names if catalog.model(m).family != "cnn_classifier"]


def run_explain(services: Services, image, text: str | None, model: str | None, method: str | None = "auto") -> Explanation:
    """Where `text` matches in `image`, and which of its words mattered (core.explain)."""
    models = explain_models(services)
    model = parse_choice(model or models[0], models, "model")
    method = parse_choice(method or "auto", list(METHODS), "method")
    text, _ = clean_text(text, field="text to explain")
    if image is None:
        raise InputError("Upload the image to explain first.")
    return explain(services.encoder(model), load_image(image, allowed_dirs=upload_dirs()), text, method)


def explain_hit(services: Services, state: dict | None, index: int) -> tuple[Image.Image, list, str]:
    """The overlay, word weights and a sentence for the hit `index` of the visitor's last search (`state`)."""
    if not state or not 0 <= index < len(state["hits"]):
        raise InputError("Search first, then click a result to see why it matched.")
    hit = Image.open(io.BytesIO(state["hits"][index])).convert("RGB")
    encoder = services.encoder(state["model"])
    if state.get("text"):
        ex = explain(encoder, hit, clean_text(state["text"])[0])
        top = max((abs(w) for _, w in ex.tokens), default=0) or 1.0
        words = [(w, round(v / top, 3)) for w, v in ex.tokens]  # [-1, 1] for the colour scale
        what = f"where “{state['text']}” matches in this result (cosine {ex.score:.3f})"
        heat, method = ex.heatmap, ex.method
    else:  # an image query: where the hit resembles it
        target = encoder.encode_image([load_image(state["image"], allowed_dirs=upload_dirs())])[0]
        heat, method = heatmap(encoder, hit, target)
        words, what = [], "where this result resembles your image"
    how = {"occlusion": "occlusion: how much greying out each region lowers the match",
           "gradient": "gradient × input: how much each region's pixels raise the match"}[method]
    note = f"Heat-map of {what}; {how}. Word colours: how much the match falls without that word."
    return overlay(hit, heat), words, note


def _data_uri(data: bytes) -> str:
    mime = "image/jpeg" if data[:3] == b"\xff\xd8\xff" else "image/png"  # photo collections keep JPEG thumbnails
    return f"data:{mime};base64," + base64.b64encode(data).decode()


def _unseen_label(hit) -> str:
    return f" · 🆕 never seen in training: {', '.join(hit.unseen)}" if hit.unseen else ""


def arrival_answers(services: Services, on_search, model: str | None, collection: str | None) -> dict:
    """worked_answer's compute and models, plus real and ready when the default model is not bundled: then the
    bundled world answers on arrival, saying what is loading, until the default model and collection are ready."""
    bundled = services.catalog.bundled("search")
    if not model or bundled in (None, model):
        return {"compute": lambda: (*on_search(EXAMPLE_QUERIES[0], None, DEFAULT_K, model, collection),
                                    EXAMPLE_QUERIES[0]), "models": [model]}
    there = services.catalog.collections(bundled)[0]
    loading = (f"⏳ **{model}** on **{collection}** is loading (a download, and on a first start the collection's "
               f"index, built once). Until it is ready this example comes from the bundled demo world ({bundled}, "
               f"{there}); reload the page then to see it on real photos.")

    def meanwhile():
        gallery, notes, state = on_search(EXAMPLE_QUERIES[0], None, DEFAULT_K, bundled, there)
        return gallery, loading + "\n\n" + notes, state, EXAMPLE_QUERIES[0]

    return {"compute": meanwhile, "models": [bundled, model],
            "real": lambda: (*on_search(REAL_EXAMPLE_QUERY, None, DEFAULT_K, model, collection), REAL_EXAMPLE_QUERY),
            "ready": lambda: services.ready(model, collection)}


def build_status(services: Services) -> dict:
    """The line above the Search tab while the app builds an index (hidden when none is being built)."""
    lines = services.builds.status_lines()
    return gr.Markdown("\n\n".join(f"⏳ {line}" for line in lines), visible=bool(lines))


def build(services: Services, warm: WarmStart) -> Arrival:
    """The tab; its worked answer (the first example query, searched once) is shown on arrival."""
    catalog = services.catalog
    models = catalog.search_models()
    with gr.Tab("Search", id="search", elem_id="search-tab"):
        gr.Markdown(
            "Describe a picture and get the closest images from the index, ranked by cosine similarity "
            "between the text and image embeddings; or upload an image to find similar ones."
        )
        building = gr.Markdown(visible=False, elem_id="index-builds")
        if any(spec.build for spec in catalog.indexes):  # only catalogs with indexes the app may build poll
            gr.Timer(2.0).tick(lambda: build_status(services), None, building, api_visibility="private",
                               show_progress="hidden", queue=False)
        with gr.Row():
            with gr.Column(scale=2):
                query = gr.Textbox(EXAMPLE_QUERIES[0], label="Description", placeholder="e.g. a dog on a blue background",
                                   max_lines=3)
                image = gr.Image(label="…or an image", type="filepath", sources=["upload", "clipboard"], height=180)
                with gr.Row():
                    model = gr.Dropdown(models, value=models[0] if models else None, label="Model")
                    first = catalog.collections(models[0]) if models else []
                    collection = gr.Dropdown(first, value=first[0] if first else None, label="Collection")
                k = gr.Slider(1, MAX_K, value=DEFAULT_K, step=1, label="Number of results (k)")
                with gr.Row():
                    go = gr.Button("Search", variant="primary")
                    clear = gr.ClearButton([query, image], value="Clear")
                notes = gr.Markdown()
            with gr.Column(scale=3):
                gallery = gr.Gallery(label="Results (click one to see why it matched)", columns=4, height=560,
                                     object_fit="contain", elem_id="search-results")
                with gr.Accordion("Why this result?", open=False) as why:
                    with gr.Row():
                        why_image = gr.Image(label="Where the query matched", height=260, elem_id="explain-heatmap")
                        with gr.Column():
                            why_words = gr.HighlightedText(label="Which words mattered", combine_adjacent=False,
                                                           show_legend=False, elem_id="explain-words")
                            why_note = gr.Markdown()
        gr.Examples(EXAMPLE_QUERIES, inputs=[query], label="Example queries",
                    example_labels=[label for _, label in EXAMPLES])
        last = gr.State(None)  # this visitor's last search: model, query and hit images, for explanations

        @visitor_errors
        def on_search(q, img, k_, m, c):
            result = run_search(services, q, img, k_, m, c)
            items = [(Image.open(io.BytesIO(h.image_png)), f"{h.score:.3f} · {h.caption}" + _unseen_label(h))
                     for h in result.hits]
            summary = f"{len(items)} best of {result.searched:,} images, by cosine similarity (shown before each caption)."
            state = {"model": m or models[0], "text": "" if img is not None else (q or "").strip(), "image": img,
                     "hits": [h.image_png for h in result.hits]}
            return items, "\n\n".join(filter(None, [summary, notices_markdown(result.notices)])), state

        @visitor_errors
        def on_select(state, evt: gr.SelectData):
            picture, words, note = explain_hit(services, state, evt.index)
            return picture, words, note, gr.Accordion(open=True)

        def on_model(m):
            choices = catalog.collections(m) if m in models else []
            return gr.Dropdown(choices=choices, value=choices[0] if choices else None)

        inputs = [query, image, k, model, collection]
        for trigger in (go.click, query.submit, image.upload):
            trigger(on_search, inputs, [gallery, notes, last], api_visibility="private")
        gallery.select(on_select, last, [why_image, why_words, why_note, why], api_visibility="private")
        model.change(on_model, model, collection, api_visibility="private")
        arrival = worked_answer(warm, "search worked answer", [gallery, notes, last, query],  # hits can be explained
                                **arrival_answers(services, on_search, model.value, collection.value), task="search")

        def search(
            query: str = "", image: FileData | None = None, k: int = 10, model: str = "", collection: str = ""
        ) -> list[dict]:
            """Search the index by text (query) or by image (image); returns [{id, score, caption, image,
            never_seen_in_training}], best first, where image is a PNG data URI and never_seen_in_training lists
            the picture's concepts no bundled model was trained on. Empty model/collection pick the defaults. A
            query far from anything the model knows comes with a warning (see README)."""
            result = visitor_errors(run_search)(services, query, image, k, model, collection)
            for notice in result.notices:  # e.g. truncation; shown as a toast, logged by clients
                gr.Warning(notice)
            return [
                {"id": h.id, "score": round(h.score, 6), "caption": h.caption, "image": _data_uri(h.image_png),
                 "never_seen_in_training": list(h.unseen)}
                for h in result.hits
            ]

        gr.api(search, api_name="search", concurrency_limit=4)

        def explain_api(image: FileData | None = None, text: str = "", model: str = "", method: str = "auto") -> dict:
            """Where text matches in image, and which of its words mattered. Returns {heatmap: 6x6 list of
            rows, top row first, in [0, 1]; tokens: [{token, weight}] with weight the drop in cosine without that
            word; score: the cosine; method: the map's method}. method: "occlusion" (the baseline), "gradient"
            (gradient x input, one backward pass) or "auto" (occlusion for small image towers, gradient for large
            ones). Empty model picks the default."""
            ex = visitor_errors(run_explain)(services, image, text, model, method)
            return {"heatmap": [[round(float(v), 4) for v in row] for row in ex.heatmap],
                    "tokens": [{"token": w, "weight": round(v, 6)} for w, v in ex.tokens],
                    "score": round(ex.score, 6), "method": ex.method}

        gr.api(explain_api, api_name="explain", concurrency_limit=2)
    return arrival
