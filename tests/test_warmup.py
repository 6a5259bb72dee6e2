"""The warm start: steps computed once, requests during warm-up wait for the load in progress (never load twice),
Hub models marked `warm = true` downloaded at start behind a visible line. Behaviour, not timings."""
import threading
from collections import Counter
from pathlib import Path

import pytest

from core.catalog import load_catalog
from core.services import DEFAULT_MAX_MODELS, Services
from core.warmup import WarmStart, add_model_steps, warm_models

ROOT = Path(__file__).resolve().parent.parent


def test_steps_run_once_in_order_and_get_waits_for_the_running_one():
    warm = WarmStart()
    release, started, calls = threading.Event(), threading.Event(), Counter()

    def slow():
        calls["slow"] += 1
        started.set()
        release.wait(10)
        return "answer"

    warm.add("slow", slow, notice="busy with something visitors should know")
    warm.add("after", lambda: calls.update(["after"]) or 42)
    warm.start()
    assert started.wait(10)
    assert warm.running() and warm.notice() == "busy with something visitors should know"
    got = []
    waiter = threading.Thread(target=lambda: got.append(warm.get("slow")))
    waiter.start()
    waiter.join(0.3)
    assert waiter.is_alive()  # waits for the step in progress instead of computing it again
    release.set()
    waiter.join(10)
    assert warm.wait(10) and got == ["answer"] and warm.get("after") == 42
    assert calls == {"slow": 1, "after": 1} and not warm.running() and warm.notice() == ""
    assert list(warm.timings) == ["slow", "after"]


def test_lanes_run_side_by_side_and_the_warm_start_ends_with_the_last_lane():
    """A step of one lane waits for a step of another lane: run one after the other (lanes ignored), this would
    never finish. The warm start is done only when both lanes are; each lane keeps its own order."""
    warm, order = WarmStart(), []
    plotted = threading.Event()
    release = threading.Event()

    def model():
        assert plotted.wait(10), "the plots lane did not run beside this one"
        order.append("model")

    def plots():
        plotted.set()
        release.wait(10)
        order.append("plots")

    warm.add("model", model)
    warm.add("after model", lambda: order.append("after model"))
    warm.add("plots", plots, notice="drawing", lane="plots")
    warm.start()
    assert plotted.wait(10)
    for _ in range(100):
        if "after model" in order:
            break
        threading.Event().wait(0.05)
    assert order == ["model", "after model"] and warm.running() and warm.notice() == "drawing"
    release.set()
    assert warm.wait(10) and order[-1] == "plots" and not warm.errors
    assert set(warm.timings) == {"model", "after model", "plots"} and warm.notice() == ""


def test_a_failed_step_does_not_stop_the_others_and_is_retried_on_demand():
    warm, attempts = WarmStart(), Counter()

    def flaky():
        attempts["flaky"] += 1
        if attempts["flaky"] == 1:
            raise OSError("Hub unreachable")
        return "ok"

    warm.add("flaky", flaky)
    warm.add("next", lambda: "fine")
    warm.start()
    assert warm.wait(10)
    assert "Hub unreachable" in warm.errors["flaky"] and warm.get("next") == "fine"
    assert warm.get("flaky") == "ok" and attempts["flaky"] == 2
    with pytest.raises(ValueError, match="already registered"):
        warm.add("next", lambda: None)


def test_the_catalog_marks_models_to_keep_warm_and_the_cache_makes_room(tmp_path):
    cat = tmp_path / "c.toml"
    cat.write_text(f'include = ["{ROOT / "catalog.toml"}"]\n'
                   f'[models.extra]\nfamily = "open_clip"\nsource = "{ROOT / "assets/models/demo-clip"}"\nwarm = true\n')
    catalog = load_catalog(cat)
    assert catalog.model("extra").warm and not catalog.model("demo-clip").warm
    services = Services(catalog)
    assert warm_models(services) == ["extra"]
    assert services.max_models == DEFAULT_MAX_MODELS + 1  # the tabs' defaults and the warm model all fit
    assert Services(load_catalog()).max_models == DEFAULT_MAX_MODELS
    assert Services(catalog, max_models=2).max_models == 2
    hub = load_catalog(ROOT / "catalog.hub.toml")
    marked = [m for m in hub.models if hub.model(m).warm]
    assert marked and all(hub.model(m).source.startswith("hf-hub:") for m in marked)


def _counting_loader(monkeypatch, gate: threading.Event | None = None, gated: str = "") -> Counter:
    """Patch the one model factory: count loads per model name; hold `gated` until `gate` is set."""
    import models.registry

    real, loads = models.registry.create_model, Counter()

    def counting(family, folder, name):
        loads[name] += 1
        if gate is not None and name == gated:
            assert gate.wait(60)
        return real(family, folder, name)

    monkeypatch.setattr(models.registry, "create_model", counting)
    return loads


