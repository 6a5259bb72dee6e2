"""Caption metrics: corpus BLEU, object naming, the pointing score and the repeated-phrase rate.

- **BLEU-1..4** (Papineni et al., 2002), corpus level, 0-100: clipped n-gram counts summed over the corpus
  against *all* references of each image, uniform weights over 1..n (cumulative BLEU-n), brevity penalty from the
  reference length closest to each hypothesis (the shorter on ties). Tokens are `models.captioner.tokenize`'s.
- **Objects named**: the fraction of images whose caption names every object present (each object's full name
  as a word sequence).
- **Pointing**: over every object the caption names, the fraction whose attention peak, at the name's last word
  (the head noun: "bear" in "teddy bear"), falls inside that object's box. Chance level is reported beside it:
  the expected hit rate of a peak drawn uniformly over the grid cells.
- **Hallucination and positions** (when the dataset has objects): CHAIR-i, CHAIR-s and position-word accuracy,
  with synonyms from the concept table counted as mentions (see `evaluation/hallucination.py`).
- **Repeated phrases**: the fraction of captions in which a word trigram occurs twice (the seed's "a blue shirt and
  a blue shirt"). The same rate on the reference captions is reported for scale.
"""
from __future__ import annotations

import math
from collections import Counter
from collections.abc import Sequence

import numpy as np

from models.captioner import tokenize


def _ngrams(tokens: Sequence[str], n: int) -> Counter:
    return Counter(tuple(tokens[i : i + n]) for i in range(len(tokens) - n + 1))


def corpus_bleu(hypotheses: list[list[str]], references: list[list[list[str]]], max_n: int = 4) -> dict[str, float]:
    """{"BLEU-1": ..., "BLEU-max_n": ...} on a 0-100 scale."""
    if len(hypotheses) != len(references):
        raise ValueError("one list of references per hypothesis")
    matches, totals = [0] * max_n, [0] * max_n
    hyp_len = ref_len = 0
    for hyp, refs in zip(hypotheses, references):
        hyp_len += len(hyp)
        ref_len += min((abs(len(r) - len(hyp)), len(r)) for r in refs)[1]
        for n in range(1, max_n + 1):
            counts = _ngrams(hyp, n)
            max_ref: Counter = Counter()
            for r in refs:
                max_ref |= _ngrams(r, n)
            matches[n - 1] += sum(min(c, max_ref[g]) for g, c in counts.items())
            totals[n - 1] += max(0, len(hyp) - n + 1)
    bp = 1.0 if hyp_len > ref_len else (math.exp(1 - ref_len / hyp_len) if hyp_len else 0.0)
    out, log_sum = {}, 0.0
    for n in range(1, max_n + 1):
        p = matches[n - 1] / totals[n - 1] if totals[n - 1] else 0.0
        log_sum += math.log(p) if p > 0 else -math.inf
        out[f"BLEU-{n}"] = 100 * bp * math.exp(log_sum / n) if log_sum > -math.inf else 0.0
    return out


def find_phrase(tokens: Sequence[str], phrase: Sequence[str]) -> int | None:
    """Index of the last word of the first occurrence of `phrase` in `tokens`, or None."""
    n = len(phrase)
    for i in range(len(tokens) - n + 1):
        if list(tokens[i : i + n]) == list(phrase):
            return i + n - 1
    return None


def has_repeated_phrase(tokens: Sequence[str], n: int = 3) -> bool:
    return any(c > 1 for c in _ngrams(tokens, n).values())


def peak_in_box(attention: np.ndarray, box: Sequence[float]) -> bool:
    """attention (gh, gw); box (x0, y0, x1, y1) as fractions of the image side. The peak cell's centre decides."""
    gh, gw = attention.shape
    i, j = np.unravel_index(int(np.argmax(attention)), attention.shape)
    x, y = (j + 0.5) / gw, (i + 0.5) / gh
    return box[0] <= x <= box[2] and box[1] <= y <= box[3]


def box_chance(box: Sequence[float], grid: int) -> float:
    centres = (np.arange(grid) + 0.5) / grid
    inside_x = ((centres >= box[0]) & (centres <= box[2])).mean()
    inside_y = ((centres >= box[1]) & (centres <= box[3])).mean()
    return float(inside_x * inside_y)


def caption_metrics(results: list, references: list[list[str]], objects: list[list[dict]], lexicon=None) -> dict:
    """results: one `CaptionResult` per image; references: its reference captions; objects: its objects
    ({"name", "box"}). Returns BLEU-1..4, objects_named, pointing (+ its chance level), repeated-phrase rates,
    and, given a `Lexicon` and objects, CHAIR-i / CHAIR-s and position-word accuracy."""
    hyps = [r.tokens for r in results]
    refs = [[tokenize(c) for c in caps] for caps in references]
    named, hits, chances = [], [], []
    for r, objs in zip(results, objects):
        found = []
        for o in objs:
            at = find_phrase(r.tokens, tokenize(o["name"]))
            found.append(at is not None)
            if at is not None and len(r.attention) > at:
                hits.append(peak_in_box(r.attention[at], o["box"]))
                chances.append(box_chance(o["box"], r.attention.shape[-1]))
        named.append(all(found))
    extra = {}
    if lexicon is not None and any(objects):
        from evaluation.hallucination import chair, position_accuracy

        extra = {**chair(hyps, [[o["name"] for o in objs] for objs in objects], lexicon),
                 **position_accuracy(hyps, objects, lexicon)}
    return {
        **corpus_bleu(hyps, refs),
        **extra,
        "objects_named": 100 * float(np.mean(named)) if named else 0.0,
        "pointing": 100 * float(np.mean(hits)) if hits else 0.0,
        "pointing_chance": 100 * float(np.mean(chances)) if chances else 0.0,
        "n_object_words": len(hits),
        "repeated_phrase_rate": 100 * float(np.mean([has_repeated_phrase(h) for h in hyps])) if hyps else 0.0,
        "references_repeated_phrase_rate": 100 * float(np.mean([has_repeated_phrase(t) for rs in refs for t in rs])),
        "mean_length": float(np.mean([len(h) for h in hyps])) if hyps else 0.0,
    }
