"""Object hallucination (CHAIR, Rohrbach et al. 2018) and position-word accuracy for captions.

- **Mentions**: a caption's tokens are scanned left to right for the longest phrase that names a concept
  (its name or any synonym in `demo_world/concepts.tsv`, plus the names of the objects in the dataset), so
  "teddy bear" is one mention of the teddy bear, not a bear. A phrase several concepts share refers to all of them.
- **CHAIR-i**: hallucinated mentions / all mentions, over the corpus; a mention is hallucinated when none of
  the concepts it can name is in the picture. Every occurrence counts, as in the paper's code.
  **CHAIR-s**: the share of captions with at least one hallucinated mention. Both 0-100.
- **Position-word accuracy**: every position claim a caption makes about an object that is present, checked
  against the object's box. After a mention, the words up to the next mention are its claim: "left" / "right"
  (the box centre's x below 0.4 / above 0.6), "top" / "upper" and "bottom" / "lower" (y likewise), "center" /
  "centre" / "middle" (the other axis within 0.3-0.7 when a side word is given, both axes otherwise). A relation
  between two mentions ("to the left of", "above", "in front of", "behind", ...) is checked on the two boxes'
  centres (or on overlap and drawing order). These bounds are looser than the generator's (which only writes
  a word when the centre is within 0.3 of an edge or 0.1 of the middle), so the references always score 100.
"""
from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from models.captioner import tokenize

_H = {"left": "left", "right": "right"}
_V = {"top": "top", "upper": "top", "bottom": "bottom", "lower": "bottom"}
_C = {"center", "centre", "middle"}
# Relation phrases (token tuples) and the claim each makes about (first mention, second mention).
RELATIONS: dict[tuple[str, ...], str] = {
    ("to", "the", "left", "of"): "left of", ("left", "of"): "left of",
    ("to", "the", "right", "of"): "right of", ("right", "of"): "right of",
    ("above",): "above", ("below",): "below", ("under",): "below",
    ("in", "front", "of"): "in front of", ("behind",): "behind",
}


@dataclass(frozen=True)
class Mention:
    start: int  # first token
    end: int  # one past the last token
    concepts: frozenset[str]  # every concept the phrase can name


class Lexicon:
    """Phrases (token tuples) that name concepts."""

    def __init__(self, names: dict[str, Iterable[str]]):
        """`names`: concept name -> its other names (synonyms)."""
        self.phrases: dict[tuple[str, ...], set[str]] = {}
        for concept, synonyms in names.items():
            for phrase in (concept, *synonyms):
                tokens = tuple(tokenize(phrase))
                if tokens:
                    self.phrases.setdefault(tokens, set()).add(concept)
        self.longest = max((len(p) for p in self.phrases), default=0)

    @classmethod
    def from_concept_table(cls, extra_names: Iterable[str] = ()) -> Lexicon:
        from demo_world.concepts import load_concepts

        names: dict[str, list[str]] = {c.name: list(c.synonyms) for c in load_concepts()}
        for n in extra_names:  # object names of a dataset built from another table
            names.setdefault(n, [])
        return cls(names)

    def mentions(self, tokens: Sequence[str]) -> list[Mention]:
        out, i = [], 0
        while i < len(tokens):
            for n in range(min(self.longest, len(tokens) - i), 0, -1):
                concepts = self.phrases.get(tuple(tokens[i : i + n]))
                if concepts:
                    out.append(Mention(i, i + n, frozenset(concepts)))
                    i += n
                    break
            else:
                i += 1
        return out


def chair(captions_tokens: Sequence[Sequence[str]], present: Sequence[Iterable[str]], lexicon: Lexicon) -> dict:
    """CHAIR-i and CHAIR-s (0-100) of captions (tokens) against the concept names present in each picture."""
    n_mentions = n_hallucinated = n_bad_captions = 0
    for tokens, names in zip(captions_tokens, present):
        names = set(names)
        mentions = lexicon.mentions(tokens)
        bad = sum(1 for m in mentions if not (m.concepts & names))
        n_mentions += len(mentions)
        n_hallucinated += bad
        n_bad_captions += bad > 0
    n = len(captions_tokens)
    return {
        "CHAIR_i": 100 * n_hallucinated / n_mentions if n_mentions else 0.0,
        "CHAIR_s": 100 * n_bad_captions / n if n else 0.0,
        "n_mentions": n_mentions,
        "n_hallucinated": n_hallucinated,
    }


