"""The demo worlds behind one interface, so a pipeline can be pointed at either by name.

    world = get_world("free")
    for scene, captions in world.iter_scenes("train", 1000, seed=0):
        image = world.render(scene, 128)

"grid" is the first world (103 icons on a 3x3 grid, `demo_world.corpus`); "free" is the open-vocabulary world
(829 concepts, free layouts, held-out concepts, `demo_world.free_corpus`). Scenes of both have `.items` and
`.category`; products come with their captions and a description.
"""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass


@dataclass(frozen=True)
class World:
    name: str
    iter_scenes: Callable  # (split, n, seed) -> iterator of (scene, captions)
    iter_products: Callable  # (split, n, seed) -> iterator of (scene, captions, description)
    render: Callable  # (scene, px) -> PIL image
    partial_caption: Callable  # (scene, rng) -> a short partial description, for training text only
    scene_splits: dict[str, int]
    product_splits: dict[str, int]


def get_world(name: str) -> World:
    if name == "grid":
        from demo_world import corpus
        from demo_world.captions import partial_caption
        from demo_world.scenes import render

        return World("grid", corpus.iter_scenes, corpus.iter_products, render, partial_caption,
                     corpus.SCENE_SPLITS, corpus.PRODUCT_SPLITS)
    if name == "free":
        from demo_world import free_corpus
        from demo_world.free_captions import free_partial_caption
        from demo_world.free_scenes import render_free

        return World("free", free_corpus.iter_free_scenes, free_corpus.iter_free_products, render_free,
                     free_partial_caption, free_corpus.SCENE_SPLITS, free_corpus.PRODUCT_SPLITS)
    raise ValueError(f"unknown world {name!r}; known: grid, free")
