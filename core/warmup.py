"""The warm start: what the first visitor needs is loaded in a background thread right after the server is up.

A `WarmStart` is a list of named steps (load a model, its indexes and class embeddings; compute a tab's worked
answer; draw the Compare plots), run in order by one thread per lane: steps that need none of each other's
results go in separate lanes and run side by side (the Compare plots are matplotlib, mostly holding the GIL,
while the models' steps are mostly torch, which releases it). A step's value is computed once per process:
`get(name)` returns it, waiting while the warm-up thread is computing it, or computing it itself when the
warm-up has not reached it yet (then the thread finds it done). Models and indexes go through the same bounded
caches as every request (`core.services`), so a request that needs a model still loading waits for that load
and never loads it twice.

Steps may carry a notice ("Downloading X from the Hugging Face Hub"), shown to visitors while the step runs.
"""
from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Collection
from dataclasses import dataclass
from typing import Any

from core.services import BoundedCache, Services

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Step:
    name: str
    build: Callable[[], Any]
    notice: str | None = None  # shown to visitors while this step runs (e.g. a Hub download)
    lane: str = "main"  # steps of one lane run in order, lanes side by side


class WarmStart:
    """Named steps computed once per process, in order by a background thread per lane, or earlier on demand."""

    def __init__(self) -> None:
        self._steps: dict[str, Step] = {}
        self._values = BoundedCache(maxsize=1 << 16)  # never evicts: one value per step
        self._lock = threading.Lock()
        self._running: dict[str, Step] = {}  # lane -> its step running now
        self._thread: threading.Thread | None = None
        self.done = threading.Event()
        self.timings: dict[str, float] = {}  # step -> seconds, as measured by the warm-up thread
        self.errors: dict[str, str] = {}  # step -> what went wrong (the step is retried on demand)

    def add(self, name: str, build: Callable[[], Any], notice: str | None = None, lane: str = "main") -> None:
        """Register a step; the steps of a lane run in the order they were added."""
        if name in self._steps:
            raise ValueError(f"warm-up step {name!r} is already registered")
        self._steps[name] = Step(name, build, notice, lane)

    def steps(self) -> list[str]:
        return list(self._steps)

    def get(self, name: str) -> Any:
        """The step's value, computed once; waits if the warm-up thread is computing it. Errors propagate."""
        return self._values.get(name, self._steps[name].build)

    def start(self) -> threading.Thread:
        """Run every step in daemon threads, one per lane (once; later calls return the same thread, which
        finishes once every lane has)."""
        with self._lock:
            if self._thread is None:
                self._thread = threading.Thread(target=self._run, name="warm-start", daemon=True)
                self._thread.start()
        return self._thread

    def running(self) -> bool:
        return self._thread is not None and not self.done.is_set()

    def wait(self, timeout: float | None = None) -> bool:
        return self.done.wait(timeout)

    def notice(self) -> str:
        """What visitors should know about the step running now (empty when nothing to say)."""
        if self.done.is_set():
            return ""
        notices = [step.notice for step in list(self._running.values()) if step.notice]
        return notices[0] if notices else ""

    def _run(self) -> None:
        t0 = time.perf_counter()
        lanes: dict[str, list[Step]] = {}
        for step in self._steps.values():
            lanes.setdefault(step.lane, []).append(step)
        others = [threading.Thread(target=self._run_lane, args=(lane, steps), name=f"warm-start-{lane}", daemon=True)
                  for lane, steps in list(lanes.items())[1:]]
        for thread in others:
            thread.start()
        if lanes:
            first, steps = next(iter(lanes.items()))
            self._run_lane(first, steps)
        for thread in others:
            thread.join()
        self.done.set()
        log.info("warm start done in %.1f s (%d steps, %d failed)", time.perf_counter() - t0, len(self._steps),
                 len(self.errors))

    def _run_lane(self, lane: str, steps: list[Step]) -> None:
        for step in steps:
            self._running[lane] = step
            t = time.perf_counter()
            try:
                self.get(step.name)
            except Exception as e:  # noqa: BLE001 - a failed step must not stop the others; visitors retry it
                self.errors[step.name] = f"{e.__class__.__name__}: {e}"
                log.warning("warm start: %s failed: %s", step.name, e)
            self.timings[step.name] = time.perf_counter() - t
            log.info("warm start: %s (%.2f s)", step.name, self.timings[step.name])
        self._running.pop(lane, None)


def import_before_serving() -> list[str]:
    """Import now, in the calling thread, what requests and the warm start would otherwise import lazily, before the
    server takes requests. Python's import lock makes a second thread wait for a module another thread is
    importing, but code that looks a module up in `sys.modules` sees it half-initialised: Gradio wraps every
    request in `matplotlib.use(...)`, which calls `sys.modules["matplotlib.pyplot"].switch_backend` (an
    AttributeError while the warm-start thread is still importing pyplot for the Compare plots). Also here:
    Pillow's format plugins (a registry filled on first use) and every model family's libraries (open_clip's
    model-config registry, transformers' lazy classes, sentence-transformers, timm). Returns what it imported."""
    import importlib

    from PIL import Image

    from models.registry import import_family_libraries

    done = []
    for module in ("matplotlib.pyplot", "faiss", "index"):
        importlib.import_module(module)
        done.append(module)
    Image.init()  # every format plugin registered (Image.open otherwise registers them on first use)
    return done + ["PIL plugins"] + import_family_libraries()


def add_model_steps(warm: WarmStart, services: Services, name: str, tasks: Collection[str] | None = None) -> None:
    """Steps that load catalog model `name` and what `tasks` (default: all of the model's) need of it: for search
    every index built with it, for zero-shot categorisation its class embeddings of the catalogue's categories in
    both prompt styles. A Hub model's steps carry a visible download notice."""
    from core.categorise import class_embeddings
    from models.zero_shot import catalogue_classes

    spec = services.catalog.model(name)
    tasks = set(spec.tasks if tasks is None else tasks) & set(spec.tasks)
    notice = (f"⏳ **Warm start**: downloading and loading **{name}** from the Hugging Face Hub; it answers as "
              "soon as it is ready (the other models already do)." if spec.source.startswith("hf-hub:") else None)
    model_step = f"model {name}"
    warm.add(model_step, lambda: services.encoder(name), notice)

    def loaded_encoder():
        if model_step in warm.errors:  # do not retry (and wait on the Hub again) for each index and embedding
            raise RuntimeError(f"skipped: {name} did not load")
        return services.encoder(name)

    def index(collection: str):
        loaded_encoder()
        return services.index(name, collection)

    if "search" in tasks:
        for collection in services.catalog.collections(name):
            warm.add(f"index {name} / {collection}", lambda c=collection: index(c), notice)
    if "categorise" in tasks:
        def embeddings():
            encoder = loaded_encoder()
            if hasattr(encoder, "encode_text"):  # zero-shot models only; a supervised classifier has none
                for style in ("descriptive", "bare"):
                    class_embeddings(encoder, catalogue_classes(), style)

        warm.add(f"class embeddings {name}", embeddings, notice)


def warm_models(services: Services) -> list[str]:
    """The catalog models marked `warm = true`, in catalog order."""
    return [name for name, spec in services.catalog.models.items() if spec.warm]
