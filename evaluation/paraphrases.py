"""How well a search model understands a visitor's own words: queries from `demo_world/paraphrases.tsv`.

    python -m evaluation.paraphrases --model dual-minilm-cnn --dataset data/demo_world_free --split test+heldout

Each query ("a puppy", "a big striped cat", "a pair of shades") names one or more acceptable concepts without
using any of their names or synonyms from `demo_world/concepts.tsv` (a test checks it), so no training text
contains it. The collection is the scenes of the given splits; a query counts when one of its acceptable concepts
is in at least one picture; it is a hit when one of the top-5 pictures shows one of them (hit@5). Results are
written beside the model (`eval/<dataset>--paraphrases-<split>.json`) and the Search tab's default model is the
one with the highest hit@5 (a test checks the catalog's order). "text_only" is the text side's ceiling: how often an
acceptable concept is among the names nearest to the query, no picture involved.
"""
from __future__ import annotations

import argparse
import csv
import json
import logging
import shlex
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np

PARAPHRASES = Path(__file__).resolve().parent.parent / "demo_world" / "paraphrases.tsv"
OUTSIDE = PARAPHRASES.parent / "outside_queries.txt"  # queries about nothing the world shows
K = 5


@dataclass(frozen=True)
class Paraphrase:
    query: str
    concepts: tuple[str, ...]  # any of these in a top-k picture is a hit


def load_paraphrases(path: Path = PARAPHRASES) -> list[Paraphrase]:
    with open(path, newline="") as f:
        return [Paraphrase(r["query"], tuple(c for c in r["concepts"].split(";") if c))
                for r in csv.DictReader(f, delimiter="\t")]


def hit_at_k(text_emb: np.ndarray, image_emb: np.ndarray, present: list[set[str]], queries: list[Paraphrase],
             heldout: set[str], k: int = K) -> dict:
    """text_emb (Q, D) and image_emb (N, D) L2-normalised; present[i]: the concept names in picture i."""
    order = np.argsort(-(text_emb @ image_emb.T), axis=1)[:, :k]
    in_collection = set().union(*present) if present else set()
    rows = []
    for q, top in zip(queries, order):
        wanted = set(q.concepts)
        if not wanted & in_collection:
            continue  # nothing to find: the query does not count
        hit = any(wanted & present[int(i)] for i in top)
        rows.append({"query": q.query, "concepts": list(q.concepts), "hit": bool(hit),
                     "heldout": bool(wanted & heldout)})

    def rate(sel) -> float:
        sel = list(sel)
        return 100 * float(np.mean([r["hit"] for r in sel])) if sel else 0.0

    return {
        f"paraphrase hit@{k}": rate(rows),
        f"paraphrase hit@{k} (seen concepts)": rate(r for r in rows if not r["heldout"]),
        f"paraphrase hit@{k} (held-out concepts)": rate(r for r in rows if r["heldout"]),
        "paraphrase queries": float(len(rows)),
    }, rows


def text_only(encoder, queries: list[Paraphrase], text_emb: np.ndarray, heldout: set[str]) -> dict:
    """The text side alone: is an acceptable concept among the k names (of all 829, as "a <name>") nearest to the
    query? A ceiling on what the image side can reach with this text tower; no picture involved."""
    from demo_world.concepts import load_concepts

    names = [c.name for c in load_concepts()]
    order = np.argsort(-(text_emb @ encoder.encode_text([f"a {n}" for n in names]).T), axis=1)
    out = {}
    for k in (1, 5):
        hits = [bool(set(q.concepts) & {names[i] for i in row[:k]}) for q, row in zip(queries, order)]
        held = [h for h, q in zip(hits, queries) if set(q.concepts) & heldout]
        seen = [h for h, q in zip(hits, queries) if not set(q.concepts) & heldout]
        out[f"top{k}"] = {"all": 100 * float(np.mean(hits)), "seen": 100 * float(np.mean(seen)),
                          "heldout": 100 * float(np.mean(held))}
    return out


def load_outside(path: Path = OUTSIDE) -> list[str]:
    return [line.strip() for line in path.read_text().splitlines() if line.strip() and not line.startswith("#")]


def familiarity_check(services, model: str, text_emb: np.ndarray, outside_emb: np.ndarray, image_emb: np.ndarray) -> dict:
    """The "far from anything known" notice against the model's scenes collection floor (`core.familiarity`):
    share of the visitor's in-world paraphrases it wrongly flags, and of out-of-world queries it catches."""
    from core.familiarity import floor_of

    scenes = [c for c in services.catalog.collections(model) if c.startswith("demo scenes")]
    floor = floor_of(services.index(model, scenes[0]), "text") if scenes else None
    if floor is None:
        return {}
    top1 = lambda emb: (emb @ image_emb.T).max(axis=1)  # noqa: E731 - exact search over the same collection
    return {"text_floor": floor, "paraphrases_flagged": 100 * float((top1(text_emb) < floor).mean()),
            "outside_caught": 100 * float((top1(outside_emb) < floor).mean()), "outside_queries": len(outside_emb)}


def evaluate(services, model: str, dataset: str, config: str = "scenes", split: str = "test+heldout") -> dict:
    from core.layouts import DatasetSpec
    from demo_world.concepts import load_concepts
    from core.indexing import embed_images
    from core.layouts import load_splits

    encoder = services.encoder(model)
    data = load_splits(DatasetSpec(dataset, dataset), config, split)
    present = [{o["name"] for o in objs} for objs in data["objects"]]
    image_emb = embed_images(encoder, data)
    queries = load_paraphrases()
    text_emb = encoder.encode_text([q.query for q in queries])
    heldout = {c.name for c in load_concepts() if c.split == "heldout"}
    metrics, rows = hit_at_k(text_emb, image_emb, present, queries, heldout)
    familiarity = familiarity_check(services, model, text_emb, encoder.encode_text(load_outside()), image_emb)
    return {"metrics": metrics, "queries": rows, "n_images": len(present), "familiarity": familiarity,
            "text_only": text_only(encoder, queries, text_emb, heldout)}


def main(argv: list[str] | None = None) -> None:
    from core.catalog import load_catalog
    from core.compare import results_path
    from core.services import Services
    from core.sources import describe, resolve
    from index import utc_now

    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--model", required=True)
    p.add_argument("--dataset", required=True)
    p.add_argument("--config", default="scenes")
    p.add_argument("--split", default="test+heldout")
    p.add_argument("--catalog", default=None)
    p.add_argument("--out", type=Path, default=None)
    args = p.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    services = Services(load_catalog(args.catalog))
    result = evaluate(services, args.model, args.dataset, args.config, args.split)
    name, revision = describe(args.dataset)
    out = args.out or results_path(resolve(services.catalog.model(args.model).source, repo_type="model"),
                                   Path(name).name, "paraphrases", args.split)
    record = {"model": args.model, "model_revision": services.encoder(args.model).revision, "dataset": Path(name).name,
              "dataset_revision": revision, "config": "paraphrases", "split": args.split, **result,
              "command": "python -m evaluation.paraphrases " + shlex.join(argv if argv is not None else sys.argv[1:]),
              "date": utc_now()}
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(record, indent=1) + "\n")
    print(json.dumps(result["metrics"], indent=1))


if __name__ == "__main__":
    main()
