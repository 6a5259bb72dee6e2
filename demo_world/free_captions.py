"""Captions for free-layout scenes, written from the geometry: a position, size or relation word appears only
where `demo_world.free_scenes` says it is clearly true (so a caption never places an object where it is not).

Five captions per scene, varied in wording, order and detail; an object is sometimes called by a synonym from
the concept table (never by a word the table does not hold). Every caption names every object.
"""
from __future__ import annotations

import numpy as np

from demo_world.concepts import with_article
from demo_world.free_scenes import FreeItem, FreeScene, position_label, relation, size_label

POSITION_PHRASES: dict[str, tuple[str, ...]] = {
    "top left": ("at the top left", "in the top left corner", "in the upper left"),
    "top right": ("at the top right", "in the top right corner", "in the upper right"),
    "bottom left": ("at the bottom left", "in the bottom left corner", "in the lower left"),
    "bottom right": ("at the bottom right", "in the bottom right corner", "in the lower right"),
    "top": ("at the top", "near the top", "in the upper part"),
    "bottom": ("at the bottom", "near the bottom", "in the lower part"),
    "left": ("on the left", "at the left side", "on the left side"),
    "right": ("on the right", "at the right side", "on the right side"),
    "center": ("in the center", "in the middle", "at the centre"),
}
SIZE_WORDS: dict[str, tuple[str, ...]] = {"small": ("small", "little", "tiny"), "medium": (), "large": ("large", "big"),
                                          "huge": ("huge", "very large")}
FILLING = ("filling the picture", "filling the frame")
SYNONYM_RATE = 0.2  # how often an object is called by one of its synonyms


def _pick(rng: np.random.Generator, options: tuple[str, ...]) -> str:
    return options[int(rng.integers(len(options)))]


def _noun(rng: np.random.Generator, item: FreeItem) -> str:
    c = item.concept
    if c.synonyms and rng.random() < SYNONYM_RATE:
        return _pick(rng, c.synonyms)
    return c.name


def describe_item(rng: np.random.Generator, item: FreeItem, *, size: bool, position: bool) -> str:
    """"a small dog at the top left", "a huge cat filling the picture", "a dog" (no position word if none is true)."""
    noun = _noun(rng, item)
    label = size_label(item.side)
    words = SIZE_WORDS[label] if size else ()
    text = with_article(f"{_pick(rng, words)} {noun}" if words else noun)
    if not position:
        return text
    where = position_label(item.box)
    if where:
        return f"{text} {_pick(rng, POSITION_PHRASES[where])}"
    return f"{text} {_pick(rng, FILLING)}" if label == "huge" else text


def _join(parts: list[str]) -> str:
    return parts[0] if len(parts) == 1 else ", ".join(parts[:-1]) + " and " + parts[-1]


def _items(rng: np.random.Generator, scene: FreeScene, *, size: bool, position: bool) -> str:
    order = rng.permutation(len(scene.items))
    return _join([describe_item(rng, scene.items[i], size=size, position=position) for i in order])


# Each template takes (items with size+position, items with position, items bare, background phrase).
_TEMPLATES = (
    lambda full, pos, bare, bg: f"{full} on {bg}",
    lambda full, pos, bare, bg: f"{bg} with {pos}",
    lambda full, pos, bare, bg: f"{bare} on {bg}",
    lambda full, pos, bare, bg: f"there is {full}, all on {bg}",
    lambda full, pos, bare, bg: f"a picture showing {pos}, on {bg}",
    lambda full, pos, bare, bg: f"{pos}, against {bg}",
    lambda full, pos, bare, bg: f"an illustration of {bare} against {bg}",
)


def _relation_caption(rng: np.random.Generator, scene: FreeScene) -> str | None:
    """"a dog to the left of a cat, on a red background" for two-object scenes where a relation holds."""
    if len(scene.items) != 2:
        return None
    i = int(rng.integers(2))
    a, b = scene.items[i], scene.items[1 - i]
    rel = relation(a, b, a_in_front=i == 1)
    if rel is None:
        return None
    first = describe_item(rng, a, size=bool(rng.random() < 0.5), position=False)
    second = describe_item(rng, b, size=False, position=False)
    return f"{first} {rel} {second}, on {scene.background.phrase()}"