def _centre(box: Sequence[float]) -> tuple[float, float]:
    return (box[0] + box[2]) / 2, (box[1] + box[3]) / 2


def _absolute_ok(words: Sequence[str], box: Sequence[float]) -> bool | None:
    """Whether the position words said about one object fit its box; None when they claim nothing."""
    cx, cy = _centre(box)
    h = [_H[w] for w in words if w in _H]
    v = [_V[w] for w in words if w in _V]
    c = any(w in _C for w in words)
    if not (h or v or c):
        return None
    ok = all((cx < 0.4) if s == "left" else (cx > 0.6) for s in h)
    ok &= all((cy < 0.4) if s == "top" else (cy > 0.6) for s in v)
    if c and not (h and v):
        if not h:
            ok &= 0.3 <= cx <= 0.7
        if not v:
            ok &= 0.3 <= cy <= 0.7
    return ok


def _overlaps(a: Sequence[float], b: Sequence[float]) -> bool:
    return min(a[2], b[2]) > max(a[0], b[0]) and min(a[3], b[3]) > max(a[1], b[1])


def _relation_ok(rel: str, a: int, b: int, boxes: Sequence[Sequence[float]]) -> bool:
    (ax, ay), (bx, by) = _centre(boxes[a]), _centre(boxes[b])
    if rel in ("in front of", "behind"):
        return _overlaps(boxes[a], boxes[b]) and ((a > b) if rel == "in front of" else (a < b))
    return {"left of": ax < bx, "right of": ax > bx, "above": ay < by, "below": ay > by}[rel]


_BEFORE_NOUN = {"a", "an", "the", "some", "small", "little", "tiny", "large", "big", "huge", "very"}


def _find_relation(words: Sequence[str]) -> tuple[str, int] | None:
    """A relation phrase ending `words` (what sits right before the next mention, less its article and size
    words), and where it starts."""
    words = list(words)
    while words and words[-1] in _BEFORE_NOUN:
        words.pop()
    for phrase, rel in sorted(RELATIONS.items(), key=lambda kv: -len(kv[0])):
        if len(words) >= len(phrase) and tuple(words[len(words) - len(phrase) :]) == phrase:
            return rel, len(words) - len(phrase)
    return None


def position_claims(tokens: Sequence[str], objects: Sequence[dict], lexicon: Lexicon) -> list[bool]:
    """One True/False per position claim the caption makes about objects in the picture (in `objects`, drawing
    order, each {"name", "box"}). Claims about objects not in the picture are CHAIR's business, not this one's."""
    index = {o["name"]: i for i, o in enumerate(objects)}
    boxes = [o["box"] for o in objects]
    mentions = lexicon.mentions(tokens)
    out = []
    for k, m in enumerate(mentions):
        here = [index[n] for n in m.concepts if n in index]
        end = mentions[k + 1].start if k + 1 < len(mentions) else len(tokens)
        words = list(tokens[m.end : end])
        found = _find_relation(words) if k + 1 < len(mentions) else None
        if found is not None:
            rel, at = found
            words = words[:at]
            there = [index[n] for n in mentions[k + 1].concepts if n in index]
            if here and there:
                out.append(_relation_ok(rel, here[0], there[0], boxes))
        if here:
            ok = _absolute_ok(words, boxes[here[0]])
            if ok is not None:
                out.append(ok)
    return out


def position_accuracy(
    captions_tokens: Sequence[Sequence[str]], objects: Sequence[Sequence[dict]], lexicon: Lexicon
) -> dict:
    claims = [c for tokens, objs in zip(captions_tokens, objects) for c in position_claims(tokens, objs, lexicon)]
    return {"position_accuracy": 100 * float(sum(claims)) / len(claims) if claims else 0.0,
            "n_position_claims": len(claims)}
