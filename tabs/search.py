"""Search tab: text→image and image→image search over a FAISS index, plus the `/search` API."""
from __future__ import annotations

import base64
import io

import gradio as gr
from gradio import FileData
from PIL import Image

from core.inputs import InputError, load_image, parse_choice, parse_k
from core.search import SearchResult, search_image, search_text
from core.services import Services
from core.warmup import WarmStart
from tabs.common import Arrival, notices_markdown, upload_dirs, visitor_errors, worked_answer

EXAMPLE_QUERIES = [
    "a dog on a blue background",
    "a small cat at the top left",
    "a rocket and a pizza",
    "a tree in the center of a yellow picture",
    "a laptop isolated on white",
]
MAX_K = 50
DEFAULT_K = 12


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


def _data_uri(data: bytes) -> str:
    mime = "image/jpeg" if data[:3] == b"\xff\xd8\xff" else "image/png"  # photo collections keep JPEG thumbnails
    return f"data:{mime};base64," + base64.b64encode(data).decode()


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
                gallery = gr.Gallery(label="Results", columns=4, height=560, object_fit="contain", elem_id="search-results")
        gr.Examples(EXAMPLE_QUERIES, inputs=[query], label="Example queries")

        @visitor_errors
        def on_search(q, img, k_, m, c):
            result = run_search(services, q, img, k_, m, c)
            items = [(Image.open(io.BytesIO(h.image_png)), f"{h.score:.3f} · {h.caption}") for h in result.hits]
            summary = f"{len(items)} best of {result.searched:,} images, by cosine similarity (shown before each caption)."
            return items, "\n\n".join(filter(None, [summary, notices_markdown(result.notices)]))

        def on_model(m):
            choices = catalog.collections(m) if m in models else []
            return gr.Dropdown(choices=choices, value=choices[0] if choices else None)

        inputs = [query, image, k, model, collection]
        for trigger in (go.click, query.submit, image.upload):
            trigger(on_search, inputs, [gallery, notes], api_visibility="private")
        model.change(on_model, model, collection, api_visibility="private")
        arrival = worked_answer(warm, "search worked answer", [gallery, notes],
                                lambda: on_search(EXAMPLE_QUERIES[0], None, DEFAULT_K, model.value, collection.value),
                                models=[model.value], task="search")

        def search(
            query: str = "", image: FileData | None = None, k: int = 10, model: str = "", collection: str = ""
        ) -> list[dict]:
            """Search the index by text (query) or by image (image); returns [{id, score, caption, image}],
            best first, where image is a PNG data URI. Empty model/collection pick the defaults."""
            result = visitor_errors(run_search)(services, query, image, k, model, collection)
            for notice in result.notices:  # e.g. truncation; shown as a toast, logged by clients
                gr.Warning(notice)
            return [
                {"id": h.id, "score": round(h.score, 6), "caption": h.caption, "image": _data_uri(h.image_png)}
                for h in result.hits
            ]

        gr.api(search, api_name="search", concurrency_limit=4)
    return arrival
