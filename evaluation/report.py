"""Print the measured results of every catalog model as Markdown tables (what README.md quotes).

    python -m evaluation.report [--catalog catalog.toml]

Everything comes from the evaluation files the `evaluate` command wrote beside each model; nothing is typed in.
"""
from __future__ import annotations

import argparse
import json
from pathlib import Path

from core.catalog import load_catalog


def _results(catalog) -> list[tuple[str, dict]]:
    out = []
    for name, spec in catalog.models.items():
        folder = Path(spec.source) / "eval"
        if not spec.source.startswith("hf-hub:") and folder.is_dir():
            out += [(name, json.loads(p.read_text())) for p in sorted(folder.glob("*.json"))]
    return out


def _where(r: dict) -> str:
    return f"{r.get('dataset', '')} {r['config']}/{r['split']}"


def retrieval_table(results) -> str:
    rows = ["| model | data | images | t2i R@1 | R@5 | R@10 | i2t R@1 | R@5 | R@10 |", "|---|---|---|---|---|---|---|---|---|"]
    for name, r in results:
        if "metrics" in r and "t2i_R@1" in r["metrics"]:
            m = r["metrics"]
            cells = " | ".join(f"{m[f'{d}_R@{k}']:.1f}" for d in ("t2i", "i2t") for k in (1, 5, 10))
            rows.append(f"| {name} | {_where(r)} | {r['n_images']} | {cells} |")
    return "\n".join(rows)


def classification_table(results) -> str:
    rows = ["| model | data | prompts | accuracy | seen / held-out products | macro P | macro R | macro F1 |",
            "|---|---|---|---|---|---|---|---|"]
    for name, r in results:
        for style, m in r.get("styles", {}).items():
            by = m.get("accuracy_by_concept_split", {})
            split = " / ".join(f"{by[g]:.1f}" if g in by else "—" for g in ("seen", "heldout")) if by else ""
            rows.append(f"| {name} | {_where(r)} | {style} | {m['accuracy']:.1f} | {split} | {m['macro_precision']:.1f} | "
                        f"{m['macro_recall']:.1f} | {m['macro_f1']:.1f} |")
    return "\n".join(rows)


def paraphrase_table(results) -> str:
    rows = ["| model | collection | queries | hit@5 | seen concepts | held-out concepts | \"far from known\": paraphrases "
            "flagged (wrongly) | out-of-world queries caught | text side alone: a right name in the top 5 of 829 |",
            "|---|---|---|---|---|---|---|---|---|"]
    for name, r in results:
        m, f = r.get("metrics", {}), r.get("familiarity") or {}
        if "paraphrase hit@5" in m:
            notice = (f"{f['paraphrases_flagged']:.1f} | {f['outside_caught']:.1f} (of {f['outside_queries']})"
                      if f else "— | —")
            text = f"{r['text_only']['top5']['all']:.1f}" if "text_only" in r else "—"
            rows.append(f"| {name} | {r['dataset']} {r['split']} ({r['n_images']:,} images) | "
                        f"{m['paraphrase queries']:.0f} | {m['paraphrase hit@5']:.1f} | "
                        f"{m['paraphrase hit@5 (seen concepts)']:.1f} | {m['paraphrase hit@5 (held-out concepts)']:.1f} | "
                        f"{notice} | {text} |")
    return "\n".join(rows)


def explanations_table(results) -> str:
    rows = ["| model | data | objects | pointing, occlusion | pointing, gradient × input | chance | agreement ρ | "
            "name weighs most (chance) |", "|---|---|---|---|---|---|---|---|"]
    for name, r in results:
        e = r.get("explanations") or {}
        if e.get("objects"):
            rows.append(f"| {name} | {_where(r)} | {e['objects']} | {e['pointing']['occlusion']:.1f} | "
                        f"{e['pointing']['gradient']:.1f} | {e['pointing_chance']:.1f} | "
                        f"{e['agreement_spearman_mean']:.2f} | {e['name_weighs_most']:.1f} ({e['words_chance']:.0f}) |")
    return "\n".join(rows)


