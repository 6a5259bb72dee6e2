"""Start-up: no request fails while the warm start runs. Modules that requests reach are imported before the server
takes requests, and the one window seen failing (Gradio switching matplotlib's backend around a request while the
warm-start thread is half-way through importing pyplot) is held open on purpose, not hoped for by timing."""
import subprocess
import sys
import textwrap
import threading
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
SCENE = sorted((ROOT / "assets/examples/scenes").glob("*.png"))[0]
PRODUCT = sorted((ROOT / "assets/examples/products").glob("*.png"))[0]

# An import hook that holds one module's import open, in threads of one name, until released: the module is then in
# sys.modules, half-initialised, exactly as another thread sees it in the middle of a real import.
HOLDING_HOOK = '''
import importlib.abc, importlib.machinery, sys, threading
held, release = threading.Event(), threading.Event()

class Holding(importlib.abc.MetaPathFinder):
    def __init__(self, module, thread):
        self.module, self.thread = module, thread

    def find_spec(self, name, path, target=None):
        if name != self.module or threading.current_thread().name != self.thread:
            return None
        spec = importlib.machinery.PathFinder.find_spec(name, path)
        real = spec.loader

        class Loader(importlib.abc.Loader):
            def create_module(self, spec):
                return real.create_module(spec)

            def exec_module(self, module):
                held.set()
                assert release.wait(300)
                real.exec_module(module)

        spec.loader = Loader()
        return spec
'''


def _run(script: str, timeout: float = 600) -> subprocess.CompletedProcess:
    """`script` in a fresh interpreter (nothing imported yet), from the repository root."""
    return subprocess.run([sys.executable, "-c", HOLDING_HOOK + textwrap.dedent(script)], cwd=ROOT, timeout=timeout,
                          capture_output=True, text=True, env={**__import__("os").environ, "OMP_NUM_THREADS": "1"})


@pytest.mark.slow
def test_requests_answer_while_another_thread_is_half_way_through_importing_pyplot():
    """The reported failure, made deterministic: the warm-start thread's import of matplotlib.pyplot is held open
    (half-initialised in sys.modules) while requests go through the real server; every request answers. (Before the
    fix Gradio's per-request `matplotlib.use("agg")` called the half-imported module's `switch_backend`.)"""
    out = _run(f'''
        sys.meta_path.insert(0, Holding("matplotlib.pyplot", "warm-start"))
        from gradio_client import Client, handle_file
        from app import build_demo
        from core.catalog import load_catalog
        from core.warmup import WarmStart

        assert "matplotlib.pyplot" not in sys.modules
        demo = build_demo(load_catalog(), warm=WarmStart())
        demo.launch(prevent_thread_lock=True, server_name="127.0.0.1", quiet=True)
        importer = threading.Thread(target=lambda: __import__("matplotlib.pyplot"), name="warm-start")
        importer.start()
        assert held.wait(60) and "matplotlib.pyplot" in sys.modules
        assert not hasattr(sys.modules["matplotlib.pyplot"], "switch_backend")  # half-imported, as in the report
        try:
            client = Client(demo.local_url, verbose=False)
            hits = client.predict("a dog on a blue background", None, 5, "", "", api_name="/search")
            by_image = client.predict("", handle_file({str(SCENE)!r}), 5, "", "", api_name="/search")
            rows = client.predict("", api_name="/compare")
            print("answers", len(hits), len(by_image), len(rows))
        finally:
            release.set()
            importer.join(60)
            demo.close()
    ''')
    assert out.returncode == 0, out.stderr[-3000:]
    assert "answers 5 5" in out.stdout


def test_everything_requests_import_lazily_is_imported_before_the_server_starts():
    """`import_before_serving` (what `app.launch` runs before the server takes requests) leaves no module that a
    request or the warm start reaches half-imported later: pyplot, Pillow's plugins, every model family's libraries."""
    out = _run('''
        from PIL import Image
        from core.warmup import import_before_serving
        from models import registry

        done = import_before_serving()
        assert hasattr(sys.modules["matplotlib.pyplot"], "switch_backend")
        assert Image._initialized == 2  # every format plugin registered
        for family in registry.available_families():
            for target in registry._IMPORTS[family]:
                assert target in done, (family, target)
        assert any(t.startswith("open_clip") for t in done) and any(t.startswith("sentence_transformers") for t in done)
        print("ok", len(done))
    ''')
    assert out.returncode == 0, out.stderr[-3000:]
    assert out.stdout.startswith("ok")


def _gate_first_warm_load(monkeypatch, gate: threading.Event) -> list[str]:
    """Hold the warm start's first model load until `gate` is set (the warm start is then surely still running
    when the requests arrive); returns the names loaded, in order."""
    import models.registry

    real, loaded = models.registry.create_model, []

    def gated(family, folder, name, **options):
        if not loaded and threading.current_thread().name == "warm-start":
            loaded.append(name)
            assert gate.wait(120)
        else:
            loaded.append(name)
        return real(family, folder, name, **options)

    monkeypatch.setattr(models.registry, "create_model", gated)
    return loaded


CALLS = {  # endpoint -> arguments; every endpoint the app serves
    "search": lambda f: ("a dog on a blue background", None, 5, "", ""),
    "search by image": lambda f: ("", f(SCENE), 5, "", ""),
    "categorise": lambda f: (f(PRODUCT), "", "", "descriptive"),
    "caption": lambda f: (f(SCENE), "", 2),
    "explain": lambda f: (f(SCENE), "a dog on a blue background", ""),
    "compare": lambda f: ("",),
}
API = {"search by image": "/search"}


def _check(name: str, answer) -> None:
    if name.startswith("search"):
        assert len(answer) == 5 and all("id" in h and "score" in h for h in answer)
    elif name == "categorise":
        assert answer["top"] in answer["probabilities"] and abs(sum(answer["probabilities"].values()) - 1) < 1e-3
    elif name == "caption":
        assert answer["caption"] and len(answer["tokens"]) == len(answer["attention"])
    elif name == "explain":
        assert len(answer["heatmap"]) == 6 and answer["tokens"]
    else:
        assert answer and all("model" in r for r in answer)


@pytest.mark.slow
def test_every_endpoint_answers_during_the_warm_start(monkeypatch):
    """The real server, started as `python app.py` starts it; while its warm start is held at its first model
    load, three clients call every endpoint at once: every call answers correctly (the ones that need the model
    being loaded wait for it), none fails, and the answers equal those given once the warm start is done."""
    from gradio_client import Client, handle_file

    from app import build_demo, configure_threads, launch
    from core.catalog import load_catalog
    from core.warmup import WarmStart

    configure_threads()
    gate = threading.Event()
    loaded = _gate_first_warm_load(monkeypatch, gate)
    warm = WarmStart()
    demo = build_demo(load_catalog(), warm=warm)
    launch(demo, warm, server_name="127.0.0.1", quiet=True)
    try:
        clients = [Client(demo.local_url, verbose=False) for _ in range(3)]
        assert warm.running() and not gate.is_set()
        jobs = [(name, c.submit(*make(handle_file), api_name=API.get(name, "/" + name)))
                for c in clients for name, make in CALLS.items()]
        gate.set()
        during = {}
        for name, job in jobs:
            answer = job.result(timeout=300)  # raises on any failed call
            _check(name, answer)
            during.setdefault(name, []).append(answer)
        assert warm.wait(300) and not warm.errors and loaded
        after = {name: clients[0].predict(*make(handle_file), api_name=API.get(name, "/" + name))
                 for name, make in CALLS.items()}
        for name, answers in during.items():
            assert all(a == after[name] for a in answers), name
    finally:
        demo.close()
