"""Explanation maps on the demo world: the pointing score of each method, the agreement of gradient × input
with occlusion, and the time each takes, on the trained demo models (the only ones whose maps mean anything here).
The measure is `evaluation.explanations` (also stored by `evaluate`, shown in the Compare tab).

    python -m bench.explanations [--scenes 40] [--out bench/results/explanations.json]

For every object of every test scene, the text "a <object name>" is explained on the scene's image. Pointing: the
map's peak cell falls inside the object's box (the captioner's measure, `evaluation.captioning.peak_in_box`),
against chance (a peak drawn uniformly over the cells). Agreement of gradient with occlusion: the Spearman rank
correlation of the two maps over the cells, and how often both peak in the same cell. Word relevance: in
"a <object name> in a picture", how often the name's last word weighs most.
"""
from __future__ import annotations

import argparse
import os
import time
from pathlib import Path


from bench import save_result
from bench.search_latency import machine
from evaluation.explanations import explanation_pointing

MODELS = ("demo-clip", "dual-minilm-cnn", "demo-clip-products")


def run(n_scenes: int = 40, grid: int | None = None) -> dict:
    from app import configure_threads
    from core.catalog import load_catalog
    from core.explain import OCCLUSION_GRID
    from core.services import Services
    from demo_world.free_corpus import build_free_split

    configure_threads()
    grid = grid or OCCLUSION_GRID
    data = build_free_split("scenes", "test", n_scenes)
    rows = [(r["image"].convert("RGB"), r["objects"]) for r in data]
    services = Services(load_catalog())
    models = [m for m in MODELS if m in services.catalog.models]
    load = [os.getloadavg()[0]]
    figures = {m: explanation_pointing(services.encoder(m), rows, grid) for m in models}
    return {"machine": machine(), "date": time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime()), "scenes": n_scenes,
            "grid": grid, "models": figures, "load_average_1min": load + [os.getloadavg()[0]]}


def _load(r: dict) -> str:
    load = r.get("load_average_1min")
    return f"1-minute load average {load[0]:.1f} at the start, {load[-1]:.1f} at the end." if load else ""


def markdown(r: dict) -> str:
    lines = [f"## Explanations: pointing and agreement on the demo world\n\n`python -m bench.explanations`, {r['date']}: "
             f"every object of {r['scenes']} test scenes, explained as \"a <name>\" on a {r['grid']}×{r['grid']} map. "
             "Pointing: the map's peak inside the object's box (chance: a peak drawn uniformly over the cells). "
             "Agreement: Spearman correlation of the gradient and occlusion maps over the cells, and same peak cell. "
             "Words: how often the object's name weighs most in \"a <name> in a picture\". "
             f"{_load(r)} The milliseconds compare the methods on one model, nothing more; speed on the real "
             "architectures is in the section above. The same pointing measure is stored by `evaluate` (200 scenes per "
             "split) and shown in the Compare tab.\n",
             "| model | objects | pointing, occlusion | pointing, gradient × input | chance | agreement ρ | same peak | "
             "map ms p50 occl. / grad. | name weighs most (chance) |",
             "|---|---|---|---|---|---|---|---|---|"]
    for name, m in r["models"].items():
        lines.append(f"| {name} | {m['objects']} | {m['pointing']['occlusion']:.1f}% | {m['pointing']['gradient']:.1f}% | "
                     f"{m['pointing_chance']:.1f}% | {m['agreement_spearman_mean']:.2f} | {m['agreement_same_peak']:.1f}% | "
                     f"{m['map_ms_p50']['occlusion']:.1f} / {m['map_ms_p50']['gradient']:.1f} | "
                     f"{m['name_weighs_most']:.1f}% ({m['words_chance']:.0f}%) |")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--scenes", type=int, default=40)
    p.add_argument("--out", type=Path, default=Path("bench/results/explanations.json"))
    args = p.parse_args(argv)
    result = run(args.scenes)
    save_result(args.out, result)
    print(markdown(result))


if __name__ == "__main__":
    main()
