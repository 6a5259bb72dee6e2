"""The evaluate command: measure a catalog model on a dataset split and write the results beside the model.

    python -m evaluation.evaluate --model demo-clip --dataset data/demo_world_free --config scenes --split test
    python -m evaluation.evaluate --catalog catalog.hub.toml      # every Hub model, as the Space measures them

Without --model, every measurement the app makes of its Hub models in the background (`core.evaluations`:
retrieval, zero-shot per catalogue, captions) is computed here, with the same code, into the same files
(`$VLSTUDIO_EVAL_DIR`, or --out), building the indexes first where the app would; publish that folder
(`python -m pipelines.publish`) to the catalog's `[evaluations] source` and a Space downloads it instead.

Writes `<model folder>/eval/<dataset>--<config>-<split>.json`:

    {"model", "model_revision", "dataset", "dataset_revision", "config", "split", "n_images", ...,
     "command", "date", "versions"}

For a captioning model on a scenes split: "captioning": {"beam 1" | "beam 3" | "beam 3, no repeat guard":
{"BLEU-1".."BLEU-4", "objects_named", "pointing", "pointing_chance", "n_object_words", "repeated_phrase_rate",
"references_repeated_phrase_rate", "mean_length", and with objects "CHAIR_i", "CHAIR_s", "n_mentions",
"n_hallucinated", "position_accuracy", "n_position_claims"}} and "examples" (the first ten captions of each
setting). When the objects carry `concept_split` (the open-vocabulary world), retrieval adds "concepts":
{"retrieval": {"seen" | "heldout": {...R@K}}, "hit": {"seen" | "heldout": {"hit@5", "n_concepts"}},
"zero_shot": {"seen" | "heldout": {"top1", "top5", "n_images", "n_classes"}}} (see `evaluation/concepts.py`) and
classification adds "accuracy_by_concept_split": {"seen", "heldout"} to each style.
For a scenes split (retrieval): "n_captions" and "metrics": {"t2i_R@1", ..., "i2t_R@10"}, following the standard
retrieval protocol (see `evaluation/retrieval.py`). For a products split (classification): "classes" and
"styles": {"descriptive" | "bare" | "supervised": {"accuracy", "macro_precision", "macro_recall", "macro_f1",
"balanced_accuracy", "confusion_matrix", and for zero-shot styles "prompts", "mean_similarity_per_class",
"top_images_per_class"}}. Retrieval adds "scores": the cosine histograms of matching and non-matching pairs
(`score_distribution`), and where objects have boxes "explanations": the pointing score of the explanation maps on
the first `EXPLAIN_SCENES` scenes, per method, against chance, with their agreement (`evaluation/explanations.py`).
Every file has "cost": {"parameters", "weights_bytes", "latency_ms": {...}, "batch", "threads"}. Scores are on a
0-100 scale.
"""
from __future__ import annotations

import argparse
import json
import logging
import shlex
import sys
from datetime import datetime, timezone
from importlib.metadata import version
from pathlib import Path

import numpy as np

from core.catalog import load_catalog
from core.compare import results_path
from core.services import Services
from core.sources import describe, resolve
from demo_world.free_corpus import load_split, pil_images, undecoded
from evaluation.retrieval import recall_at_k
from core.indexing import embed_images

log = logging.getLogger(__name__)


HIST_BINS = np.linspace(-1, 1, 81)  # cosine similarity bins of width 0.025
EXPLAIN_SCENES = 200  # the first scenes of a split whose explanation maps are scored (evaluation/explanations.py)


def score_distribution(text_emb: np.ndarray, image_emb: np.ndarray, owner: np.ndarray) -> dict:
    """Cosine similarity of matching (caption, its image) and non-matching (caption, any other image) pairs:
    histograms over HIST_BINS, means, standard deviations, and the gap between the means. Score scales differ
    between models (the seeds' "0.25 for CLIP vs 0.07 for BERT+ResNet" puzzle); what ranks images is the gap."""
    sims = text_emb @ image_emb.T  # (T, N)
    match = np.zeros_like(sims, dtype=bool)
    match[np.arange(len(owner)), owner] = True
    pos, neg = sims[match], sims[~match]
    return {
        "bins": HIST_BINS.round(4).tolist(),
        "matching": np.histogram(pos, HIST_BINS)[0].tolist(),
        "non_matching": np.histogram(neg, HIST_BINS)[0].tolist(),
        "matching_mean": float(pos.mean()), "matching_std": float(pos.std()),
        "non_matching_mean": float(neg.mean()), "non_matching_std": float(neg.std()),
        "gap": float(pos.mean() - neg.mean()),
    }


