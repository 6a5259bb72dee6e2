"""The examples the tabs offer, chosen by rules written here (never picked by hand after looking at answers), from
the open-vocabulary world's test and held-out splits (so no example was ever trained on).

    python -m demo_world.examples --out assets/examples

Search's example queries (`example_queries`, computed, nothing to write), all from the scenes of the default
collection, in split order: the first test scene with one object on a plain background ("an olive on a navy blue
background"), the first with two objects ("a dumpling and a wedding chapel"), the second single object on a plain
background by its name alone, then the first three held-out scenes with exactly one object, by the held-out
concept's name alone, labelled as never seen in training. The first query is the
worked answer Search shows on arrival; a test checks that every seen one is answered right.

scenes/: the first test scenes with one to four objects, and two held-out scenes (each shows one concept no
model was trained on). products/: the first test product of each of the seven categories, and three held-out
products. `labels.json` beside each folder names what every picture shows; the tabs show those names, with
"never seen in training" on held-out concepts.
"""
from __future__ import annotations

import argparse
import json
from pathlib import Path

from demo_world.concepts import CATEGORIES, with_article
from demo_world.free_corpus import DEFAULT_SEED, iter_free_products, iter_free_scenes
from demo_world.free_scenes import FreeScene, render_free

EXAMPLE_PX = 224  # what a visitor uploads, not the 128 px of the corpus
HELDOUT_SCENES = 2
HELDOUT_PRODUCTS = ("computers", "beauty & personal care", "kitchen & dining")
UNSEEN = "never seen in training"


def label(scene: FreeScene) -> str:
    """"a dog, a cup" with "(never seen in training)" after each held-out concept."""
    return ", ".join(i.concept.name + (f" ({UNSEEN})" if i.concept.split == "heldout" else "") for i in scene.items)


def _filename(scene: FreeScene) -> str:
    split, index = scene.id.split("-")[-2:]
    names = "-".join(i.concept.name.replace(" ", "-").replace("'", "") for i in scene.items)
    return f"{split}-{index}-{names}.png"


def _write(out: Path, scenes: list[FreeScene]) -> list[Path]:
    out.mkdir(parents=True, exist_ok=True)
    labels, written = {}, []
    for scene in scenes:
        path = out / _filename(scene)
        render_free(scene, EXAMPLE_PX).save(path, optimize=True)
        labels[path.name] = label(scene)
        written.append(path)
    (out / "labels.json").write_text(json.dumps(labels, indent=1, ensure_ascii=False) + "\n")
    return written


def example_scenes(seed: int = DEFAULT_SEED) -> list[FreeScene]:
    picked: dict[int, FreeScene] = {}
    for scene, _ in iter_free_scenes("test", 200, seed):
        picked.setdefault(len(scene.items), scene)
        if len(picked) == 4:
            break
    held = [s for s, _ in iter_free_scenes("heldout", HELDOUT_SCENES, seed)]
    return [picked[n] for n in sorted(picked)] + held


def example_products(seed: int = DEFAULT_SEED) -> list[FreeScene]:
    first: dict[str, FreeScene] = {}
    for scene, _, _ in iter_free_products("test", 70, seed):
        first.setdefault(scene.category, scene)
    held: dict[str, FreeScene] = {}
    for scene, _, _ in iter_free_products("heldout", 70, seed):
        if scene.category in HELDOUT_PRODUCTS:
            held.setdefault(scene.category, scene)
    return [first[c] for c in CATEGORIES] + [held[c] for c in HELDOUT_PRODUCTS]


def example_queries(seed: int = DEFAULT_SEED) -> list[tuple[str, str, tuple[str, ...]]]:
    """[(query, label, concepts the answer must show)] for the Search tab, by the rule in the module docstring."""
    scenes = [s for s, _ in iter_free_scenes("test", 200, seed)]  # the default collection's seen pictures
    singles = [s for s in scenes if len(s.items) == 1 and s.background.style == "plain"]
    two = next(s for s in scenes if len(s.items) == 2)
    out = [
        (f"{with_article(one.items[0].concept.name)} on {one.background.phrase()}", (one.items[0].concept.name,))
        for one in singles[:1]
    ] + [
        (" and ".join(with_article(i.concept.name) for i in two.items), tuple(i.concept.name for i in two.items)),
        (with_article(singles[1].items[0].concept.name), (singles[1].items[0].concept.name,)),
    ]
    queries = [(q, q, names) for q, names in out]
    for scene, _ in iter_free_scenes("heldout", 200, seed):
        if len(scene.items) == 1 and len(queries) < len(out) + 3:
            name = scene.items[0].concept.name
            queries.append((with_article(name), f"{with_article(name)} ({UNSEEN})", (name,)))
    return queries


def read_labels(folder: Path) -> dict[str, str]:
    """{file name: label} of an examples folder; empty when it has no labels.json."""
    path = Path(folder) / "labels.json"
    return json.loads(path.read_text()) if path.is_file() else {}


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--out", type=Path, default=Path("assets/examples"))
    args = p.parse_args(argv)
    for folder in ("scenes", "products"):
        for old in (args.out / folder).glob("*.png"):
            old.unlink()
    for path in _write(args.out / "scenes", example_scenes()) + _write(args.out / "products", example_products()):
        print(path)


if __name__ == "__main__":
    main()
