"""Loaded models and indexes, shared by every tab and visitor: lazy, once per process, bounded.

Nothing loads at import; the first request for a model loads it (or the warm start, `core.warmup`, right after
the server is up), later ones reuse it, and the least recently used model is evicted when more than
`max_models` are loaded (memory stays bounded while visitors switch models). Loading failures become `AssetError`s that name the asset and the fix.
"""
from __future__ import annotations

import logging
import os
import threading
from collections import OrderedDict
from collections.abc import Callable, Hashable
from typing import Any

from core.catalog import Catalog
from core.sources import SourceError, SourceNotFound, resolve

log = logging.getLogger(__name__)
MAX_MODELS_ENV = "VLSTUDIO_MAX_MODELS"
DEFAULT_MAX_MODELS = 3


class AssetError(RuntimeError):
    """A model or index could not be loaded; the message names it and says how to fix it."""


class IndexNotReady(AssetError):
    """The index is being built in the background; the message says how far the build is."""


class BoundedCache:
    """A thread-safe LRU cache whose values are built once even when requested concurrently."""

    def __init__(self, maxsize: int, log_evictions: bool = True):
        self.maxsize = maxsize
        self.log_evictions = log_evictions  # off where keys are visitors' texts
        self._items: OrderedDict[Hashable, Any] = OrderedDict()
        self._lock = threading.Lock()
        self._key_locks: dict[Hashable, threading.Lock] = {}

    def get(self, key: Hashable, build: Callable[[], Any]) -> Any:
        with self._lock:
            if key in self._items:
                self._items.move_to_end(key)
                return self._items[key]
            key_lock = self._key_locks.setdefault(key, threading.Lock())
        with key_lock:  # one build per key; other keys proceed
            with self._lock:
                if key in self._items:
                    return self._items[key]
            value = build()
            with self._lock:
                self._items[key] = value
                while len(self._items) > self.maxsize:
                    evicted, _ = self._items.popitem(last=False)
                    if self.log_evictions:
                        log.info("evicted %s from the cache", evicted)
                self._key_locks.pop(key, None)
            return value

    def __len__(self) -> int:
        with self._lock:
            return len(self._items)

    def keys(self) -> list[Hashable]:
        with self._lock:
            return list(self._items)


class Services:
    """What the tabs call: the catalog plus cached encoders and indexes."""

    def __init__(self, catalog: Catalog, max_models: int | None = None, max_indexes: int = 6, index_dir=None):
        from core.index_builds import IndexBuilds

        self.catalog = catalog
        if max_models is None:  # $VLSTUDIO_MAX_MODELS (a Space holding every Hub model: 8), else room for
            # visitors switching models plus the models the catalog keeps warm
            env = os.environ.get(MAX_MODELS_ENV)
            max_models = int(env) if env else DEFAULT_MAX_MODELS + sum(spec.warm for spec in catalog.models.values())
        self.max_models = max_models
        self._encoders = BoundedCache(max_models)
        self._indexes = BoundedCache(max_indexes)
        self.builds = IndexBuilds(self, index_dir)  # indexes the app builds itself (catalog `build` entries)
        self._evaluations = None

    @property
    def evaluations(self):
        """The app's own measurements of its Hub models (`core.evaluations`), started by `app.launch`."""
        if self._evaluations is None:
            from core.evaluations import Evaluations

            self._evaluations = Evaluations(self, published=self.catalog.evaluations_source)
        return self._evaluations

    def encoder(self, name: str):
        """The catalog model `name`, loaded once: an encoder, a captioner or a classifier, by its family."""
        spec = self.catalog.model(name)
        return self._encoders.get(name, lambda: self._load_encoder(spec))

    model = encoder

    def index(self, model: str, collection: str):
        spec = self.catalog.index(model, collection)
        return self._indexes.get((model, collection), lambda: self._load_index(spec))

    def loaded_models(self) -> list[str]:
        return [str(k) for k in self._encoders.keys()]

    def ready(self, model: str, collection: str | None = None) -> bool:
        """Whether `model` (and its index of `collection`) answers now, with no download or build to wait for."""
        if model not in self._encoders.keys():
            return False
        if collection is None or (model, collection) in self._indexes.keys():
            return True
        spec = self.catalog.index(model, collection)
        return bool(spec.build and self.builds.built(spec))

    def _load_encoder(self, spec):
        from models.registry import create_model, family_files

        try:
            folder = resolve(spec.source, repo_type="model", allow_patterns=family_files(spec.family))
            return create_model(spec.family, folder, spec.name, **spec.options())
        except ImportError as e:  # a library the family needs is not installed (e.g. sentencepiece for SigLIP)
            missing = getattr(e, "name", None) or str(e)
            raise AssetError(
                f"Model {spec.name!r} needs a Python package that is not installed ({missing}): "
                f"run `pip install -r requirements.txt` and restart the app."
            ) from e
        except (SourceError, OSError, ValueError, RuntimeError) as e:
            raise AssetError(f"Model {spec.name!r} could not be loaded from {spec.source}: {e}") from e
        except Exception as e:  # a library failing in a way of its own: still name the model, never a bare 500
            log.exception("loading %s failed", spec.name)
            raise AssetError(f"Model {spec.name!r} could not be loaded from {spec.source} "
                             f"({e.__class__.__name__}: {e}); check that its files match its family {spec.family!r}.") from e

    def _index_folder(self, spec):
        """Where the index is: its source, or, for an index the app builds itself, a finished build; a missing
        one is queued for building and IndexNotReady says how far that is."""
        if spec.build is None:
            return resolve(spec.source, repo_type="dataset")
        if built := self.builds.built(spec):
            return built
        status = self.builds.status(spec)
        if status is None or status.state == "failed":  # not asked yet, or worth another try
            try:
                return resolve(spec.source, repo_type="dataset")  # published by an earlier build
            except SourceNotFound:
                log.info("%s is not published yet: building the %r index", spec.source, spec.collection)
            status = self.builds.request(spec)
        elif status.state == "done":  # built, then removed from disk: build again
            status = self.builds.request(spec)
        raise IndexNotReady(status.message() + " Other collections can be searched meanwhile.")

    def _load_index(self, spec):
        from index import load_index

        encoder = self.encoder(spec.model)
        try:
            folder = self._index_folder(spec)
            return load_index(folder, expect_model=spec.model, expect_dim=encoder.dim, expect_revision=encoder.revision)
        except IndexNotReady:
            raise
        except (SourceError, OSError, ValueError, RuntimeError) as e:
            raise AssetError(
                f"The {spec.collection!r} index for model {spec.model!r} could not be loaded from {spec.source}: {e}"
            ) from e
