"""Every model's measured figures, read from the evaluation files stored beside each model (never typed in).

`load_evaluations(catalog)` reads `<model folder>/eval/*.json` (written by `python -m evaluation.evaluate`) for
every catalog model whose folder is on disk (a Hub model counts once it has been downloaded). `long_table` turns
them into rows (model, dataset, split, metric, value, command): the `/compare` answer and the tab's table.
`read_evaluation` reads one such file, for the tabs that show a model's figures on one split.
"""
from __future__ import annotations

import json
import logging
from pathlib import Path

from core.catalog import Catalog

log = logging.getLogger(__name__)
DEMO_DATASET = "demo_world_free"  # the bundled world the tabs quote figures from (`demo_world.free_corpus`)

# The headline metrics of the wide table, in order: (column, metric key in long_table).
HEADLINE = (
    ("t2i R@1", "t2i_R@1"), ("t2i R@5", "t2i_R@5"), ("i2t R@1", "i2t_R@1"),
    ("zero-shot desc. acc.", "descriptive accuracy"), ("zero-shot bare acc.", "bare accuracy"),
    ("supervised acc.", "supervised accuracy"), ("macro F1 (best)", "best macro_f1"),
    ("BLEU-4 (beam 3)", "beam 3 BLEU-4"), ("objects named %", "beam 3 objects_named"),
    ("pointing %", "beam 3 pointing"), ("CHAIR-i % (beam 3)", "beam 3 CHAIR_i"), ("CHAIR-s %", "beam 3 CHAIR_s"),
    ("position words %", "beam 3 position_accuracy"),
    ("held-out concept hit@5", "heldout concept hit@5"), ("held-out zero-shot top-1", "heldout zero-shot top1"),
    ("paraphrase hit@5", "paraphrase hit@5"),
    ("map pointing % (occlusion)", "map pointing occlusion"), ("map pointing % (gradient)", "map pointing gradient"),
    ("map pointing chance %", "map pointing chance"),
    ("score gap", "score gap"), ("params (M)", "parameters (M)"), ("weights (MB)", "weights (MB)"),
)


def _folder(source: str) -> Path | None:
    if source.startswith("hf-hub:"):  # only what is already downloaded: the table never waits on the network
        from huggingface_hub import snapshot_download

        from core.sources import parse_source

        src = parse_source(source)
        try:
            return Path(snapshot_download(src.repo_id, revision=src.revision, local_files_only=True))
        except Exception:  # noqa: BLE001 - not in the cache, in any of the ways huggingface_hub reports it
            return None
    path = Path(source)
    return path if path.is_dir() else None


def results_path(model_folder: Path, dataset_name: str, config: str, split: str) -> Path:
    """Where `python -m evaluation.evaluate` stores a model's figures on a dataset split."""
    return model_folder / "eval" / f"{dataset_name}--{config}-{split}.json"


def read_evaluation(catalog: Catalog, model: str, config: str, split: str, dataset: str = DEMO_DATASET) -> dict:
    """The figures of `model` on one split, or {} when it has not been evaluated there (or is not on disk)."""
    folder = _folder(catalog.model(model).source)
    path = results_path(folder, dataset, config, split) if folder is not None else None
    if path is None or not path.is_file():
        return {}
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError) as e:
        log.warning("skipping unreadable evaluation file %s: %s", path, e)
        return {}


def load_evaluations(catalog: Catalog) -> list[dict]:
    out = []
    for name, spec in catalog.models.items():
        folder = _folder(spec.source)
        if folder is None:
            continue
        for path in sorted((folder / "eval").glob("*.json")):
            try:
                data = json.loads(path.read_text())
            except (OSError, ValueError) as e:
                log.warning("skipping unreadable evaluation file %s: %s", path, e)
                continue
            data["model"] = name  # the catalog's name, whatever the file was written under
            data["file"] = str(path)
            out.append(data)
    return out


