"""Indexes the app builds itself: a catalog index with a `build` entry and no published index yet.

One background thread builds them one at a time (two CPUs cannot do two at once any faster), with the one
`core.indexing` path (the pipelines' too), into `$VLSTUDIO_INDEX_DIR/<model>--<collection>` (default: beside the Hub cache),
atomically: a restart in the middle finds no index there and builds it again, never half of one. While a build
runs, every other collection keeps working, and `status_lines()` says how far it is for the Search tab.
"""
from __future__ import annotations

import logging
import os
import re
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

from core.catalog import Catalog, IndexSpec

log = logging.getLogger(__name__)
INDEX_DIR_ENV = "VLSTUDIO_INDEX_DIR"


def default_index_dir() -> Path:
    if value := os.environ.get(INDEX_DIR_ENV):
        return Path(value)
    from huggingface_hub import constants

    return Path(constants.HF_HOME) / "vlstudio-indexes"


@dataclass
class BuildStatus:
    spec: IndexSpec
    state: str = "queued"  # queued, running, done, failed
    done: int = 0  # images embedded so far
    total: int = 0  # images in the collection (0 until the dataset is read)
    error: str = ""
    seconds: float = 0.0
    started: float = field(default_factory=time.monotonic)

    def message(self) -> str:
        what = f"the {self.spec.collection} index for {self.spec.model}"
        if self.state == "queued":
            return f"Queued: {what} will be built as soon as the app can (one build at a time)."
        if self.state == "running":
            return (f"Building {what}: {self.done:,} / {self.total:,} images." if self.total
                    else f"Building {what}: downloading the dataset.")
        if self.state == "failed":
            return f"Building {what} failed: {self.error}"
        return f"Built {what} in {self.seconds:.0f} s."


class IndexBuilds:
    """The background builds of one app; `services` gives the encoders (the same cached ones visitors use)."""

    def __init__(self, services, folder: Path | None = None):
        self.services = services
        self.folder = Path(folder) if folder else default_index_dir()
        self._status: dict[tuple[str, str], BuildStatus] = {}
        self._queue: list[IndexSpec] = []
        self._lock = threading.Lock()
        self._wake = threading.Condition(self._lock)
        self._worker: threading.Thread | None = None

    @property
    def catalog(self) -> Catalog:
        return self.services.catalog

    def folder_for(self, spec: IndexSpec) -> Path:
        slug = re.sub(r"[^A-Za-z0-9._-]+", "-", f"{spec.model}--{spec.collection}").strip("-")
        return self.folder / slug

    def built(self, spec: IndexSpec) -> Path | None:
        """The folder of a finished build of `spec` (a save is atomic: index.json there means it is whole)."""
        from core.atomic import recover

        path = self.folder_for(spec)
        if not path.parent.is_dir():
            return None
        recover(path)
        return path if (path / "index.json").is_file() else None

    def status(self, spec: IndexSpec) -> BuildStatus | None:
        with self._lock:
            return self._status.get((spec.model, spec.collection))

    def request(self, spec: IndexSpec) -> BuildStatus:
        """Queue a build of `spec` unless one is queued or running (a failed one is tried again)."""
        key = (spec.model, spec.collection)
        with self._lock:
            current = self._status.get(key)
            if current and current.state in ("queued", "running"):
                return current
            status = self._status[key] = BuildStatus(spec)
            self._queue.append(spec)
            if self._worker is None or not self._worker.is_alive():
                self._worker = threading.Thread(target=self._run, name="index-builds", daemon=True)
                self._worker.start()
            self._wake.notify()
            return status

    def status_lines(self) -> list[str]:
        """What visitors should see: every build queued, running or failed (finished ones are silent)."""
        with self._lock:
            return [s.message() for s in self._status.values() if s.state != "done"]

    def wait(self, timeout: float | None = None) -> bool:
        """Block until no build is queued or running (tests, the rehearsal); False on timeout."""
        end = None if timeout is None else time.monotonic() + timeout
        while True:
            with self._lock:
                if not any(s.state in ("queued", "running") for s in self._status.values()):
                    return True
            if end is not None and time.monotonic() > end:
                return False
            time.sleep(0.2)

    # ------------------------------------------------------------------------------------------------ worker
    def _run(self) -> None:
        from core.evaluations import lower_priority

        lower_priority()  # visitors' requests first: a build only takes the CPU time they leave
        while True:
            with self._lock:
                if not self._queue:
                    self._worker = None
                    return
                spec = self._queue.pop(0)
                status = self._status[(spec.model, spec.collection)]
                status.state, status.started = "running", time.monotonic()
            try:
                self._build(spec, status)
                outcome = "done", ""
            except Exception as e:  # reported to visitors; the next request tries again
                log.exception("building the %s index for %s failed", spec.collection, spec.model)
                outcome = "failed", str(e)
            with self._lock:
                status.state, status.error = outcome
                status.seconds = time.monotonic() - status.started

    def _build(self, spec: IndexSpec, status: BuildStatus) -> None:
        from core.layouts import load_split
        from core.indexing import embed_rows, index_from_embeddings, metadata

        build = spec.build
        dataset = self.catalog.datasets[build.dataset]
        encoder = self.services.encoder(spec.model)
        data = load_split(dataset, build.config, build.split, sample=build.sample)
        status.total = len(data)
        log.info("building the %s index for %s: %d images", spec.collection, spec.model, len(data))

        def progress(done: int) -> None:
            status.done = done

        done = embed_rows(encoder, data, batch_size=32, progress=progress)
        if done.skipped:  # an unreadable picture is left out of the collection, never fatal
            log.warning("the %s index leaves out %d unreadable images: %s", spec.collection, len(done.skipped),
                        ", ".join(i for i, _ in done.skipped[:10]))
        index_from_embeddings(done.xb, metadata(data.select(done.rows)), self.folder_for(spec), model=spec.model,
                              model_revision=encoder.revision, dataset_source=dataset.source,
                              config=build.config or dataset.layout, split=build.split,
                              extra={"build_seconds": round(time.monotonic() - status.started, 1),
                                     "built_by": "app", "sample": build.sample,
                                     "skipped": [i for i, _ in done.skipped]})
