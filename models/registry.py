"""One registry for every model family: `create_model(family, folder, name)`.

A family's loader returns an `Encoder` (texts and images into one space), a `Captioner` (images into words with
attention maps) or a `Classifier` (images into fixed
categories, e.g. the CNN baseline).

Families register a loader with `@register_family("name", files=[...])`; an unknown family fails listing the known
ones. `files` are the glob patterns of what the loader reads from its folder: a Hub download fetches only those
(a transformers repo also holds pickled, TensorFlow and Flax copies of its weights, two or three times the bytes).
"""
from __future__ import annotations

from collections.abc import Callable, Collection
from pathlib import Path

from typing import Any

_FAMILIES: dict[str, Callable[[Path, str], Any]] = {}
_FILES: dict[str, list[str]] = {}
_IMPORTS: dict[str, list[str]] = {}
# What a transformers model folder is read for: config, safetensors weights, tokenizer and processor files.
TRANSFORMERS_FILES = ["config.json", "model.safetensors", "model.safetensors.index.json", "model-*.safetensors",
                      "preprocessor_config.json", "processor_config.json", "tokenizer.json", "tokenizer_config.json",
                      "special_tokens_map.json", "added_tokens.json", "vocab.json", "vocab.txt", "merges.txt",
                      "spiece.model", "generation_config.json"]


class UnknownModelError(KeyError):
    def __str__(self) -> str:  # KeyError would quote the message
        return str(self.args[0])


def register_family(family: str, files: list[str] | None = None, imports: list[str] = ()) -> Callable:
    """Register `loader(folder, name)` for `family`; `files` (glob patterns) is what it reads, None for all;
    `imports` the libraries its loader imports lazily ("module" or "module:attribute" for a lazy attribute)."""
    def wrap(loader: Callable[[Path, str], Any]) -> Callable[[Path, str], Any]:
        _FAMILIES[family] = loader
        if files is not None:
            _FILES[family] = list(files)
        _IMPORTS[family] = list(imports)
        return loader

    return wrap


def available_families() -> list[str]:
    _import_families()
    return sorted(_FAMILIES)


def family_files(family: str) -> list[str] | None:
    """The glob patterns a family's loader reads (for `allow_patterns` of a Hub download); None means all."""
    _import_families()
    if family not in _FAMILIES:
        raise UnknownModelError(f"Unknown model family {family!r}; known families: {', '.join(sorted(_FAMILIES))}.")
    return _FILES.get(family)


def create_model(family: str, folder: Path, name: str, **options: Any) -> Any:
    """Build the encoder of `family` from a local folder (see `core.sources.resolve` for Hub sources); `options`
    are the catalog's per-model switches (`text_int8` for open_clip), refused by families that lack them.

    >>> create_model("open_clip", Path("assets/models/demo-clip"), "demo-clip")  # doctest: +SKIP
    """
    _import_families()
    if family not in _FAMILIES:
        raise UnknownModelError(f"Unknown model family {family!r}; known families: {', '.join(sorted(_FAMILIES))}.")
    loader = _FAMILIES[family]
    if options:
        import inspect

        unknown = sorted(set(options) - set(inspect.signature(loader).parameters))
        if unknown:
            raise UnknownModelError(f"Model {name!r}: family {family!r} has no option {', '.join(unknown)}.")
    return loader(Path(folder), name, **options)


def import_family_libraries(families: Collection[str] | None = None) -> list[str]:
    """Import now, in this thread, what the loaders of `families` (default: all) import lazily; the server calls
    this before it takes requests, so no request ever meets a library half-imported by another thread."""
    import importlib

    _import_families()
    done = []
    for family in sorted(_FAMILIES if families is None else set(families) & set(_FAMILIES)):
        for target in _IMPORTS.get(family, []):
            if target in done:
                continue
            module, _, attribute = target.partition(":")
            loaded = importlib.import_module(module)
            if attribute:
                getattr(loaded, attribute)  # a lazy module (transformers) imports the submodule behind it here
            done.append(target)
    return done


def _import_families() -> None:
    # Imported here, not at module import, so `import models` stays cheap.
    from models import (  # noqa: F401
        blip_captioner, captioner, cnn_classifier, dual_encoder, grounded_captioner, hf_clip, open_clip_encoder,
    )
