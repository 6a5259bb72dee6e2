"""What every tab shares: turning our errors into messages a visitor understands, and worked answers on arrival."""
from __future__ import annotations

import functools
import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import gradio as gr

from core.catalog import CatalogError
from core.inputs import InputError
from core.services import AssetError
from core.warmup import WarmStart

log = logging.getLogger(__name__)
VISITOR_ERRORS = (InputError, CatalogError, AssetError)


def visitor_errors(fn):
    """Raise `gr.Error` with our message for bad input or a broken asset; hide internals of anything else."""

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        try:
            return fn(*args, **kwargs)
        except gr.Error:
            raise
        except VISITOR_ERRORS as e:
            raise gr.Error(str(e), print_exception=False) from None
        except Exception:
            log.exception("unexpected error in %s", fn.__name__)
            raise gr.Error("Something went wrong on our side; please try again.", print_exception=False) from None

    return wrapper


def upload_dirs() -> list[Path]:
    """The only folders an uploaded file may be read from: gradio's upload cache."""
    from gradio.utils import get_upload_folder

    return [Path(get_upload_folder()).resolve()]


def notices_markdown(notices: list[str]) -> str:
    return "\n".join(f"ℹ️ {n}" for n in notices)


@dataclass(frozen=True)
class Arrival:
    """A tab's worked answer: what `outputs` show as soon as a page loads, computed once by warm-up step `step`.
    With `real`, the tab's default is a model that must first download (or a collection the app must build): the
    answer of `step` (the bundled world's, saying what is loading) is shown until `ready()`, then `real()`'s."""

    step: str
    outputs: list[gr.components.Component]
    models: list[str]  # the tab's default models, which the warm start prepares for `task`
    task: str = ""  # "search", "categorise", "caption": what the tab does with them
    real: Callable[[], list] | None = None  # the rendered answer on the real default, computed once when ready
    ready: Callable[[], bool] | None = None


def rendered(outputs: Sequence[gr.components.Component], values: Sequence[Any]) -> list:
    """What Gradio sends to the browser for `values` (images written to its cache once), ready to serve as is
    (`postprocess=False`) to every visitor: nothing is recomputed or re-encoded per page load."""
    payloads = []
    for component, value in zip(outputs, values, strict=True):
        payload = component.postprocess(value)
        payloads.append(payload.model_dump() if hasattr(payload, "model_dump") else payload)
    return payloads


def worked_answer(warm: WarmStart, step: str, outputs: Sequence[gr.components.Component],
                  compute: Callable[[], Sequence[Any]], models: Sequence[str | None] = (), task: str = "",
                  real: Callable[[], Sequence[Any]] | None = None, ready: Callable[[], bool] | None = None,
                  lane: str = "main") -> Arrival:
    """Register the tab's worked answer (`compute()` gives one value per output) as a warm-up step (in `lane`: see
    `WarmStart`); with `real` and `ready`, the answer on the real default replaces it once `ready()` (computed
    once, by the first page load that finds it ready)."""
    warm.add(step, lambda: rendered(outputs, compute()), lane=lane)
    once = None
    if real is not None:
        from core.services import BoundedCache

        cache = BoundedCache(1)
        once = lambda: cache.get(step, lambda: rendered(outputs, real()))  # noqa: E731
    return Arrival(step, list(outputs), list(dict.fromkeys(m for m in models if m)), task, once, ready)


def arrival_handler(warm: WarmStart, arrival: Arrival) -> Callable[[], list]:
    """The page-load handler: the cached answer (waiting for the warm start if it is still computing it)."""

    def on_load() -> list:
        if arrival.real is not None and arrival.ready is not None and arrival.ready():
            try:
                return arrival.real()
            except Exception:  # noqa: BLE001 - the bundled answer below still shows the tab working
                log.exception("no worked answer on the real default for %s", arrival.step)
        try:
            return warm.get(arrival.step)
        except Exception:  # noqa: BLE001 - no worked answer is better than an error on arrival; the tab still works
            log.exception("no worked answer for %s", arrival.step)
            return [gr.skip() for _ in arrival.outputs]

    return on_load


# Components a visitor edits: a worked answer that lands after the visitor has changed one of them does not land
EDITABLE = (gr.Textbox, gr.Image, gr.Dropdown, gr.Radio)


def _untouched(component, current) -> bool:
    """Whether `current` (the component's value now, as its event input) is still the value it was built with."""
    initial = component.value
    if isinstance(component, gr.Image):  # a file: the page's copy of the initial picture keeps its file name
        name = (initial.get("path") if isinstance(initial, dict) else initial) or None
        return (Path(current).name if current else None) == (Path(name).name if name else None)
    return (current or None) == (initial or None)


def wire_arrival(demo: gr.Blocks, warm: WarmStart, arrival: Arrival) -> None:
    """Show a tab's worked answer on page load, unless the visitor has already started using the tab.

    The answer is computed into a per-page state; a follow-up event, which reads the tab's editable components as
    they are once the answer is ready (a query, an upload, a model or catalogue picked), puts it on screen only if
    none of them has changed since the page was built. Otherwise a query typed while the answer was computed would
    be replaced by the example's, and the visitor's own search run on it."""
    editable = [c for c in arrival.outputs if isinstance(c, EDITABLE)]
    answer = gr.State(None)
    n = len(arrival.outputs)

    def land(rendered, *current):
        if rendered is None or not all(_untouched(c, v) for c, v in zip(editable, current)):
            return [gr.skip()] * n
        return rendered

    demo.load(arrival_handler(warm, arrival), None, answer, postprocess=False, concurrency_limit=None,
              show_progress="hidden", api_visibility="private").then(
        land, [answer, *editable], arrival.outputs, postprocess=False, queue=False,  # instant: no queue round trip
        api_visibility="private")


def example_files(folder) -> tuple[list[str], list[str]]:
    """An examples folder's pictures and their labels, in the order its labels.json lists them (pictures it
    does not list follow, sorted, labelled by their file name)."""
    from pathlib import Path

    from demo_world.examples import read_labels

    folder = Path(folder)
    labels = read_labels(folder)
    present = {p.name: p for p in folder.glob("*.png")}
    names = [n for n in labels if n in present] + sorted(n for n in present if n not in labels)
    return [str(present[n]) for n in names], [labels.get(n, Path(n).stem) for n in names]