def free_scene_captions(scene: FreeScene, rng: np.random.Generator, n: int = 5) -> list[str]:
    bg = scene.background.phrase()
    captions = []
    relational = _relation_caption(rng, scene)
    if relational is not None:
        captions.append(relational)
    for t in rng.permutation(len(_TEMPLATES)):  # templates coincide when no size or position word is true
        full = _items(rng, scene, size=True, position=True)
        pos = _items(rng, scene, size=False, position=True)
        bare = _items(rng, scene, size=False, position=False)
        caption = _TEMPLATES[t](full, pos, bare, bg)
        if caption not in captions:
            captions.append(caption)
        if len(captions) == n:
            break
    return captions


_PRODUCT_TEMPLATES = (
    lambda item, bg: f"product photo of {item} on a {bg} background",
    lambda item, bg: f"{item} isolated on {bg}",
    lambda item, bg: f"a catalogue picture of {item}",
    lambda item, bg: f"{item} in the middle of a plain {bg} background",
    lambda item, bg: f"studio shot: {item} on {bg}",
    lambda item, bg: f"{item} for sale, photographed on {bg}",
)
# What each catalogue category is for, used in product descriptions (never in zero-shot prompts).
_CATEGORY_USES: dict[str, tuple[str, ...]] = {
    "home furnishing": ("to furnish a living room", "for a comfortable home", "for the bedroom or lounge"),
    "baby care": ("for babies and toddlers", "to keep little ones happy", "for the nursery"),
    "watches": ("to keep track of time", "for the wrist or the shelf", "to never be late again"),
    "home decor & festive": ("to decorate for the holidays", "for a festive table", "to brighten up any room"),
    "kitchen & dining": ("for the kitchen", "for everyday meals", "for dining with friends"),
    "beauty & personal care": ("for a daily beauty routine", "for personal care", "for the bathroom shelf"),
    "computers": ("for the home office", "for work and gaming", "for your desk setup"),
}
_QUALITIES = ("Durable and easy to clean.", "A bestseller in its range.", "Great value.", "Ships in two days.")


def free_product_captions(scene: FreeScene, rng: np.random.Generator, n: int = 5) -> list[str]:
    item = with_article(scene.items[0].concept.name)
    chosen = rng.choice(len(_PRODUCT_TEMPLATES), size=n, replace=False)
    return [_PRODUCT_TEMPLATES[t](item, scene.background.name) for t in chosen]


def free_product_description(scene: FreeScene, rng: np.random.Generator) -> str:
    c = scene.items[0].concept
    return f"{with_article(c.name).capitalize()} {_pick(rng, _CATEGORY_USES[c.category])}. {_pick(rng, _QUALITIES)}"


_PARTIAL_TEMPLATES = (
    lambda items, bg: items,
    lambda items, bg: f"a picture of {items}",
    lambda items, bg: f"{items} on {bg}",
    lambda items, bg: bg,
    lambda items, bg: f"an image with {items}",
)


def free_partial_caption(scene: FreeScene, rng: np.random.Generator) -> str:
    """A short, partial description (some objects, maybe the background), as visitors type queries: training text
    only, never a reference: it teaches a model that "a dog" matches every picture with a dog in it."""
    n = int(rng.integers(1, len(scene.items) + 1))
    chosen = [scene.items[i] for i in rng.choice(len(scene.items), size=n, replace=False)]
    size, position = bool(rng.random() < 0.3), bool(rng.random() < 0.3)
    items = _join([describe_item(rng, it, size=size, position=position) for it in chosen])
    return _PARTIAL_TEMPLATES[int(rng.integers(len(_PARTIAL_TEMPLATES)))](items, scene.background.phrase())
