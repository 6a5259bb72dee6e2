"""The catalog: which models, indexes and datasets the app shows, each with its source.

`catalog.toml` (the default) names the bundled demo assets, so the app works offline; `catalog.hub.toml`
adds real public models from the Hugging Face Hub. Pick one with `--catalog` or `VLSTUDIO_CATALOG`; on a Hugging Face
Space (`SPACE_ID` is set) the default is `catalog.hub.toml`. Relative folder sources are resolved against the
catalog file's directory. A catalog's `[defaults]` names each tab's default model (and collection or catalogue):
they come first in every list the tabs show, so each tab opens on them.
"""
from __future__ import annotations

import os
import tomllib
from dataclasses import dataclass, field
from pathlib import Path

from core.layouts import DatasetSpec, LayoutError

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_CATALOG = ROOT / "catalog.toml"
SPACE_CATALOG = ROOT / "catalog.hub.toml"  # what a Space serves unless told otherwise
CATALOG_ENV = "VLSTUDIO_CATALOG"
SPACE_ENV = "SPACE_ID"  # set by Hugging Face Spaces in every Space's environment


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


DEMO_CATALOGUE = "demo products"  # the demo world's seven categories (models.zero_shot), in every catalog


@dataclass(frozen=True)
class CatalogueSpec:
    """Categories for zero-shot categorisation: each class with its descriptive prompts, the templates of the bare
    style, and the collection whose pictures carry these labels (in the column `field` of its dataset; `category`
    is the corpus schema's), on which the app measures it."""

    name: str
    descriptions: dict[str, tuple[str, ...]]  # class -> descriptive prompts
    templates: tuple[str, ...]  # bare style: "{}" becomes the class name
    collection: str = ""
    field: str = "category"

    @property
    def classes(self) -> list[str]:
        return list(self.descriptions)

    def prompts(self, style: str) -> dict[str, list[str]]:
        """Class -> prompts: "descriptive" (the descriptions; the bare templates for a class without one) or
        "bare" (the templates around the class name)."""
        if style not in ("descriptive", "bare"):
            raise ValueError(f"unknown prompt style {style!r}; known: descriptive, bare")
        bare = {c: [t.format(c) for t in self.templates] for c in self.descriptions}
        return bare if style == "bare" else {c: list(d) or bare[c] for c, d in self.descriptions.items()}


def demo_catalogue() -> CatalogueSpec:
    from models.zero_shot import BARE_TEMPLATES, DESCRIPTIONS, catalogue_classes

    return CatalogueSpec(DEMO_CATALOGUE, {c: tuple(DESCRIPTIONS[c]) for c in catalogue_classes()},
                         tuple(BARE_TEMPLATES))  # measured offline (`evaluation.evaluate --config products`)


@dataclass(frozen=True)
class Catalog:
    models: dict[str, ModelSpec]
    indexes: tuple[IndexSpec, ...]
    path: Path | None = None
    datasets: dict[str, DatasetSpec] = field(default_factory=dict)
    defaults: dict[str, dict] = field(default_factory=dict)  # task -> {"model", "collection" | "catalogue"}
    extra_catalogues: dict[str, CatalogueSpec] = field(default_factory=dict)  # beside the demo world's
    evaluations_source: str | None = None  # a results repo the app reads before measuring (core.evaluations)

    def catalogue_names(self) -> list[str]:
        """The catalogues Categorise offers, the default first, then the demo world's."""
        names = [DEMO_CATALOGUE] + [n for n in self.extra_catalogues if n != DEMO_CATALOGUE]
        first = self.defaults.get("categorise", {}).get("catalogue")
        return [first] + [n for n in names if n != first] if first in names else names

    def catalogue(self, name: str | None = None) -> CatalogueSpec:
        """A catalogue by name (None or empty: the default one)."""
        name = name or self.catalogue_names()[0]
        if name in self.extra_catalogues:
            return self.extra_catalogues[name]
        if name == DEMO_CATALOGUE:
            return demo_catalogue()
        raise CatalogError(f"Unknown catalogue {name!r}. Known catalogues: {', '.join(self.catalogue_names())}.")

    def model(self, name: str) -> ModelSpec:
        if name not in self.models:
            raise CatalogError(f"Unknown model {name!r}. Known models: {', '.join(self.models) or 'none'}.")
        return self.models[name]

    def search_models(self) -> list[str]:
        """Models that have at least one index, in catalog order."""
        with_index = {i.model for i in self.indexes}
        return self._default_first("search", [m for m in self.models if m in with_index])

    def models_for(self, task: str) -> list[str]:
        """Models whose catalog entry lists `task` (search, categorise, caption), the task's default first."""
        return self._default_first(task, [m for m, spec in self.models.items() if task in spec.tasks])

    def picker_models(self, task: str) -> list[str]:
        """What a tab's model picker offers for `task`: the task's models (for search, those with an index) less
        the ones marked `picker = false`, which still answer API calls that name them and keep their Compare rows."""
        names = self.search_models() if task == "search" else self.models_for(task)
        return [m for m in names if self.models[m].picker]

    def collections(self, model: str | None = None) -> list[str]:
        seen = list(dict.fromkeys(i.collection for i in self.indexes if model is None or i.model == model))
        first = self.defaults.get("search", {})
        if first.get("collection") in seen and (model is None or model == first.get("model")):
            seen.remove(first["collection"])
            seen.insert(0, first["collection"])
        return seen

    def bundled(self, task: str) -> str | None:
        """The first model offered for `task` whose files ship with the app (works offline, answers at once)."""
        names = self.picker_models(task)
        return next((m for m in names if not self.models[m].source.startswith("hf-hub:")), None)

    def _default_first(self, task: str, names: list[str]) -> list[str]:
        first = self.defaults.get(task, {}).get("model")
        return [first] + [n for n in names if n != first] if first in names else names

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


