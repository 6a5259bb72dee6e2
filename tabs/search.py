"""Search tab: text→image and image→image search over a FAISS index, the explanation of a clicked result, and
the `/search` and `/explain` APIs."""
from __future__ import annotations

import base64
import io
import json
from pathlib import Path

import gradio as gr
from gradio import FileData
from PIL import Image

from core.explain import METHODS, Explanation, explain, heatmap, overlay
from core.inputs import InputError, clean_text, load_image, parse_choice, parse_k
from core.private import HANDLE_PREFIX, IDLE_S, LIMITS_TEXT, NothingIndexed, PrivateCollection, PrivateCollections
from core.search import SearchResult, search_image, search_text
from core.services import Services
from core.warmup import WarmStart
from demo_world.examples import example_queries
from tabs.common import Arrival, notices_markdown, upload_dirs, visitor_errors, worked_answer

# (query, label): chosen by the rule in demo_world.examples; held-out concepts are in the collections but in no
# model's training data.
EXAMPLES = [(q, label) for q, label, _ in example_queries()]
EXAMPLE_QUERIES = [q for q, _ in EXAMPLES]
MAX_K = 50
DEFAULT_K = 12
KEEP_DOWNLOADS = 4  # results files a session keeps in its folder
BUILDS_WAITING = 8  # private builds held by the app at once: one runs (core.private), the others say they wait
REAL_EXAMPLE_QUERY = "a dog running through the grass"  # the worked answer on a collection of real photos


def search_target(services: Services, model: str | None, collection: str | None, private: PrivateCollections | None = None,
                  session: str | None = None) -> tuple[str, object, PrivateCollection | None]:
    """(model, index, the private collection or None) that a search of `collection` with `model` goes to. A
    private collection's handle is looked up in the caller's session only, and is searched with its own model."""
    catalog = services.catalog
    if isinstance(collection, str) and collection.strip().startswith(HANDLE_PREFIX):
        mine = (private or PrivateCollections()).get(session, collection.strip())
        if model and parse_choice(model, catalog.search_models(), "model") != mine.model:
            raise InputError(f"Your pictures were indexed with {mine.model}; search them with that model, or build "
                             f"your collection again with {model.strip()}.")
        return mine.model, mine.index, mine
    model = parse_choice(model or catalog.picker_models("search")[0], catalog.search_models(), "model")
    collections = catalog.collections(model)
    collection = parse_choice(collection or collections[0], collections, "collection")
    return model, services.index(model, collection), None


def search_in(services: Services, query: str | None, image, k, model: str | None, collection: str | None,
              private: PrivateCollections | None = None, session: str | None = None
              ) -> tuple[SearchResult, str, PrivateCollection | None]:
    """Validate everything, then search by text or by image (exactly one of them): (result, model used, the
    private collection searched or None)."""
    model, index, mine = search_target(services, model, collection, private, session)
    k = parse_k(k, lo=1, hi=MAX_K)
    has_text = bool(query and str(query).strip())
    if image is not None and has_text:
        raise InputError("Search with a text or with an image, not both at once.")
    encoder = services.encoder(model)
    if image is not None:
        return search_image(encoder, index, load_image(image, allowed_dirs=upload_dirs()), k), model, mine
    return search_text(encoder, index, query or "", k), model, mine


def run_search(services: Services, query: str | None, image, k, model: str | None, collection: str | None,
               private: PrivateCollections | None = None, session: str | None = None) -> SearchResult:
    """`search_in`'s result alone."""
    return search_in(services, query, image, k, model, collection, private, session)[0]


def result_rows(result: SearchResult, model: str, mine: PrivateCollection | None) -> list[dict]:
    """The hits as the JSON download lists them: rank, file name (your pictures; null for the bundled
    collections, whose pictures are named by id), id, score, caption, model."""
    return [{"rank": rank, "file_name": h.id if mine else None, "id": h.id, "score": round(h.score, 6),
             "caption": h.caption, "model": model} for rank, h in enumerate(result.hits, 1)]


