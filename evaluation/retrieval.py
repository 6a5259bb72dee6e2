"""Retrieval Recall@K with the standard protocol (as in LAION's clip_benchmark).

Text→image: every caption queries all images; a hit when the caption's own image is in the top k.
Image→text: every image queries all captions; a hit when any of its captions is in the top k.
Scores are means over queries, on a 0-100 scale.
"""
from __future__ import annotations

import numpy as np

DEFAULT_KS = (1, 5, 10)


def _rank_of_target(scores: np.ndarray, target_mask: np.ndarray) -> np.ndarray:
    """For each row, the 0-based rank of its best-scoring target column (ties counted pessimistically)."""
    best_target = np.where(target_mask, scores, -np.inf).max(axis=1, keepdims=True)  # (Q, 1)
    return (scores > best_target).sum(axis=1) + ((scores == best_target) & ~target_mask).sum(axis=1)


def recall_at_k(
    text_emb: np.ndarray, image_emb: np.ndarray, caption_image: np.ndarray, ks=DEFAULT_KS, chunk: int = 4096
) -> dict[str, float]:
    """Text→image and image→text Recall@K.

    text_emb: (T, D) normalised caption embeddings; image_emb: (N, D) normalised image embeddings;
    caption_image: (T,) index of each caption's image.
    """
    caption_image = np.asarray(caption_image)
    t2i_ranks = []
    for s in range(0, len(text_emb), chunk):
        scores = text_emb[s : s + chunk] @ image_emb.T  # (C, N)
        mask = np.zeros_like(scores, dtype=bool)
        mask[np.arange(len(scores)), caption_image[s : s + chunk]] = True
        t2i_ranks.append(_rank_of_target(scores, mask))
    t2i = np.concatenate(t2i_ranks)
    scores = image_emb @ text_emb.T  # (N, T)
    mask = caption_image[None, :] == np.arange(len(image_emb))[:, None]  # (N, T)
    i2t = _rank_of_target(scores, mask)
    out = {}
    for k in ks:
        out[f"t2i_R@{k}"] = float((t2i < k).mean() * 100)
        out[f"i2t_R@{k}"] = float((i2t < k).mean() * 100)
    return out
