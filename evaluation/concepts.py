"""Seen vs held-out concepts: retrieval and zero-shot measures for datasets whose objects carry `concept_split`
(the open-vocabulary world, `demo_world.free_corpus`). All scores 0-100.

- **Retrieval by concept split**: the standard text→image protocol (`evaluation/retrieval.py`) with the caption
  queries split by whether their image holds a held-out concept ("heldout") or only seen ones ("seen"); the
  gallery is always the whole split.
- **Concept hit@k**: for every concept present in the split, the query "a photo of a <concept>" hits when one of
  the k best images contains it; the mean over concepts, per concept split.
- **Zero-shot concept accuracy**: images holding exactly one held-out concept are classified among *all*
  held-out concept names of the concept table (open_clip-style prompt ensemble, `CONCEPT_TEMPLATES`); top-1 and
  top-5 accuracy. Images holding a single seen concept are classified among all seen names likewise.
"""
from __future__ import annotations

import numpy as np

from demo_world.concepts import load_concepts, with_article
from evaluation.retrieval import recall_at_k

CONCEPT_TEMPLATES = ("a photo of {}.", "a picture of {}.", "an illustration of {}.")
HIT_K = 5


def has_concept_split(objects: list[list[dict]]) -> bool:
    return any(objs for objs in objects) and all("concept_split" in o for objs in objects for o in objs)


def retrieval_by_concept_split(text_emb: np.ndarray, image_emb: np.ndarray, owner: np.ndarray, objects) -> dict:
    held_image = np.array([any(o["concept_split"] == "heldout" for o in objs) for objs in objects])
    out = {}
    for label, mask in (("seen", ~held_image[owner]), ("heldout", held_image[owner])):
        if mask.any():
            out[label] = {"n_captions": int(mask.sum()), **recall_at_k(text_emb[mask], image_emb, owner[mask])}
    return out


def _prompts(name: str) -> list[str]:
    return [t.format(with_article(name)) for t in CONCEPT_TEMPLATES]


def concept_hit_at_k(encoder, image_emb: np.ndarray, objects, k: int = HIT_K) -> dict:
    from models.zero_shot import build_zero_shot_classifier

    split_of = {o["name"]: o["concept_split"] for objs in objects for o in objs}
    holders: dict[str, set[int]] = {}
    for i, objs in enumerate(objects):
        for o in objs:
            holders.setdefault(o["name"], set()).add(i)
    names = sorted(holders)
    emb = build_zero_shot_classifier(encoder, {n: _prompts(n) for n in names})  # (C, D)
    top = np.argsort(-(emb @ image_emb.T), axis=1)[:, :k]  # (C, k)
    hits = {n: bool(holders[n] & set(top[j].tolist())) for j, n in enumerate(names)}
    out = {}
    for label in ("seen", "heldout"):
        mine = [hits[n] for n in names if (split_of[n] == "heldout") == (label == "heldout")]
        if mine:
            out[label] = {f"hit@{k}": 100 * float(np.mean(mine)), "n_concepts": len(mine)}
    return out


def zero_shot_concepts(encoder, image_emb: np.ndarray, objects) -> dict:
    from models.zero_shot import build_zero_shot_classifier

    table = load_concepts()
    out = {}
    for label, split in (("heldout", "heldout"), ("seen", "train")):
        classes = [c.name for c in table if c.split == split]
        index = {n: i for i, n in enumerate(classes)}
        if label == "heldout":  # images with exactly one held-out concept (the others seen)
            rows = [(i, [o["name"] for o in objs if o["concept_split"] == "heldout"]) for i, objs in enumerate(objects)]
            rows = [(i, ns[0]) for i, ns in rows if len(ns) == 1 and ns[0] in index]
        else:  # images holding a single, seen concept
            rows = [(i, objs[0]["name"]) for i, objs in enumerate(objects)
                    if len(objs) == 1 and objs[0]["concept_split"] == "train" and objs[0]["name"] in index]
        if not rows:
            continue
        emb = build_zero_shot_classifier(encoder, {n: _prompts(n) for n in classes})  # (C, D)
        idx = np.array([i for i, _ in rows])
        y = np.array([index[n] for _, n in rows])
        rank = (image_emb[idx] @ emb.T).argsort(axis=1)[:, ::-1]  # (N, C) best first
        out[label] = {"top1": 100 * float((rank[:, 0] == y).mean()),
                      "top5": 100 * float((rank[:, :5] == y[:, None]).any(axis=1).mean()),
                      "n_images": len(rows), "n_classes": len(classes)}
    return out


def concept_results(encoder, text_emb, image_emb, owner, objects) -> dict:
    return {"retrieval": retrieval_by_concept_split(text_emb, image_emb, owner, objects),
            "hit": concept_hit_at_k(encoder, image_emb, objects),
            "zero_shot": zero_shot_concepts(encoder, image_emb, objects)}