def _metrics(ev: dict) -> dict[str, float]:
    m: dict[str, float] = {}
    m.update(ev.get("metrics", {}))
    styles = ev.get("styles", {})
    for style, s in styles.items():
        for key in ("accuracy", "macro_precision", "macro_recall", "macro_f1", "balanced_accuracy"):
            m[f"{style} {key}"] = s[key]
        for label, value in s.get("accuracy_by_concept_split", {}).items():
            m[f"{style} accuracy ({label} concepts)"] = value
    if styles:
        m["best macro_f1"] = max(s["macro_f1"] for s in styles.values())
    for setting, c in ev.get("captioning", {}).items():
        for key in ("BLEU-1", "BLEU-2", "BLEU-3", "BLEU-4", "objects_named", "pointing", "pointing_chance",
                    "repeated_phrase_rate", "CHAIR_i", "CHAIR_s", "position_accuracy"):
            if key in c:  # CHAIR and positions: files written since the open-vocabulary world
                m[f"{setting} {key}"] = c[key]
    concepts = ev.get("concepts", {})
    for label, r in concepts.get("retrieval", {}).items():
        for key in ("t2i_R@1", "t2i_R@5", "t2i_R@10"):
            m[f"{label} concepts {key}"] = r[key]
    for label, r in concepts.get("hit", {}).items():
        m[f"{label} concept hit@5"] = r["hit@5"]
    for label, r in concepts.get("zero_shot", {}).items():
        m[f"{label} zero-shot top1"] = r["top1"]
        m[f"{label} zero-shot top5"] = r["top5"]
    explained = ev.get("explanations") or {}
    if explained.get("objects"):
        for method, value in explained["pointing"].items():
            m[f"map pointing {method}"] = value
        m["map pointing chance"] = explained["pointing_chance"]
        m["map agreement (Spearman)"] = explained["agreement_spearman_mean"]
    scores = ev.get("scores")
    if scores:
        m["score gap"] = scores["gap"]
        m["matching mean cosine"] = scores["matching_mean"]
        m["non-matching mean cosine"] = scores["non_matching_mean"]
    cost = ev.get("cost")
    if cost:
        m["parameters (M)"] = cost["parameters"] / 1e6
        m["weights (MB)"] = cost["weights_bytes"] / 1e6
        for key, ms in cost["latency_ms"].items():
            m[f"latency {key} (ms)"] = ms
    return m


LOOKALIKE_LABEL = "⚠️ look-alike repo, random weights: figures meaningless"


def model_label(ev: dict) -> str:
    """The model's name, marked when the figures come from a look-alike repo with random weights."""
    return f"{ev['model']} ({LOOKALIKE_LABEL})" if ev.get("lookalike") else ev["model"]


def how_measured(ev: dict) -> str:
    """Who measured a row and on how much: the app itself (with its protocol and sample) or the evaluate command."""
    if ev.get("computed_by") != "app":
        return "`python -m evaluation.evaluate` (offline)"
    n = ev.get("n_images")
    what = f"{n:,} images" + (f", {ev['n_captions']:,} captions" if ev.get("n_captions") else "")
    return f"measured by this app on {what}: {ev.get('protocol', '')}"


def long_table(evaluations: list[dict]) -> list[dict]:
    """One row per (model, dataset, split, metric)."""
    rows = []
    for ev in evaluations:
        split = f"{ev.get('config', '')}/{ev.get('split', '')}"
        for metric, value in _metrics(ev).items():
            rows.append({"model": ev["model"], "dataset": ev.get("dataset", ""), "split": split, "metric": metric,
                         "value": round(float(value), 4), "command": ev.get("command", ""),
                         "lookalike": bool(ev.get("lookalike")), "measured": how_measured(ev)})
    return rows


def wide_table(evaluations: list[dict]) -> tuple[list[str], list[list]]:
    """Headers and one row per (model, split) with the headline metrics (None where a metric does not apply)."""
    headers = ["model", "dataset", "split"] + [h for h, _ in HEADLINE] + ["how measured"]
    rows = []
    for ev in evaluations:
        m = _metrics(ev)
        rows.append([model_label(ev), ev.get("dataset", ""), f"{ev.get('config', '')}/{ev.get('split', '')}"]
                    + [round(m[k], 3 if k == "score gap" else 1) if k in m else None for _, k in HEADLINE]
                    + [how_measured(ev)])
    return headers, rows


# The source documents' own figures (CONTEXT.md, seeds/): quoted beside the measured rows, never measured here.
REFERENCE_ROWS = [
    ["seed 001: dual encoder (BERT + VGG19), Flickr8k", "text→image R@1 / R@5 / R@10", "29.05 / 57.5 / 67.5",
     "2,000 test queries; a hit when a top-k image's features have cosine > 0.7 with the target's (not the "
     "standard protocol used above)"],
    ["seed 001: dual encoder (BERT + ResNet18), Flickr8k", "text→image R@1 / R@5 / R@10", "12.4 / 31.4 / 38.65",
     "same protocol as above"],
    ["seed 002: CLIP ViT-B/32 zero-shot vs VGG16, 7 marketplace categories", "test accuracy", "76% vs 74%",
     "1,050 products, descriptive class prompts; P/R/F1 ≈ 0.77/0.76/0.76"],
    ["seed 003: CLIP (raw text) vs DenseNet121, same catalogue", "test accuracy", "96.7% vs 88.6%",
     "≈ 2 min 40 s of compute each"],
]
REFERENCE_HEADERS = ["source (quoted, not measured here)", "metric", "figure", "protocol as the source states it"]