def retrieval_metrics(encoder, dataset, explain_scenes: int = EXPLAIN_SCENES) -> dict:
    from evaluation.concepts import concept_results, has_concept_split

    data = undecoded(dataset)
    image_emb = embed_images(encoder, data)
    captions = data["captions"]
    owner = np.repeat(np.arange(len(captions)), [len(c) for c in captions])
    text_emb = encoder.encode_text([c for caps in captions for c in caps])
    out = {"n_images": len(data), "n_captions": len(owner), "metrics": recall_at_k(text_emb, image_emb, owner),
           "scores": score_distribution(text_emb, image_emb, owner)}
    objects = data["objects"] if "objects" in data.column_names else []
    if has_concept_split(objects):
        out["concepts"] = concept_results(encoder, text_emb, image_emb, owner, objects)
    if explain_scenes and any(objects) and hasattr(encoder, "encode_text"):  # boxes: score the maps (core.explain)
        from evaluation.explanations import explanation_pointing

        n = min(explain_scenes, len(data))
        images = pil_images(dataset.select(range(n)), desc="explain")
        out["explanations"] = explanation_pointing(encoder, [(im.convert("RGB"), o) for im, o in zip(images, objects[:n])])
    return out


def _median_ms(fn, repeats: int) -> float:
    import time

    fn()  # warm-up
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return float(np.median(times) * 1000)


def count_parameters(model) -> int:
    """Parameters of every torch module the model object holds (encoder towers, heads, frozen text towers)."""
    import torch

    seen, total = set(), 0
    for value in vars(model).values():
        if isinstance(value, torch.nn.Module):
            for p in value.parameters():
                if id(p) not in seen:
                    seen.add(id(p))
                    total += p.numel()
    return total


def weights_bytes(folder: Path) -> int:
    return sum(f.stat().st_size for f in Path(folder).rglob("*") if f.is_file() and f.suffix in (".safetensors", ".bin", ".pt"))


def cost(model, folder: Path, dataset, repeats: int = 15, batch: int = 32) -> dict:
    """Size and speed: parameters, weight-file bytes, and the median latency (ms per item) of one item and of a
    batch, for texts and images (captioners: one caption, beam 1 and 3). Single process, the current threads."""
    import torch

    from models.captioner import Captioner

    raw = dataset.select(range(min(batch, len(dataset))))
    images = pil_images(raw)
    texts = [caps[0] if caps else "a photo" for caps in raw["captions"]]
    latency = {}
    if isinstance(model, Captioner):
        for beam in (1, 3):
            latency[f"caption_beam{beam}"] = _median_ms(lambda: model.caption(images[0], beam_size=beam), repeats)
    elif hasattr(model, "predict_proba"):
        latency["image_batch1"] = _median_ms(lambda: model.predict_proba(images[:1]), repeats)
        latency["image_batched"] = _median_ms(lambda: model.predict_proba(images), 3) / len(images)
    else:
        latency["text_batch1"] = _median_ms(lambda: model.encode_text(texts[:1]), repeats)
        latency["text_batched"] = _median_ms(lambda: model.encode_text(texts), 3) / len(texts)
        latency["image_batch1"] = _median_ms(lambda: model.encode_image(images[:1]), repeats)
        latency["image_batched"] = _median_ms(lambda: model.encode_image(images), 3) / len(images)
    return {"parameters": count_parameters(model), "weights_bytes": weights_bytes(folder),
            "latency_ms": latency, "batch": len(images), "threads": torch.get_num_threads()}


CAPTION_SETTINGS = {"beam 1": (1, 3), "beam 3": (3, 3), "beam 3, no repeat guard": (3, 0)}  # (beam, no_repeat_ngram)


def captioning_results(captioner, dataset) -> dict:
    """Caption metrics (see `evaluation/captioning.py`) for greedy and beam-3 decoding, and beam 3 without the
    repeated-trigram guard, to show what the guard does."""
    from tqdm import tqdm

    from evaluation.captioning import caption_metrics

    from evaluation.hallucination import Lexicon

    images = pil_images(dataset)
    objects = dataset["objects"]
    lexicon = Lexicon.from_concept_table(o["name"] for objs in objects for o in objs)
    out = {"n_images": len(images), "captioning": {}, "examples": {}}
    for label, (beam, guard) in CAPTION_SETTINGS.items():
        kwargs = {"no_repeat_ngram": guard} if hasattr(captioner, "vocab") else {}
        results = [captioner.caption(im, beam_size=beam, **kwargs) for im in tqdm(images, desc=f"caption, {label}")]
        out["captioning"][label] = caption_metrics(results, dataset["captions"], objects, lexicon)
        out["examples"][label] = {i: r.caption for i, r in zip(dataset["id"][:10], results[:10])}
    return out


