"""Categorise tab: zero-shot product categorisation (catalogue categories or the visitor's labels), a
supervised CNN baseline beside it, a heat-map of what supports the answer, the seeds' analysis, and `/categorise`."""
from __future__ import annotations

import io
from pathlib import Path

import gradio as gr
import numpy as np
from gradio import FileData
from matplotlib.figure import Figure
from PIL import Image

from core.catalog import DEMO_CATALOGUE
from core.categorise import DOUBT_MARGIN, categorise_upload
from core.compare import read_evaluation
from core.explain import overlay
from core.inputs import InputError, load_image, parse_choice, parse_labels
from core.services import Services
from core.warmup import WarmStart
from tabs.common import Arrival, example_files, notices_markdown, upload_dirs, visitor_errors, worked_answer

STYLES = {"descriptive prompts": "descriptive", "bare category names": "bare", "my own labels": "custom"}
HEATMAP_METHODS = {"occlusion": "occlusion (how much greying out each region lowers the top category's score)",
                   "gradient": "gradient × input (how much each region's pixels push the image towards the top "
                               "category; measured against occlusion in README, Explanations)"}
EXAMPLES_DIR = Path(__file__).resolve().parent.parent / "assets" / "examples" / "products"


def run_categorise(services: Services, image, labels: str | None, model: str | None, style: str | None,
                   catalogue: str | None = None):
    models = services.catalog.models_for("categorise")
    model = parse_choice(model or _default_model(services, services.catalog.picker_models("categorise")), models, "model")
    names = services.catalog.catalogue_names()
    chosen = services.catalog.catalogue(parse_choice(catalogue or names[0], names, "catalogue"))
    style = parse_choice(style or "descriptive", ["descriptive", "bare", "custom"], "prompt style")
    custom = None
    notices: list[str] = []
    if style == "custom" or (labels and labels.strip()):
        custom, notices = parse_labels(labels)
    if image is None:
        raise InputError("Upload a product photo (or pick an example) first.")
    img = load_image(image, allowed_dirs=upload_dirs() + [EXAMPLES_DIR])
    result = categorise_upload(services, model, img, custom, "descriptive" if style == "custom" else style,
                               catalogue=chosen)
    result.notices = notices + result.notices
    return img, result


def _explain(result) -> str:
    badge = (
        f"⚠️ **Doubtful**: the top two categories are {result.margin:.0%} apart (under {DOUBT_MARGIN:.0%}); "
        "a person should review this one."
        if result.doubtful
        else f"✅ **Confident**: {result.margin:.0%} ahead of the runner-up (doubtful under {DOUBT_MARGIN:.0%})."
    )
    prompts = "".join(f"\n- **{c}**: " + " · ".join(f"“{p}”" for p in ps) for c, ps in result.prompts.items())
    used = f"\n\nPrompts used (averaged per class):{prompts}" if prompts else "\n\nSupervised model: no prompts."
    used += f"\n\nHeat-map: {HEATMAP_METHODS.get(result.heatmap_method, result.heatmap_method)}." if result.heatmap_method else ""
    return badge + used + ("\n\n" + notices_markdown(result.notices) if result.notices else "")


def _analysis_table(services: Services) -> list[list]:
    rows = []
    for name in services.catalog.models_for("categorise"):
        for style, m in _eval(services, name).get("styles", {}).items():
            rows.append([name, style, *(round(m[k], 1) for k in ("accuracy", "macro_precision", "macro_recall", "macro_f1", "balanced_accuracy"))])
    return rows


def _eval(services: Services, model: str) -> dict:
    return read_evaluation(services.catalog, model, "products", "test")


def _confusion_plot(services: Services, model: str, style: str):
    data = _eval(services, model)
    styles = data.get("styles", {})
    style = style if style in styles else next(iter(styles), None)
    fig = Figure(figsize=(6, 5))  # no pyplot: its global figure list would grow per request
    ax = fig.subplots()
    if style is None:
        ax.text(0.5, 0.5, "not evaluated yet", ha="center")
        return fig
    cm = np.array(styles[style]["confusion_matrix"])
    ax.imshow(cm, cmap="Blues")
    ax.set_xticks(range(len(cm)), data["classes"], rotation=45, ha="right", fontsize=8)
    ax.set_yticks(range(len(cm)), data["classes"], fontsize=8)
    for (i, j), v in np.ndenumerate(cm):
        ax.text(j, i, str(v), ha="center", va="center", fontsize=8, color="white" if v > cm.max() / 2 else "black")
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    ax.set_title(f"{model} · {style} · accuracy {styles[style]['accuracy']:.1f}%")
    fig.tight_layout()
    return fig


