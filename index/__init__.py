"""FAISS indexes with their metadata and a JSON sidecar."""
from index.sidecar import IndexInfo
from index.store import (
    IndexLoadError,
    IndexMismatchError,
    LoadedIndex,
    build_index,
    choose_factory,
    load_index,
    measure_recall,
    save_index,
    set_search_threads,
)

__all__ = [
    "IndexInfo", "IndexLoadError", "IndexMismatchError", "LoadedIndex", "build_index", "choose_factory",
    "load_index", "measure_recall", "save_index", "set_search_threads",
]
