"""FAISS indexes with their metadata and a JSON sidecar: build, save atomically, load checked, search."""
from index.sidecar import FORMAT_VERSION, IndexInfo, utc_now
from index.store import (
    IndexLoadError,
    IndexMismatchError,
    LoadedIndex,
    build_index,
    check_vectors,
    choose_factory,
    load_index,
    measure_recall,
    save_index,
    set_search_params,
    set_search_threads,
    tune_search_params,
)

__all__ = [
    "FORMAT_VERSION", "IndexInfo", "IndexLoadError", "IndexMismatchError", "LoadedIndex", "build_index",
    "check_vectors", "choose_factory", "load_index", "measure_recall", "save_index", "set_search_params",
    "set_search_threads", "tune_search_params", "utc_now",
]
