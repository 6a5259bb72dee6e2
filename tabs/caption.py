"""Caption tab: a caption for a photo and, for every generated word, where the model looked; and `/caption`."""
from __future__ import annotations

import io
from pathlib import Path

import gradio as gr
from gradio import FileData
from PIL import Image

from core.caption import MAX_BEAM, caption, token_heats
from core.explain import overlay
from core.compare import read_evaluation
from core.inputs import InputError, load_image, parse_choice
from core.services import Services
from core.warmup import WarmStart
from tabs.common import Arrival, example_files, upload_dirs, visitor_errors, worked_answer

EXAMPLES_DIR = Path(__file__).resolve().parent.parent / "assets" / "examples" / "scenes"
DEFAULT_BEAM = 3


def run_caption(services: Services, image, model: str | None, beam_size):
    models, offered = services.catalog.models_for("caption"), services.catalog.picker_models("caption")
    model = parse_choice(model or (offered[0] if offered else None), models, "model")
    if image is None:
        raise InputError("Upload a photo (or pick an example) first.")
    img = load_image(image, allowed_dirs=upload_dirs() + [EXAMPLES_DIR])
    captioner = services.encoder(model)
    return img, captioner, caption(captioner, img, beam_size)


def _metrics_table(services: Services) -> list[list]:
    rows = []
    for name in services.catalog.models_for("caption"):
        for beam, m in read_evaluation(services.catalog, name, "scenes", "test").get("captioning", {}).items():
            rows.append([name, beam, *(round(m[k], 1) if k in m else None
                                       for k in ("BLEU-1", "BLEU-4", "objects_named", "CHAIR_i", "CHAIR_s",
                                                 "position_accuracy", "pointing", "pointing_chance",
                                                 "repeated_phrase_rate"))])
    return rows


def _arrival_answers(services: Services, on_caption, example, default: str | None) -> dict:
    """worked_answer's compute and models, plus real and ready when the default captioner is not bundled: then
    the bundled captioner answers on a demo scene, saying what is loading, until the default captioner and the
    Search tab's default collection (real photos) are ready; then that collection's first photo is the example."""
    catalog = services.catalog
    bundled = catalog.bundled("caption")
    photos = catalog.defaults.get("search", {})
    if not default or bundled in (None, default) or "collection" not in photos:
        return {"compute": lambda: (*on_caption(example, default, DEFAULT_BEAM), example, default, ""),
                "models": [default]}
    loading = (f"⏳ **{default}** and the **{photos['collection']}** photos are loading. Until they are ready this "
               f"example is a demo-world scene captioned by {bundled}; reload the page then to see a real photo.")

    def meanwhile():
        return (*on_caption(example, bundled, DEFAULT_BEAM), example, bundled, loading)

    def real():
        meta = services.index(photos["model"], photos["collection"]).meta
        picture = Image.open(io.BytesIO(meta.iloc[0]["image"])).convert("RGB")
        return (*on_caption(picture, default, DEFAULT_BEAM), picture, default, "")

    return {"compute": meanwhile, "models": [bundled, default], "real": real,
            "ready": lambda: services.ready(default) and services.ready(photos["model"], photos["collection"])}


def build(services: Services, warm: WarmStart) -> Arrival:
    """The tab; its worked answer (the first example photo, captioned once) is shown on arrival."""
    models = services.catalog.picker_models("caption")
    examples, example_labels = example_files(EXAMPLES_DIR)
    with gr.Tab("Caption", id="caption", elem_id="caption-tab"):
        gr.Markdown(
            "Upload a photo: the model writes a caption word by word, and for each word shows where in the image "
            "it looked. Click a word in the legend to see its map. The bundled **demo-captioner** is *grounded*: it "
            "names only the concepts its image tower recognises, each with the cells where it saw it (so it invents "
            "no object; beam size has no effect on it), and says so when it sees nothing of the demo world. "
            "BLIP (with the Hub catalog) writes freely, with beam search and its cross-attention per word."
        )
        with gr.Row():
            with gr.Column(scale=2):
                image = gr.Image(examples[0] if examples else None, label="Photo", type="filepath",
                                 sources=["upload", "clipboard"], height=240)
                model = gr.Dropdown(models, value=models[0] if models else None, label="Model")
                beam = gr.Slider(1, MAX_BEAM, value=DEFAULT_BEAM, step=1,
                                 label="Beam size (1 = greedy; generative captioners only)")
                go = gr.Button("Caption", variant="primary")
                if examples:
                    gr.Examples(examples, inputs=[image], label="Example photos",
                                example_labels=example_labels)
            with gr.Column(scale=3):
                text = gr.Textbox(label="Caption", interactive=False, elem_id="caption-text")
                loading_note = gr.Markdown()  # what is loading while the worked answer is the bundled world's
                annotated = gr.AnnotatedImage(label="Attention per word (click a word in the legend)", height=320)
        strip = gr.Gallery(label="Every word with its attention map", columns=8, height=220, elem_id="caption-strip")
        with gr.Accordion("Measured on the demo test split (1,000 scenes, five references each)", open=False):
            gr.Dataframe(
                _metrics_table(services),
                headers=["model", "beam", "BLEU-1", "BLEU-4", "objects named %", "CHAIR-i % (objects invented)",
                         "CHAIR-s % (captions inventing one)", "position words right %", "pointing %",
                         "pointing chance %", "repeated phrases %"],
                label="Measured by `python -m evaluation.evaluate --config scenes --split test` (captioning models)",
            )

        @visitor_errors
        def on_caption(img, m, b):
            picture, captioner, result = run_caption(services, img, m, b)
            heats = token_heats(captioner, picture, result)
            labels = [f"{i + 1}. {w}" for i, w in enumerate(result.tokens)]
            return (result.caption, (picture, list(zip(heats, labels))),
                    [(overlay(picture, h), lab) for h, lab in zip(heats, labels)])

        outputs = [text, annotated, strip]
        go.click(on_caption, [image, model, beam], outputs, api_visibility="private")
        image.upload(on_caption, [image, model, beam], outputs, api_visibility="private")
        arrival = worked_answer(warm, "caption worked answer", outputs + [image, model, loading_note],
                                **_arrival_answers(services, on_caption, examples[0] if examples else None, model.value),
                                task="caption")

        def caption_api(image: FileData | None = None, model: str = "", beam_size: int = 3) -> dict:
            """Caption a photo. Returns {caption, tokens, attention}: one attention map per token, each a 2-D
            list (rows x columns) at the model's feature-grid resolution, summing to one."""
            _, _, result = visitor_errors(run_caption)(services, image, model, beam_size)
            return {"caption": result.caption, "tokens": result.tokens,
                    "attention": [a.round(6).tolist() for a in result.attention]}

        gr.api(caption_api, api_name="caption", concurrency_limit=2)
    return arrival
