"""The catalog: which models, indexes and datasets the app shows, each with its source.

`catalog.toml` (the default) names the bundled demo assets, so the app works offline; `catalog.hub.toml`
adds real public models from the Hugging Face Hub. Pick one with `--catalog` or `VLSTUDIO_CATALOG`.
Relative folder sources are resolved against the catalog file's directory.
"""
from __future__ import annotations

import os
import tomllib
from dataclasses import dataclass, field
from pathlib import Path

from core.layouts import DatasetSpec, LayoutError

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_CATALOG = ROOT / "catalog.toml"
CATALOG_ENV = "VLSTUDIO_CATALOG"


class CatalogError(ValueError):
    pass


@dataclass(frozen=True)
class ModelSpec:
    name: str
    family: str  # a registry family: open_clip, hf_clip, siglip, ...
    source: str  # hf-hub:owner/repo[@rev] or an absolute folder
    description: str = ""
    tasks: tuple[str, ...] = ("search",)
    warm: bool = False  # loaded by the warm start (core.warmup) beside each tab's default model
    text_int8: bool = False  # open_clip: int8 MLPs in the text tower (models.open_clip_encoder.quantize_text_mlps)
    picker: bool = True  # offered in the tabs' model pickers; false: API (by name) and Compare rows only

    def options(self) -> dict:
        """The loader's switches that differ from their defaults."""
        return {"text_int8": True} if self.text_int8 else {}


@dataclass(frozen=True)
class BuildSpec:
    """How the app builds an index it cannot download: a catalog dataset's split, embedded by the index's model."""

    dataset: str  # a name under [datasets]
    split: str
    config: str = ""  # the corpus layout's config ("scenes", "products"); other layouts ignore it
    sample: int | None = None  # a seeded random subset of the split's rows

    def describe(self) -> str:
        return f"{self.dataset} {self.config + '/' if self.config else ''}{self.split}" + (
            f" ({self.sample:,} sampled)" if self.sample else "")


@dataclass(frozen=True)
class IndexSpec:
    model: str
    collection: str  # what the index holds, e.g. "demo scenes (test)"
    source: str  # where the built index is published (or bundled); may not exist yet when `build` is given
    description: str = ""
    build: BuildSpec | None = None  # built by the app in the background when `source` cannot be loaded


@dataclass(frozen=True)
class Catalog:
    models: dict[str, ModelSpec]
    indexes: tuple[IndexSpec, ...]
    path: Path | None = None
    datasets: dict[str, DatasetSpec] = field(default_factory=dict)

    def model(self, name: str) -> ModelSpec:
        if name not in self.models:
            raise CatalogError(f"Unknown model {name!r}. Known models: {', '.join(self.models) or 'none'}.")
        return self.models[name]

    def search_models(self) -> list[str]:
        """Models that have at least one index, in catalog order."""
        with_index = {i.model for i in self.indexes}
        return [m for m in self.models if m in with_index]

    def models_for(self, task: str) -> list[str]:
        """Models whose catalog entry lists `task` (search, categorise, caption)."""
        return [m for m, spec in self.models.items() if task in spec.tasks]

    def picker_models(self, task: str) -> list[str]:
        """What a tab's model picker offers for `task`: the task's models (for search, those with an index) less
        the ones marked `picker = false`, which still answer API calls that name them and keep their Compare rows."""
        names = self.search_models() if task == "search" else self.models_for(task)
        return [m for m in names if self.models[m].picker]

    def collections(self, model: str | None = None) -> list[str]:
        seen = dict.fromkeys(i.collection for i in self.indexes if model is None or i.model == model)
        return list(seen)

    def index(self, model: str, collection: str) -> IndexSpec:
        for spec in self.indexes:
            if spec.model == model and spec.collection == collection:
                return spec
        raise CatalogError(
            f"Model {model!r} has no index for {collection!r}. "
            f"Its collections: {', '.join(self.collections(model)) or 'none'}."
        )


def _source(value: str, base: Path) -> str:
    if value.startswith("hf-hub:"):
        return value
    path = Path(value)
    return str(path if path.is_absolute() else (base / path).resolve())


def load_catalog(path: Path | str | None = None) -> Catalog:
    """Read a catalog file (the `--catalog` flag, else `$VLSTUDIO_CATALOG`, else `catalog.toml`)."""
    path = Path(path or os.environ.get(CATALOG_ENV) or DEFAULT_CATALOG)
    if not path.is_file():
        raise CatalogError(f"Catalog file {path} not found.")
    data = tomllib.loads(path.read_text())
    base = path.resolve().parent
    models: dict[str, ModelSpec] = {}
    indexes: list[IndexSpec] = []
    datasets: dict[str, DatasetSpec] = {}
    for inc in data.get("include", []):  # e.g. the hub catalog includes the demo one
        sub = load_catalog(base / inc)
        models |= sub.models
        indexes += sub.indexes
        datasets |= sub.datasets
    for name, m in data.get("models", {}).items():
        try:
            models[name] = ModelSpec(
                name, m["family"], _source(m["source"], base), m.get("description", ""),
                tuple(m.get("tasks", ["search"])), bool(m.get("warm", False)), bool(m.get("text_int8", False)),
                bool(m.get("picker", True)),
            )
        except KeyError as e:
            raise CatalogError(f"{path}: model {name!r} lacks {e.args[0]!r}") from None
    for name, value in data.get("datasets", {}).items():  # a source, or {source, layout}
        value = value if isinstance(value, dict) else {"source": value}
        try:
            datasets[name] = DatasetSpec(name, _source(value["source"], base), value.get("layout", "corpus"))
        except (KeyError, LayoutError) as e:
            raise CatalogError(f"{path}: dataset {name!r}: {e}") from None
    for i in data.get("indexes", []):
        if i.get("model") not in models:
            raise CatalogError(f"{path}: an index refers to unknown model {i.get('model')!r}")
        indexes.append(IndexSpec(i["model"], i["collection"], _source(i["source"], base), i.get("description", ""),
                                 _build_spec(i.get("build"), datasets, path)))
    return Catalog(models, tuple(indexes), path, datasets)


def _build_spec(value: dict | None, datasets: dict[str, DatasetSpec], path: Path) -> BuildSpec | None:
    if value is None:
        return None
    if value.get("dataset") not in datasets:
        raise CatalogError(f"{path}: an index build names unknown dataset {value.get('dataset')!r}; "
                           f"known: {', '.join(datasets) or 'none'}.")
    if "split" not in value:
        raise CatalogError(f"{path}: the index build of dataset {value['dataset']!r} lacks 'split'.")
    return BuildSpec(value["dataset"], value["split"], value.get("config", ""), value.get("sample"))