def captioning_table(results) -> str:
    rows = ["| model | data | decoding | BLEU-1 | BLEU-4 | objects named | pointing (chance) | repeated phrases | words |",
            "|---|---|---|---|---|---|---|---|---|"]
    for name, r in results:
        for setting, m in r.get("captioning", {}).items():
            rows.append(f"| {name} | {_where(r)} | {setting} | {m['BLEU-1']:.1f} | {m['BLEU-4']:.1f} | {m['objects_named']:.1f} | "
                        f"{m['pointing']:.1f} ({m['pointing_chance']:.1f}) | {m['repeated_phrase_rate']:.1f} | "
                        f"{m['mean_length']:.1f} |")
    return "\n".join(rows)


def hallucination_table(results) -> str:
    rows = ["| model | dataset | split | decoding | CHAIR-i | CHAIR-s | mentions | position words (claims) |",
            "|---|---|---|---|---|---|---|---|"]
    for name, r in results:
        for setting, m in r.get("captioning", {}).items():
            if "CHAIR_i" in m:
                rows.append(f"| {name} | {r['dataset']} | {r['config']}/{r['split']} | {setting} | "
                            f"{m['CHAIR_i']:.1f} | {m['CHAIR_s']:.1f} | {m['n_mentions']} | "
                            f"{m['position_accuracy']:.1f} "
                            f"({m['n_position_claims']}) |")
    return "\n".join(rows)


def concepts_table(results) -> str:
    rows = ["| model | data | concepts | t2i R@1 | R@10 | \"a photo of a …\" hit@5 | zero-shot top-1 | top-5 |",
            "|---|---|---|---|---|---|---|---|"]
    for name, r in results:
        c = r.get("concepts", {})
        for label in ("seen", "heldout"):
            ret, hit, zs = (c.get(k, {}).get(label) for k in ("retrieval", "hit", "zero_shot"))
            if not (ret or hit or zs):
                continue
            cells = [f"{ret['t2i_R@1']:.1f}" if ret else "", f"{ret['t2i_R@10']:.1f}" if ret else "",
                     f"{hit['hit@5']:.1f}" if hit else "", f"{zs['top1']:.1f}" if zs else "", f"{zs['top5']:.1f}" if zs else ""]
            rows.append(f"| {name} | {_where(r)} | {label} | " + " | ".join(cells) + " |")
    return "\n".join(rows)


def scores_table(results) -> str:
    rows = ["| model | data | matching cosine (mean ± sd) | non-matching | gap |", "|---|---|---|---|---|"]
    for name, r in results:
        if s := r.get("scores"):
            rows.append(f"| {name} | {_where(r)} | {s['matching_mean']:.3f} ± {s['matching_std']:.3f} | "
                        f"{s['non_matching_mean']:.3f} ± {s['non_matching_std']:.3f} | {s['gap']:.3f} |")
    return "\n".join(rows)


def cost_table(results) -> str:
    rows = ["| model | parameters | weight files | latency, ms per item (median) |", "|---|---|---|---|"]
    seen = set()
    for name, r in results:
        if (c := r.get("cost")) and name not in seen:
            seen.add(name)
            lat = ", ".join(f"{k} {v:.1f}" for k, v in c["latency_ms"].items())
            rows.append(f"| {name} | {c['parameters'] / 1e6:.2f} M | {c['weights_bytes'] / 1e6:.1f} MB | {lat} |")
    return "\n".join(rows)


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--catalog", default=None)
    results = _results(load_catalog(p.parse_args(argv).catalog))
    print("Text→image / image→text retrieval (standard protocol, %):\n\n" + retrieval_table(results))
    print("\nZero-shot and supervised categorisation (%):\n\n" + classification_table(results))
    print("\nVisitors' own words (paraphrase queries, `python -m evaluation.paraphrases`):\n\n" + paraphrase_table(results))
    print("\nCaptioning (%):\n\n" + captioning_table(results))
    print("\nObject hallucination and position words (CHAIR, Rohrbach et al. 2018; synonyms count as mentions):\n\n"
          + hallucination_table(results))
    print("\nSeen vs held-out concepts (open-vocabulary world):\n\n" + concepts_table(results))
    print("\nExplanation maps: pointing inside the named object's box (%):\n\n" + explanations_table(results))
    print("\nCosine similarity of matching vs non-matching (caption, image) pairs:\n\n" + scores_table(results))
    print("\nSize and speed (CPU, the evaluate command's threads):\n\n" + cost_table(results))


if __name__ == "__main__":
    main()
