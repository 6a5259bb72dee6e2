"""Write the example pictures the tabs offer, from the test splits (so no example was ever trained on).

    python -m demo_world.examples --out assets/examples
"""
from __future__ import annotations

import argparse
from pathlib import Path

from demo_world.corpus import IMAGE_PX, iter_scenes
from demo_world.scenes import render

SCENE_EXAMPLES = (0, 1, 2, 3, 5, 8)  # the first test scenes, a mix of one, two and three icons


def write_scene_examples(out: Path, seed: int = 0) -> list[Path]:
    out.mkdir(parents=True, exist_ok=True)
    written = []
    for i, (scene, _) in enumerate(iter_scenes("test", max(SCENE_EXAMPLES) + 1, seed)):
        if i in SCENE_EXAMPLES:
            names = "-".join(p.icon.name.replace(" ", "-") for p in scene.items)
            path = out / f"{scene.id}-{names}.png"
            render(scene, IMAGE_PX).save(path, optimize=True)
            written.append(path)
    return written


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--out", type=Path, default=Path("assets/examples"))
    args = p.parse_args(argv)
    for path in write_scene_examples(args.out / "scenes"):
        print(path)


if __name__ == "__main__":
    main()
