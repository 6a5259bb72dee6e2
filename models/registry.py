"""One registry for every model family: `create_model(family, folder, name)`.

A family's loader returns an `Encoder` (texts and images into one space), a `Captioner` (images into words with
attention maps) or a `Classifier` (images into fixed
categories, e.g. the CNN baseline).

Families register a loader with `@register_family("name")`; an unknown family fails listing the known ones.
"""
from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from typing import Any

_FAMILIES: dict[str, Callable[[Path, str], Any]] = {}


class UnknownModelError(KeyError):
    def __str__(self) -> str:  # KeyError would quote the message
        return str(self.args[0])


def register_family(family: str) -> Callable:
    def wrap(loader: Callable[[Path, str], Any]) -> Callable[[Path, str], Any]:
        _FAMILIES[family] = loader
        return loader

    return wrap


def available_families() -> list[str]:
    _import_families()
    return sorted(_FAMILIES)


def create_model(family: str, folder: Path, name: str) -> Any:
    """Build the encoder of `family` from a local folder (see `core.sources.resolve` for Hub sources).

    >>> create_model("open_clip", Path("assets/models/demo-clip"), "demo-clip")  # doctest: +SKIP
    """
    _import_families()
    if family not in _FAMILIES:
        raise UnknownModelError(f"Unknown model family {family!r}; known families: {', '.join(sorted(_FAMILIES))}.")
    return _FAMILIES[family](Path(folder), name)


def _import_families() -> None:
    # Imported here, not at module import, so `import models` stays cheap.
    from models import blip_captioner, captioner, cnn_classifier, dual_encoder, hf_clip, open_clip_encoder  # noqa: F401