def results_json(folder: Path, query: str, model: str, collection: str, rows: list[dict]) -> Path:
    """Write the results to `folder` (the session's own) as search-results.json, in a fresh subfolder so an
    earlier download is never overwritten while Gradio copies it."""
    import shutil
    import tempfile

    earlier = sorted((p for p in folder.iterdir() if p.is_dir()), key=lambda p: p.stat().st_mtime)
    for old in earlier[:-KEEP_DOWNLOADS]:  # Gradio has long copied these; a session keeps only its last few
        shutil.rmtree(old, ignore_errors=True)
    out = Path(tempfile.mkdtemp(dir=folder)) / "search-results.json"
    out.write_text(json.dumps({"query": query, "model": model, "collection": collection, "results": rows},
                              indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    return out


def build_private(services: Services, private: PrivateCollections, session: str | None, files, model: str | None,
                  progress=None, waiting=None) -> PrivateCollection:
    """Index the visitor's uploads with a search model (the default when `model` is empty)."""
    models = services.catalog.search_models()
    model = parse_choice(model or services.catalog.picker_models("search")[0], models, "model")
    return private.build(session, files, services.encoder(model), model, upload_dirs(), progress, waiting)


def build_summary(c: PrivateCollection) -> str:
    skipped = f" {len(c.skipped)} {'file was' if len(c.skipped) == 1 else 'files were'} skipped (listed below)." \
        if c.skipped else ""
    return (f"✅ Indexed **{c.count}** of your pictures with **{c.model}** in {c.seconds:.1f} s.{skipped} "
            "Search them now: they are the collection “your pictures”, visible to you only.")


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
        gallery, notes, *rest = on_search(EXAMPLE_QUERIES[0], None, DEFAULT_K, bundled, there)
        return gallery, loading + "\n\n" + notes, *rest, EXAMPLE_QUERIES[0]

    return {"compute": meanwhile, "models": [bundled, model],
            "real": lambda: (*on_search(REAL_EXAMPLE_QUERY, None, DEFAULT_K, model, collection), REAL_EXAMPLE_QUERY),
            "ready": lambda: services.ready(model, collection)}


def build_status(services: Services) -> dict:
    """The line above the Search tab while the app builds an index (hidden when none is being built)."""
    lines = services.builds.status_lines()
    return gr.Markdown("\n\n".join(f"⏳ {line}" for line in lines), visible=bool(lines))


def collection_choices(services: Services, private: PrivateCollections, model: str | None, session: str | None) -> list:
    """The catalog's collections for `model`, and the visitor's own pictures if indexed with `model`."""
    catalog = services.catalog
    choices = list(catalog.collections(model)) if model in catalog.search_models() else []
    mine = private.of_session(session)
    return choices + ([(mine.label(), mine.handle)] if mine and mine.model == model else [])


def your_pictures_panel() -> dict:
    """The "Your pictures" accordion's components, by name."""
    with gr.Accordion("Your pictures: search your own collection", open=False, elem_id="your-pictures"):
        gr.Markdown(f"Upload {LIMITS_TEXT}. They are indexed with the model chosen above, for you only: no other "
                    "visitor can see or search them, and they are freed when you close the page (or after "
                    f"{IDLE_S // 60} minutes without use).")
        uploads = gr.File(label="Your pictures or one zip", file_count="multiple", file_types=["image", ".zip"],
                          elem_id="your-pictures-files")
        with gr.Row():
            start = gr.Button("Build my collection", variant="secondary", elem_id="your-pictures-build")
            forget = gr.Button("Forget my pictures", visible=False, size="sm")
        status = gr.Markdown(elem_id="your-pictures-status")
        skipped = gr.Dataframe(headers=["file", "why it was skipped"], visible=False, wrap=True, interactive=False,
                               elem_id="your-pictures-skipped")
    return {"uploads": uploads, "start": start, "forget": forget, "status": status, "skipped": skipped}


def wire_your_pictures(services: Services, private: PrivateCollections, panel: dict, model, collection) -> None:
    """Build / forget in the UI, the same from the API (/build_collection, /forget_collection), and the
    collection freed when the page closes."""
    outputs = [panel["status"], panel["skipped"], collection, panel["forget"]]

    @visitor_errors
    def on_build(files, m, request: gr.Request, progress=gr.Progress()):
        def embedded(done: int, total: int) -> None:
            progress((done, total), desc="Embedding your pictures", unit="images")

        def waiting(ahead: int) -> None:
            progress(0.0, desc=f"Queued: waiting for {ahead} other {'build' if ahead == 1 else 'builds'} to finish "
                               "(the server indexes one collection at a time); yours starts right after.")

        try:
            mine = build_private(services, private, request.session_hash, files, m, embedded, waiting)
        except NothingIndexed as e:  # show every reason, not only an error toast
            return f"⚠️ {e}", gr.Dataframe([[s.file, s.reason] for s in e.skipped], visible=True), gr.skip(), gr.skip()
        rows = [[s.file, s.reason] for s in mine.skipped]
        choices = collection_choices(services, private, mine.model, request.session_hash)
        return (build_summary(mine), gr.Dataframe(rows, visible=bool(rows)),
                gr.Dropdown(choices=choices, value=mine.handle), gr.Button(visible=True))

    def on_forget(m, request: gr.Request):
        private.forget(request.session_hash)
        choices = collection_choices(services, private, m, None)
        return ("Your pictures were removed from the server.", gr.Dataframe(visible=False),
                gr.Dropdown(choices=choices, value=choices[0] if choices else None), gr.Button(visible=False))

    def on_unload(request: gr.Request) -> None:  # the page was closed: its pictures go with it
        private.forget(request.session_hash)

    panel["start"].click(on_build, [panel["uploads"], model], outputs, api_visibility="private",
                         concurrency_limit=BUILDS_WAITING, concurrency_id="private-builds")
    panel["forget"].click(on_forget, model, outputs, api_visibility="private")
    gr.context.Context.root_block.unload(on_unload)

    def build_collection(files: list[FileData], model: str = "", request: gr.Request = None) -> dict:
        """Index your pictures (up to 200 image files, or one zip of them of at most 50 MB) with a search
        model (empty: the default), privately: returns {collection, model, pictures, skipped: [{file, reason}],
        seconds}. collection is a handle valid for this client's session only: pass it as /search's collection.
        Building again replaces the previous collection; it is freed when the client closes or after 30
        minutes without use."""
        session = request.session_hash if request else None
        mine = visitor_errors(build_private)(services, private, session, files, model)
        return {"collection": mine.handle, "model": mine.model, "pictures": mine.count,
                "skipped": [{"file": s.file, "reason": s.reason} for s in mine.skipped],
                "seconds": round(mine.seconds, 3)}

    def forget_collection(request: gr.Request = None) -> bool:
        """Free this client's private collection now; true if there was one."""
        return private.forget(request.session_hash if request else None)

    gr.api(build_collection, api_name="build_collection", concurrency_limit=BUILDS_WAITING,
           concurrency_id="private-builds")
    gr.api(forget_collection, api_name="forget_collection")


def build(services: Services, warm: WarmStart) -> Arrival:
    """The tab; its worked answer (the first example query, searched once) is shown on arrival."""
    catalog = services.catalog
    models = catalog.picker_models("search")
    private = PrivateCollections()  # every session's own pictures, for this app; freed when a session ends
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
                download = gr.DownloadButton("Download results (JSON)", size="sm", elem_id="search-download")
                panel = your_pictures_panel()
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

        def search_outputs(q, img, k_, m, c, session: str | None):
            result, used, mine = search_in(services, q, img, k_, m, c, private, session)
            items = [(Image.open(io.BytesIO(h.image_png)), f"{h.score:.3f} · {h.caption}" + _unseen_label(h))
                     for h in result.hits]
            where = f"your {result.searched:,} pictures" if mine else f"{result.searched:,} images"
            summary = f"{len(items)} best of {where}, by cosine similarity (shown before each caption)."
            text = "" if img is not None else (q or "").strip()
            state = {"model": used, "text": text, "image": img, "hits": [h.image_png for h in result.hits]}
            path = results_json(private.folder(session), text or "(an image)", used,
                                mine.label() if mine else c or catalog.collections(used)[0],
                                result_rows(result, used, mine))
            return items, "\n\n".join(filter(None, [summary, notices_markdown(result.notices)])), state, str(path)

        @visitor_errors
        def on_search(q, img, k_, m, c, request: gr.Request):
            return search_outputs(q, img, k_, m, c, request.session_hash)

        def worked(q, img, k_, m, c) -> tuple:
            """An arrival's answer, the same for every visitor: its JSON download served from Gradio's cache."""
            *shown, path = search_outputs(q, img, k_, m, c, None)
            return (*shown, download.move_resource_to_block_cache(path))

        @visitor_errors
        def on_select(state, evt: gr.SelectData):
            picture, words, note = explain_hit(services, state, evt.index)
            return picture, words, note, gr.Accordion(open=True)

        def on_model(m, request: gr.Request):
            choices = collection_choices(services, private, m, request.session_hash)
            return gr.Dropdown(choices=choices, value=choices[0] if choices else None)

        inputs = [query, image, k, model, collection]
        for trigger in (go.click, query.submit, image.upload):
            trigger(on_search, inputs, [gallery, notes, last, download], api_visibility="private")
        gallery.select(on_select, last, [why_image, why_words, why_note, why], api_visibility="private")
        model.change(on_model, model, collection, api_visibility="private")
        wire_your_pictures(services, private, panel, model, collection)
        arrival = worked_answer(warm, "search worked answer", [gallery, notes, last, download, query],  # explainable
                                **arrival_answers(services, worked, model.value, collection.value), task="search")

        def search(
            query: str = "", image: FileData | None = None, k: int = 10, model: str = "", collection: str = "",
            request: gr.Request = None,
        ) -> list[dict]:
            """Search the index by text (query) or by image (image); returns [{id, score, caption, image,
            never_seen_in_training, far_from_known, photo_reading}], best first, where image is a PNG data URI and
            never_seen_in_training lists the picture's concepts no bundled model was trained on. Empty
            model/collection pick the defaults. far_from_known is true (on every hit) when the query is far from
            anything the model knows: the hits are then the closest pictures, not matches; photo_reading is
            non-empty when an uploaded photograph was answered across domains by what ImageNet sees in it. collection
            may be the handle /build_collection returned to this client: its hits also carry file_name, the
            uploaded file's name (see README)."""
            session = request.session_hash if request else None
            result, _, mine = visitor_errors(search_in)(services, query, image, k, model, collection, private, session)
            for notice in result.notices:  # e.g. truncation; shown as a toast, logged by clients
                gr.Warning(notice)
            return [
                {"id": h.id, "score": round(h.score, 6), "caption": h.caption, "image": _data_uri(h.image_png),
                 "never_seen_in_training": list(h.unseen), "far_from_known": result.far_from_known,
                 "photo_reading": result.photo_reading, **({"file_name": h.id} if mine else {})}
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
