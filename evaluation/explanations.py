"""How well explanation maps point at what the text names: the captioner's pointing score, for `core.explain`.

For every object of every scene, the text "a <object name>" is explained on the scene's image (the target is the
text's embedding, as the Search tab's explanation of a hit). A map points right when its peak cell falls inside the
object's box (`evaluation.captioning.peak_in_box`); chance is a peak drawn uniformly over the cells
(`box_chance`). Both methods are scored, with their agreement: the Spearman rank correlation of the gradient and
occlusion maps over the cells and how often both peak in the same cell. Word relevance: in "a <object name> in a
picture", how often the name's last word weighs most (chance: one over the number of words).

`evaluate` stores it for every retrieval model on a scenes split ("explanations"), the Compare tab shows it, and
`python -m bench.explanations` adds the time each method takes.
"""
from __future__ import annotations

import time

import numpy as np

METHODS = ("occlusion", "gradient")


def spearman(a: np.ndarray, b: np.ndarray) -> float:
    ra, rb = np.argsort(np.argsort(a.ravel())), np.argsort(np.argsort(b.ravel()))
    if ra.std() == 0 or rb.std() == 0:
        return 0.0
    return float(np.corrcoef(ra, rb)[0, 1])


def explanation_pointing(encoder, rows: list[tuple], grid: int | None = None) -> dict:
    """rows: (PIL image, objects [{"name", "box"}]). Scores on a 0-100 scale, plus the median milliseconds each
    method took (a single measurement in passing, not a benchmark)."""
    from core.explain import OCCLUSION_GRID, heatmap, word_weights
    from evaluation.captioning import box_chance, peak_in_box

    grid = grid or OCCLUSION_GRID
    hits: dict[str, list[bool]] = {m: [] for m in METHODS}
    ms: dict[str, list[float]] = {m: [] for m in METHODS}
    chance, rho, same_peak, name_top, words_chance = [], [], [], [], []
    for image, objects in rows:
        image_emb = encoder.encode_image([image])[0]
        for obj in objects:
            target = encoder.encode_text([f"a {obj['name']}"])[0]
            maps = {}
            for method in METHODS:
                t0 = time.perf_counter()
                maps[method], _ = heatmap(encoder, image, target, method, grid)
                ms[method].append((time.perf_counter() - t0) * 1000)
                hits[method].append(peak_in_box(maps[method], obj["box"]))
            chance.append(box_chance(obj["box"], grid))
            rho.append(spearman(maps["occlusion"], maps["gradient"]))
            same_peak.append(int(np.argmax(maps["occlusion"])) == int(np.argmax(maps["gradient"])))
            weights = word_weights(encoder, image_emb, f"a {obj['name']} in a picture")[2]
            name_top.append(max(weights, key=lambda tw: tw[1])[0] == obj["name"].split()[-1])
            words_chance.append(1 / len(weights))
    if not chance:
        return {"objects": 0}
    return {
        "objects": len(chance),
        "scenes": len(rows),
        "grid": grid,
        "pointing": {m: 100 * float(np.mean(h)) for m, h in hits.items()},
        "pointing_chance": 100 * float(np.mean(chance)),
        "agreement_spearman_mean": float(np.mean(rho)),
        "agreement_same_peak": 100 * float(np.mean(same_peak)),
        "name_weighs_most": 100 * float(np.mean(name_top)),
        "words_chance": 100 * float(np.mean(words_chance)),
        "map_ms_p50": {m: float(np.median(v)) for m, v in ms.items()},
    }