def test_concurrent_first_requests_during_warm_up_load_each_model_once(monkeypatch):
    from tabs.caption import EXAMPLES_DIR, run_caption
    from tabs.search import run_search

    gate = threading.Event()
    loads = _counting_loader(monkeypatch, gate, gated="demo-clip")
    services, warm = Services(load_catalog()), WarmStart()
    for name in ("demo-clip", "demo-captioner"):
        add_model_steps(warm, services, name)
    warm.start()
    scene = str(sorted(EXAMPLES_DIR.glob("*.png"))[0])
    results, errors = [], []

    def request(fn, *args):
        try:
            results.append(fn(services, *args))
        except Exception as e:  # noqa: BLE001 - reported below
            errors.append(e)

    threads = [threading.Thread(target=request, args=(run_search, "a dog on a blue background", None, 5, "demo-clip", ""))
               for _ in range(4)]
    threads += [threading.Thread(target=request, args=(run_caption, scene, "demo-captioner", 1)) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(0.5)
    assert all(t.is_alive() for t in threads[:4])  # the searches wait for demo-clip, still loading
    gate.set()
    for t in threads:
        t.join(60)
    assert warm.wait(60) and not errors and len(results) == 6
    assert loads == {"demo-clip": 1, "demo-captioner": 1}
    searches = [r for r in results if hasattr(r, "hits")]
    assert len(searches) == 4 and len({tuple(h.id for h in r.hits) for r in searches}) == 1


@pytest.mark.slow
def test_the_server_answers_during_warm_up_and_first_requests_wait_for_the_load(monkeypatch):
    """The real app: while the warm start is loading the search model, the server answers; /search requests sent
    meanwhile wait for that load and get their answer; the model is loaded once."""
    from gradio_client import Client

    from app import build_demo, launch

    gate = threading.Event()
    loads = _counting_loader(monkeypatch, gate, gated="dual-minilm-cnn")  # the Search tab's default
    warm = WarmStart()
    demo = build_demo(load_catalog(), warm=warm)
    launch(demo, warm, server_name="127.0.0.1")
    try:
        client = Client(demo.local_url, verbose=False)
        assert client.predict("", api_name="/compare")  # answered while the search model is still loading
        jobs = [client.submit("a dog on a blue background", None, 5, "", "", api_name="/search") for _ in range(3)]
        gate.set()
        answers = [job.result(timeout=120) for job in jobs]
        assert all(len(a) == 5 for a in answers) and len({tuple(h["id"] for h in a) for a in answers}) == 1
        assert warm.wait(120) and not warm.errors
        assert loads["dual-minilm-cnn"] == 1 and all(n == 1 for n in loads.values())
    finally:
        demo.close()


def test_a_hub_model_marked_warm_downloads_at_start_behind_a_visible_line(local_hub, tmp_path, monkeypatch):
    sha = local_hub.add_repo("vl-studio/demo-clip", ROOT / "assets/models/demo-clip")
    local_hub.add_repo("vl-studio/index-demo-scenes", ROOT / "assets/indexes/demo-clip--scenes-test-heldout", repo_type="dataset")
    cat = tmp_path / "catalog.toml"
    cat.write_text(
        f'[models.demo-clip]\nfamily = "open_clip"\nsource = "hf-hub:vl-studio/demo-clip@{sha}"\nwarm = true\n'
        'tasks = ["search", "categorise"]\n'
        '[[indexes]]\nmodel = "demo-clip"\ncollection = "scenes"\nsource = "hf-hub:vl-studio/index-demo-scenes"\n'
    )
    gate = threading.Event()
    loads = _counting_loader(monkeypatch, gate, gated="demo-clip")
    services, warm = Services(load_catalog(cat)), WarmStart()
    for name in warm_models(services):
        add_model_steps(warm, services, name)
    warm.start()
    for _ in range(200):  # the download is done and the load is held at the gate
        if loads["demo-clip"]:
            break
        threading.Event().wait(0.05)
    assert "demo-clip" in warm.notice() and "Hugging Face Hub" in warm.notice()
    gate.set()
    assert warm.wait(60) and not warm.errors and warm.notice() == ""
    assert services.loaded_models() == ["demo-clip"] and loads == {"demo-clip": 1}
    assert any(r.startswith("GET /vl-studio/demo-clip/resolve/") for r in local_hub.requests)
    assert any(r.startswith("GET /datasets/vl-studio/index-demo-scenes/resolve/") for r in local_hub.requests)


def test_worked_answers_are_computed_once_and_served_to_every_page_load(monkeypatch):
    """Each tab's page-load handler returns the same rendered answer to every visitor; the search behind the Search
    tab's answer ran once."""
    import tabs.search
    from app import build_demo

    searches = Counter()
    real = tabs.search.search_text
    monkeypatch.setattr(tabs.search, "search_text", lambda *a: searches.update(["text"]) or real(*a))
    warm = WarmStart()
    demo = build_demo(load_catalog(), warm=warm)
    on_load = [f.fn for f in demo.fns.values() if getattr(f.fn, "__name__", "") == "on_load"]
    assert len(on_load) == 4  # Search, Categorise, Caption, Compare
    first, second = [fn() for fn in on_load], [fn() for fn in on_load]
    assert all(a is b for a, b in zip(first, second)) and searches == {"text": 1}
    gallery, notes, last, download, query = first[0]  # the query box shows the worked answer's query
    assert query == tabs.search.EXAMPLE_QUERIES[0] and "search-results.json" in str(download)  # and its results file
    assert len(gallery) == 12 and "cosine similarity" in notes
    assert last["text"] == tabs.search.EXAMPLE_QUERIES[0] and len(last["hits"]) == 12  # the hits can be explained
    assert all(answer and all(v is not None for v in answer) for answer in first)