def classification_results(model, dataset) -> dict:
    """Zero-shot (both prompt styles) or supervised accuracy / P / R / F1 / confusion on a products split, plus
    the seeds' analysis: mean image-prompt similarity per class and the best-matching images per class."""
    from evaluation.classification import classification_metrics
    from models.zero_shot import build_zero_shot_classifier, catalogue_classes, prompts_for, zero_shot_probs

    classes = catalogue_classes()
    y = np.array([classes.index(c) for c in dataset["category"]])
    ids = dataset["id"]
    images = pil_images(dataset)
    out = {"n_images": len(y), "classes": classes, "styles": {}}
    groups = _concept_groups(dataset)
    if hasattr(model, "predict_proba"):
        pred = model.predict_proba(images).argmax(axis=1)
        out["styles"]["supervised"] = classification_metrics(y, pred, len(classes))
        out["styles"]["supervised"].update(_accuracy_by_group(y, pred, groups))
        return out
    image_emb = model.encode_image(images)
    for style in ("descriptive", "bare"):
        prompts = prompts_for(classes, style)
        class_emb = build_zero_shot_classifier(model, prompts)
        pred = zero_shot_probs(image_emb, class_emb, model.logit_scale).argmax(axis=1)
        sims = image_emb @ class_emb.T  # (N, C) cosine similarities
        out["styles"][style] = {
            **classification_metrics(y, pred, len(classes)),
            **_accuracy_by_group(y, pred, groups),
            "prompts": prompts,
            "mean_similarity_per_class": {c: float(sims[y == i, i].mean()) for i, c in enumerate(classes)},
            "top_images_per_class": {c: [ids[j] for j in np.argsort(-sims[:, i])[:4]] for i, c in enumerate(classes)},
        }
    return out


def _concept_groups(dataset) -> np.ndarray | None:
    """Per product image, "seen" or "heldout" (its concept's split), when the dataset records it."""
    from evaluation.concepts import has_concept_split

    objects = dataset["objects"] if "objects" in dataset.column_names else []
    if not has_concept_split(objects):
        return None
    return np.array(["heldout" if any(o["concept_split"] == "heldout" for o in objs) else "seen" for objs in objects])


def _accuracy_by_group(y: np.ndarray, pred: np.ndarray, groups: np.ndarray | None) -> dict:
    if groups is None:
        return {}
    return {"accuracy_by_concept_split": {g: 100 * float((pred[groups == g] == y[groups == g]).mean())
                                          for g in ("seen", "heldout") if (groups == g).any()}}


def evaluate(services: Services, model: str, dataset_source: str, config: str, split: str, limit: int | None = None,
             explain_scenes: int = EXPLAIN_SCENES) -> dict:
    encoder = services.encoder(model)
    data = load_split(resolve(dataset_source, repo_type="dataset"), config, split)
    if limit:
        data = data.select(range(min(limit, len(data))))
    dataset_name, dataset_revision = describe(dataset_source)
    folder = resolve(services.catalog.model(model).source, repo_type="model")
    return {
        "model": model,
        "model_revision": encoder.revision,
        "dataset": dataset_name,
        "dataset_revision": dataset_revision,
        "config": config,
        "split": split,
        **_results(encoder, data, config, explain_scenes),
        "cost": cost(encoder, folder, data),
        "command": "python -m evaluation.evaluate " + shlex.join(sys.argv[1:]),
        "date": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "versions": {p: version(p) for p in ("torch", "open_clip_torch", "faiss-cpu", "numpy")},
    }


def _results(model, data, config: str, explain_scenes: int = EXPLAIN_SCENES) -> dict:
    from models.captioner import Captioner

    if isinstance(model, Captioner):
        if config != "scenes":
            raise SystemExit("captioning models are evaluated on the scenes config (it has reference captions)")
        return captioning_results(model, data)
    if config == "products":
        return classification_results(model, data)
    return retrieval_metrics(model, data, explain_scenes)


def evaluate_catalog(services: Services, out: Path | None = None) -> int:
    """The app's measurements of every Hub model (`core.evaluations`), computed in this process; 1 if one failed."""
    from core.evaluations import Evaluations

    evaluations = Evaluations(services, out)
    for status in evaluations.run_all():
        log.info("%s -> %s", status.message(), evaluations.path(status.job))
    return int(any(s.state == "failed" for s in evaluations.statuses()))


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description="Evaluate a catalog model on a dataset split.")
    p.add_argument("--model", default=None, help="default: every Hub model of the catalog, as the app measures them")
    p.add_argument("--dataset", default=None, help="folder or hf-hub:owner/dataset[@rev]")
    p.add_argument("--config", default="scenes")
    p.add_argument("--split", default="test")
    p.add_argument("--catalog", default=None)
    p.add_argument("--limit", type=int, default=None, help="only the first N rows (a quick check)")
    p.add_argument("--out", type=Path, default=None,
                   help="default: <model folder>/eval/... (without --model: $VLSTUDIO_EVAL_DIR)")
    p.add_argument("--explain-scenes", type=int, default=EXPLAIN_SCENES,
                   help="scenes whose explanation maps are scored (0: none)")
    args = p.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    services = Services(load_catalog(args.catalog))
    if args.model is None:
        sys.exit(evaluate_catalog(services, args.out))
    if args.dataset is None:
        p.error("--dataset is required with --model")
    result = evaluate(services, args.model, args.dataset, args.config, args.split, args.limit,
                      explain_scenes=args.explain_scenes)
    model_source = services.catalog.model(args.model).source
    out = args.out or results_path(Path(model_source), result["dataset"].split("/")[-1], args.config, args.split)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2) + "\n")
    log.info("wrote %s", out)


if __name__ == "__main__":
    main()