def _similarity_plot(services: Services, model: str, style: str):
    styles = _eval(services, model).get("styles", {})
    fig = Figure(figsize=(6, 3.2))
    ax = fig.subplots()
    sims = styles.get(style, {}).get("mean_similarity_per_class")
    if not sims:
        ax.text(0.5, 0.5, "only zero-shot models have prompt similarities", ha="center")
        ax.axis("off")
        return fig
    ax.barh(list(sims), list(sims.values()), color="#4c72b0")
    ax.set_xlabel("mean cosine similarity, images of the class vs its prompts")
    ax.invert_yaxis()
    fig.tight_layout()
    return fig


def _top_images(services: Services, model: str, style: str) -> list:
    """The test products closest to each class's prompts (the seeds' "top images per class")."""
    import io

    from PIL import Image

    top = _eval(services, model).get("styles", {}).get(style, {}).get("top_images_per_class", {})
    products = [i for i in services.catalog.indexes if i.collection.startswith("demo products")]
    if not top or not products:
        return []
    meta = services.index(products[0].model, products[0].collection).meta.set_index("id")
    return [(Image.open(io.BytesIO(meta.loc[i, "image"])), f"{c}") for c, ids in top.items() for i in ids if i in meta.index]


def _analysis(services: Services, model: str, style: str):
    return _confusion_plot(services, model, style), _similarity_plot(services, model, style), _top_images(services, model, style)


def _default_model(services: Services, models: list[str]) -> str | None:
    """The catalog's default, else the zero-shot model with the best measured accuracy (the tab's point is
    zero-shot), else the first."""
    if (first := services.catalog.defaults.get("categorise", {}).get("model")) in models:
        return first
    scores = {m: _eval(services, m).get("styles", {}).get("descriptive", {}).get("accuracy", -1) for m in models}
    return max(models, key=lambda m: scores[m]) if models else None


def _arrival_answers(services: Services, on_categorise, example, default: str | None) -> dict:
    """worked_answer's compute and models, plus real and ready when the default model is not bundled: then a
    bundled model answers on the demo catalogue, saying what is loading, until the default model and its
    catalogue's collection are ready; then the collection's first picture is the example."""
    catalog = services.catalog
    first = catalog.catalogue_names()[0]
    spec = catalog.catalogue(first)
    bundled = catalog.bundled("categorise")
    style = "descriptive prompts"
    if not default or bundled in (None, default) or spec.collection not in catalog.collections(default):
        return {"compute": lambda: (*on_categorise(example, "", default, style, first), example, default, first),
                "models": [default]}
    loading = (f"⏳ **{default}** and the **{spec.collection}** pictures are loading (a download, and on a first "
               f"start the collection's index, built once). Until they are ready this example is the demo world's, "
               f"categorised by {bundled}; reload the page then to see a real product photo.")

    def meanwhile():
        probs, heat, text = on_categorise(example, "", bundled, style, DEMO_CATALOGUE)
        return probs, heat, loading + "\n\n" + text, example, bundled, DEMO_CATALOGUE

    def real():
        meta = services.index(default, spec.collection).meta
        picture = Image.open(io.BytesIO(meta.iloc[0]["image"])).convert("RGB")
        return (*on_categorise(picture, "", default, style, first), picture, default, first)

    return {"compute": meanwhile, "models": [bundled, default], "real": real,
            "ready": lambda: services.ready(default, spec.collection)}


