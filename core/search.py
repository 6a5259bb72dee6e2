"""Text→image and image→image search over an index: pure functions the Search tab and API call."""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from core.familiarity import BLANK_NOTICE, PHOTO_FLOOR, floor_of, is_blank, unfamiliar_notice, unrecognised_notice
from core.inputs import clean_text
from core.services import BoundedCache

# Query embeddings by (model, revision, text): example queries, refreshes and paging repeat them. 4,096 rows of
# at most 1,024 floats is under 17 MB.
QUERY_CACHE_SIZE = 4096
_query_cache = BoundedCache(QUERY_CACHE_SIZE, log_evictions=False)


@dataclass(frozen=True)
class Hit:
    id: str
    score: float  # cosine similarity in [-1, 1]
    caption: str
    image_png: bytes
    unseen: tuple[str, ...] = ()  # concepts in the picture that no bundled model was trained on


@dataclass
class SearchResult:
    hits: list[Hit]
    notices: list[str] = field(default_factory=list)
    searched: int = 0  # how many images the index holds
    far_from_known: bool = False  # the best score is under the collection's calibrated floor (core.familiarity)
    photo_reading: str = ""  # set when an upload was answered as a photograph, across domains (ImageNet's classes)


def truncation_notice(encoder, text: str) -> list[str]:
    check = encoder.check_text(text)
    if not check.truncated:
        return []
    return [
        f"Your text is {check.n_tokens} tokens long but {encoder.name} reads at most {check.context_length}; "
        "only the beginning was used."
    ]


def _hits(index, scores: np.ndarray, ids: np.ndarray) -> list[Hit]:
    meta = index.meta
    has_unseen = "unseen" in meta.columns  # indexes of the open-vocabulary world
    hits = []
    for score, i in zip(scores, ids):
        if i < 0:  # FAISS pads with -1 when fewer than k vectors exist
            continue
        row = meta.iloc[int(i)]
        unseen = tuple(str(x) for x in row["unseen"]) if has_unseen and row["unseen"] is not None else ()
        hits.append(Hit(str(row["id"]), float(score), str(row["caption"]), bytes(row["image"]), unseen))
    return hits


def query_embedding(encoder, text: str) -> np.ndarray:
    """(1, D) embedding of one query, from the cache when this model at this revision has seen the text.
    The array is read-only: every caller shares it."""
    def embed() -> np.ndarray:
        xq = encoder.encode_text([text])  # (1, D)
        xq.setflags(write=False)
        return xq

    return _query_cache.get((encoder.name, encoder.revision, text), embed)


def search_text(encoder, index, text: str, k: int) -> SearchResult:
    text, notices = clean_text(text, field="description")
    notices += truncation_notice(encoder, text)
    xq = query_embedding(encoder, text)  # (1, D)
    D, I = index.search(xq, k)
    hits = _hits(index, D[0], I[0])
    far = unfamiliar_notice(hits[0].score if hits else None, floor_of(index, "text"), "text")
    return SearchResult(hits, notices + far, index.index.ntotal, bool(far))


def search_image(encoder, index, image, k: int) -> SearchResult:
    xq = encoder.encode_image([image])  # (1, D)
    D, I = index.search(xq, k)
    hits = _hits(index, D[0], I[0])
    if is_blank(image):
        return SearchResult(hits, [BLANK_NOTICE], index.index.ntotal, True)
    floor = floor_of(index, "image")
    far = unfamiliar_notice(hits[0].score if hits else None, floor, "image")
    if floor is not None:  # a calibrated collection of the world (not a visitor's own pictures)
        far = far or unrecognised_notice(encoder, image)
    if far:
        across = search_as_photo(encoder, index, image, k)
        if across is not None:
            return across
    return SearchResult(hits, far, index.index.ntotal, bool(far))


def search_as_photo(encoder, index, image, k: int) -> SearchResult | None:
    """An upload unlike every picture of the collection may be a photograph of something the world knows: the
    ImageNet network's reading of it, as a point of the text space (`photo_reading`, ConSE), searched like a
    description. Used only when ImageNet is sure (`PHOTO_FLOOR`) and that point is itself as close to the
    collection as genuine descriptions are (the text floor); otherwise None and the upload stays unfamiliar."""
    reading = encoder.photo_reading(image) if hasattr(encoder, "photo_reading") else None
    if reading is None or reading.confidence < PHOTO_FLOOR:
        return None
    D, I = index.search(reading.embedding[None], k)
    floor = floor_of(index, "text")
    if floor is None or float(D[0, 0]) < floor:
        return None
    notice = (f"This looks like a photograph, not a picture of this world: the ImageNet network it started from "
              f"sees {reading.describe()}. These are the pictures closest to those words (an answer across "
              "domains), not matches of your picture itself.")
    return SearchResult(_hits(index, D[0], I[0]), [notice], index.index.ntotal, False, reading.describe())
