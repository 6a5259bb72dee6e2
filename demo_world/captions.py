"""Five paraphrased, Flickr-style captions per scene, and a description per product.

Captions vary in wording, in order and in detail (some leave positions or sizes out), as human captions do.
All choices come from the `rng` passed in, so captions are reproducible.
"""
from __future__ import annotations

import numpy as np

from demo_world.scenes import Placed, Scene

POSITION_PHRASES: dict[str, tuple[str, ...]] = {
    "top left": ("at the top left", "in the top left corner", "in the upper left"),
    "top": ("at the top", "at the top in the middle", "near the top edge"),
    "top right": ("at the top right", "in the top right corner", "in the upper right"),
    "left": ("on the left", "at the left side", "on the left in the middle"),
    "center": ("in the center", "in the middle", "at the centre"),
    "right": ("on the right", "at the right side", "on the right in the middle"),
    "bottom left": ("at the bottom left", "in the bottom left corner", "in the lower left"),
    "bottom": ("at the bottom", "at the bottom in the middle", "near the bottom edge"),
    "bottom right": ("at the bottom right", "in the bottom right corner", "in the lower right"),
}
SIZE_WORDS: dict[str, tuple[str, ...]] = {"small": ("small", "little", "tiny"), "large": ("large", "big", "huge")}


def _pick(rng: np.random.Generator, options: tuple[str, ...]) -> str:
    return options[int(rng.integers(len(options)))]


def _item(rng: np.random.Generator, p: Placed, *, size: bool, position: bool) -> str:
    noun = p.icon.name
    article = p.icon.with_article.split(" ")[0]
    if size:
        word = _pick(rng, SIZE_WORDS[p.size])
        article = "some" if article == "some" else ("an" if word[0] in "aeiou" else "a")
        noun = f"{word} {noun}"
    text = f"{article} {noun}"
    return f"{text} {_pick(rng, POSITION_PHRASES[p.position])}" if position else text


def _join(parts: list[str]) -> str:
    return parts[0] if len(parts) == 1 else ", ".join(parts[:-1]) + " and " + parts[-1]


def _items(rng: np.random.Generator, scene: Scene, *, size: bool, position: bool) -> str:
    order = rng.permutation(len(scene.items))
    return _join([_item(rng, scene.items[i], size=size, position=position) for i in order])


# Each template takes (items with size+position, items with position, items bare, background).
_SCENE_TEMPLATES = (
    lambda full, pos, bare, bg: f"{full} on a {bg} background",
    lambda full, pos, bare, bg: f"a {bg} background with {pos}",
    lambda full, pos, bare, bg: f"{bare} on a {bg} backdrop",
    lambda full, pos, bare, bg: f"there is {full}, all on {bg}",
    lambda full, pos, bare, bg: f"a {bg} picture showing {pos}",
    lambda full, pos, bare, bg: f"{pos}; the background is {bg}",
    lambda full, pos, bare, bg: f"an illustration of {bare} against {bg}",
)


def scene_captions(scene: Scene, rng: np.random.Generator, n: int = 5) -> list[str]:
    chosen = rng.choice(len(_SCENE_TEMPLATES), size=n, replace=False)
    captions = []
    for t in chosen:
        full = _items(rng, scene, size=True, position=True)
        pos = _items(rng, scene, size=False, position=True)
        bare = _items(rng, scene, size=False, position=False)
        captions.append(_SCENE_TEMPLATES[t](full, pos, bare, scene.background))
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


def product_captions(scene: Scene, rng: np.random.Generator, n: int = 5) -> list[str]:
    item = scene.items[0].icon.with_article
    chosen = rng.choice(len(_PRODUCT_TEMPLATES), size=n, replace=False)
    return [_PRODUCT_TEMPLATES[t](item, scene.background) for t in chosen]


def product_description(scene: Scene, rng: np.random.Generator) -> str:
    icon = scene.items[0].icon
    use = _pick(rng, _CATEGORY_USES[icon.group])
    return f"{icon.with_article.capitalize()} {use}. {_pick(rng, _QUALITIES)}"


_PARTIAL_TEMPLATES = (
    lambda items, bg: items,
    lambda items, bg: f"a picture of {items}",
    lambda items, bg: f"{items} on {bg}",
    lambda items, bg: f"{bg} background",
    lambda items, bg: f"an image with {items}",
)


def partial_caption(scene: Scene, rng: np.random.Generator) -> str:
    """A short, partial description (some objects, maybe the background), as visitors type queries.

    Used only to augment training text, never as a reference caption: it teaches the model that "a dog" matches
    every image with a dog in it, whatever else the image holds.
    """
    n = int(rng.integers(1, len(scene.items) + 1))
    chosen = [scene.items[i] for i in rng.choice(len(scene.items), size=n, replace=False)]
    size, position = bool(rng.random() < 0.3), bool(rng.random() < 0.3)
    items = _join([_item(rng, p, size=size, position=position) for p in chosen])
    template = _PARTIAL_TEMPLATES[int(rng.integers(len(_PARTIAL_TEMPLATES)))]
    return template(items, scene.background)
