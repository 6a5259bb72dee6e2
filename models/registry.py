"""One registry for every model family: `create_encoder(family, folder, name)`.

Families register a loader with `@register_family("name")`; an unknown family fails listing the known ones.
"""
from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from models.base import Encoder

_FAMILIES: dict[str, Callable[[Path, str], Encoder]] = {}


class UnknownModelError(KeyError):
    def __str__(self) -> str:  # KeyError would quote the message
        return str(self.args[0])


def register_family(family: str) -> Callable:
    def wrap(loader: Callable[[Path, str], Encoder]) -> Callable[[Path, str], Encoder]:
        _FAMILIES[family] = loader
        return loader

    return wrap


def available_families() -> list[str]:
    _import_families()
    return sorted(_FAMILIES)


def create_encoder(family: str, folder: Path, name: str) -> Encoder:
    """Build the encoder of `family` from a local folder (see `core.sources.resolve` for Hub sources).

    >>> create_encoder("open_clip", Path("assets/models/demo-clip"), "demo-clip")  # doctest: +SKIP
    """
    _import_families()
    if family not in _FAMILIES:
        raise UnknownModelError(f"Unknown model family {family!r}; known families: {', '.join(sorted(_FAMILIES))}.")
    return _FAMILIES[family](Path(folder), name)


def _import_families() -> None:
    # Imported here, not at module import, so `import models` stays cheap.
    from models import hf_clip, open_clip_encoder  # noqa: F401