def build(services: Services, warm: WarmStart) -> Arrival:
    """The tab; its worked answer (the first example product, categorised once) is shown on arrival."""
    catalog = services.catalog
    models = catalog.picker_models("categorise")
    default = _default_model(services, models)
    examples, example_labels = example_files(EXAMPLES_DIR)
    with gr.Tab("Categorise", id="categorise", elem_id="categorise-tab"):
        gr.Markdown(
            "Upload a product photo: zero-shot models compare it with a text description of each category "
            "(no training on the labels); the CNN baseline was trained on labelled products. Type your own labels "
            "to categorise into anything."
        )
        with gr.Row():
            with gr.Column(scale=2):
                image = gr.Image(examples[0] if examples else None, label="Product photo", type="filepath",
                                 sources=["upload", "clipboard"], height=240)
                model = gr.Dropdown(models, value=default, label="Model")
                catalogues = catalog.catalogue_names()
                catalogue = gr.Dropdown(catalogues, value=catalogues[0], label="Catalogue",
                                        visible=len(catalogues) > 1)
                style = gr.Radio(list(STYLES), value="descriptive prompts", label="Categories")
                labels = gr.Textbox(label="Your labels (comma-separated)", placeholder="e.g. toy, furniture, clock",
                                    visible=False)
                go = gr.Button("Categorise", variant="primary")
                if examples:
                    gr.Examples(examples, inputs=[image], label="Example products",
                                example_labels=example_labels)
            with gr.Column(scale=3):
                label = gr.Label(label="Category probabilities", num_top_classes=10, elem_id="categorise-label")
                heat = gr.Image(label="What supports the top category (heat-map)", height=260,
                                elem_id="categorise-heat")
                explain = gr.Markdown()
        with gr.Accordion("The seeds' analysis on the demo product test split (700 products)", open=False) as acc:
            gr.Dataframe(
                _analysis_table(services),
                headers=["model", "prompts", "accuracy", "macro P", "macro R", "macro F1", "balanced acc."],
                label="Measured by `python -m evaluation.evaluate --config products --split test`",
            )
            with gr.Row():
                cm_model = gr.Dropdown(models, value=default, label="Model")
                cm_style = gr.Dropdown(["descriptive", "bare", "supervised"], value="descriptive", label="Prompts")
            with gr.Row():
                cm_plot = gr.Plot(label="Confusion matrix")
                sim_plot = gr.Plot(label="Mean image-prompt similarity per class")
            top_gallery = gr.Gallery(label="Test products closest to each class's prompts", columns=8, height=260)

        @visitor_errors
        def on_categorise(img, lab, m, st, cat=None):
            picture, result = run_categorise(services, img, lab if STYLES[st] == "custom" else "", m, STYLES[st], cat)
            heat_img = overlay(picture, result.heatmap) if result.heatmap is not None else None
            return result.probs, heat_img, _explain(result)

        inputs = [image, labels, model, style, catalogue]
        go.click(on_categorise, inputs, [label, heat, explain], api_visibility="private")
        image.upload(on_categorise, inputs, [label, heat, explain], api_visibility="private")
        style.change(lambda st: gr.Textbox(visible=STYLES[st] == "custom"), style, labels, api_visibility="private")
        arrival = worked_answer(warm, "categorise worked answer", [label, heat, explain, image, model, catalogue],
                                **_arrival_answers(services, on_categorise, examples[0] if examples else None, default),
                                task="categorise")
        analysis_out = [cm_plot, sim_plot, top_gallery]
        acc.expand(lambda m, s: _analysis(services, m, s), [cm_model, cm_style], analysis_out, api_visibility="private")
        for c in (cm_model, cm_style):
            c.change(lambda m, s: _analysis(services, m, s), [cm_model, cm_style], analysis_out, api_visibility="private")

        def categorise_api(image: FileData | None = None, labels: str = "", model: str = "",
                           style: str = "descriptive", catalogue: str = "") -> dict:
            """Categorise a product photo. labels: comma-separated custom labels (empty: the catalogue's
            categories); style: "descriptive" or "bare" prompts for the catalogue categories; catalogue: one of
            the catalog's catalogues (empty: the default one, e.g. the demo world's seven categories). Returns
            {probabilities: {label: p}, top, margin, doubtful, far_from_known, photo_reading}; far_from_known is
            true when the photo is far from every product the model knows (the answer is then a guess);
            photo_reading is non-empty when a photograph was answered across domains (see README)."""
            style = "custom" if labels and labels.strip() else style
            _, result = visitor_errors(run_categorise)(services, image, labels, model, style, catalogue)
            for notice in result.notices:  # e.g. labels dropped, or a photo far from every known product
                gr.Warning(notice)
            return {"probabilities": result.probs, "top": result.top, "margin": round(result.margin, 6),
                    "doubtful": result.doubtful, "far_from_known": result.far_from_known,
                    "photo_reading": result.photo_reading}

        gr.api(categorise_api, api_name="categorise", concurrency_limit=2)
    return arrival