def default_catalog_path() -> Path:
    """`$VLSTUDIO_CATALOG`, else `catalog.hub.toml` on a Space (`$SPACE_ID` set), else `catalog.toml`."""
    if value := os.environ.get(CATALOG_ENV):
        return Path(value)
    return SPACE_CATALOG if os.environ.get(SPACE_ENV) else DEFAULT_CATALOG


def load_catalog(path: Path | str | None = None) -> Catalog:
    """Read a catalog file (the `--catalog` flag, else `default_catalog_path()`)."""
    path = Path(path or default_catalog_path())
    if not path.is_file():
        raise CatalogError(f"Catalog file {path} not found.")
    data = tomllib.loads(path.read_text())
    base = path.resolve().parent
    models: dict[str, ModelSpec] = {}
    indexes: list[IndexSpec] = []
    datasets: dict[str, DatasetSpec] = {}
    defaults: dict[str, dict] = {}
    catalogues: dict[str, CatalogueSpec] = {}
    evaluations_source = None
    for inc in data.get("include", []):  # e.g. the hub catalog includes the demo one
        sub = load_catalog(base / inc)
        models |= sub.models
        indexes += sub.indexes
        datasets |= sub.datasets
        defaults |= sub.defaults
        catalogues |= sub.extra_catalogues
        evaluations_source = sub.evaluations_source or evaluations_source
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
    for name, value in data.get("catalogues", {}).items():
        catalogues[name] = _catalogue(name, value, path)
    defaults |= _defaults(data.get("defaults", {}), models, indexes, path)
    if (wanted := defaults.get("categorise", {}).get("catalogue")) and wanted not in catalogues | {DEMO_CATALOGUE: 0}:
        raise CatalogError(f"{path}: the default catalogue {wanted!r} is not defined under [catalogues].")
    if source := data.get("evaluations", {}).get("source"):
        evaluations_source = _source(source, base)
    return Catalog(models, tuple(indexes), path, datasets, defaults, catalogues, evaluations_source)


def _catalogue(name: str, value: dict, path: Path) -> CatalogueSpec:
    """`[catalogues.<name>]`: `classes` (class -> list of descriptive prompts), `templates`, `collection`, `field`."""
    from models.zero_shot import BARE_TEMPLATES

    classes = value.get("classes")
    if not isinstance(classes, dict) or len(classes) < 2:
        raise CatalogError(f"{path}: catalogue {name!r} needs a [classes] table of at least two classes.")
    templates = tuple(value.get("templates", BARE_TEMPLATES))
    if not templates or not all("{}" in t for t in templates):
        raise CatalogError(f"{path}: catalogue {name!r}: every template must hold {{}} (the class name).")
    descriptions = {str(c): tuple([d] if isinstance(d, str) else d) for c, d in classes.items()}
    return CatalogueSpec(name, descriptions, templates, value.get("collection", ""), value.get("field", "category"))


def _defaults(value: dict, models: dict[str, ModelSpec], indexes: list[IndexSpec], path: Path) -> dict[str, dict]:
    """`[defaults]`: task -> "model" or {model, collection | catalogue}; each checked against the catalog."""
    out = {}
    for task, entry in value.items():
        entry = {"model": entry} if isinstance(entry, str) else dict(entry)
        model = entry.get("model")
        if model not in models or task not in models[model].tasks + (("search",) if task == "search" else ()):
            raise CatalogError(f"{path}: the default {task} model {model!r} is not a catalog model for {task}.")
        if "collection" in entry and not any(i.model == model and i.collection == entry["collection"] for i in indexes):
            raise CatalogError(f"{path}: the default collection {entry['collection']!r} has no index for {model!r}.")
        out[task] = entry
    return out


def _build_spec(value: dict | None, datasets: dict[str, DatasetSpec], path: Path) -> BuildSpec | None:
    if value is None:
        return None
    if value.get("dataset") not in datasets:
        raise CatalogError(f"{path}: an index build names unknown dataset {value.get('dataset')!r}; "
                           f"known: {', '.join(datasets) or 'none'}.")
    if "split" not in value:
        raise CatalogError(f"{path}: the index build of dataset {value['dataset']!r} lacks 'split'.")
    return BuildSpec(value["dataset"], value["split"], value.get("config", ""), value.get("sample"))
