"""Shared fixtures. Each fixture is self-contained; add new ones below, each with its own docstring."""
import shutil
from pathlib import Path

import pytest

from bench.localhub import LocalHub


@pytest.fixture
def local_hub(tmp_path, monkeypatch):
    """A local Hub-compatible server with an empty cache; the real huggingface_hub client talks to it.

    Yields a `LocalHub`: `.url`, `.root`, `.add_repo(repo_id, {path: bytes} | folder, repo_type="model") -> sha`,
    `.requests` (what the client asked) and `.stop()` (to play an unreachable Hub).
    """
    hub = LocalHub(tmp_path / "hub-repos").start()
    point_client_at(hub, tmp_path / "hf-home", monkeypatch)
    yield hub
    hub.stop()
    assert not hub.errors, f"the local Hub failed while answering: {hub.errors}"


def point_client_at(hub: LocalHub, home, monkeypatch) -> None:
    """Point the real huggingface_hub client at `hub`, with an empty cache under `home`."""
    import huggingface_hub.constants as hf

    env = {
        "HF_ENDPOINT": hub.url, "HF_HOME": str(home), "HF_HUB_CACHE": str(home / "hub"),
        "HF_HUB_DISABLE_TELEMETRY": "1", "HF_HUB_DISABLE_XET": "1", "HF_TOKEN": "hf_local_test_token",
    }
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    monkeypatch.delenv("TRANSFORMERS_OFFLINE", raising=False)
    # huggingface_hub reads its environment once, at import, into these constants: patch them too, or the client
    # would still talk to huggingface.co, use the real cache, read a stored token, or take the Xet code path.
    constants = {
        "ENDPOINT": hub.url,
        "HUGGINGFACE_CO_URL_TEMPLATE": hub.url + "/{repo_id}/resolve/{revision}/{filename}",
        "HF_HOME": str(home), "HF_HUB_CACHE": str(home / "hub"),
        "HF_TOKEN_PATH": str(home / "token"), "HF_STORED_TOKENS_PATH": str(home / "stored_tokens"),
        "HF_HUB_OFFLINE": False, "HF_HUB_DISABLE_TELEMETRY": True, "HF_HUB_DISABLE_XET": True,
    }
    for name, value in constants.items():
        monkeypatch.setattr(hf, name, value)


@pytest.fixture(scope="session")
def app_url():
    """The real app on the bundled catalog (warm start included), launched once for every test that drives it over HTTP."""
    from app import MAX_FILE_SIZE, build_demo, configure_threads, launch
    from core.catalog import load_catalog
    from core.warmup import WarmStart

    configure_threads()
    warm = WarmStart()
    demo = build_demo(load_catalog(), warm=warm)
    launch(demo, warm, server_name="127.0.0.1", max_file_size=MAX_FILE_SIZE)  # with its warm start, as `python app.py`
    try:
        yield demo.local_url
    finally:
        demo.close()


@pytest.fixture(scope="session")
def lookalike_datasets_root(tmp_path_factory):
    """The look-alike Hub's dataset repos (real layouts, a few rows each), written once per test session."""
    from bench.lookalike import Plan, build

    plan = Plan({"train": 4, "validation": 3, "test": 6}, fashion_rows=12, flickr30k_rows=9, filler_scale=1e-4)
    return build(tmp_path_factory.mktemp("lookalike"), plan, parts=("datasets",))


@pytest.fixture
def lookalike_hub(lookalike_datasets_root, tmp_path, monkeypatch):
    """A local Hub serving the look-alike dataset repos, with an empty cache (see `local_hub`)."""
    hub = LocalHub(lookalike_datasets_root).start()
    point_client_at(hub, tmp_path / "hf-home", monkeypatch)
    yield hub
    hub.stop()
    assert not hub.errors, f"the local Hub failed while answering: {hub.errors}"


@pytest.fixture(scope="session")
def ray_cluster():
    """A real local Ray cluster on 2 CPUs, started once for every test that needs it and shut down after them."""
    import ray

    from pipelines.ray_shards import start

    start(num_cpus=2)
    try:
        yield ray
    finally:
        ray.shutdown()


# ---------------------------------------------------------------- the browser tests' headless Chromium
# (Debian's package, driven by Playwright: no browser download); `page` is per module, so each browser test module
# has a page of its own.

ARTIFACTS = Path(__file__).resolve().parent.parent / "test-artifacts"
CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--headless=new", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
]


@pytest.fixture(scope="module")
def page():
    """A headless Chromium page at 1400x1000, one per test module."""
    from playwright.sync_api import sync_playwright

    assert Path(CHROMIUM).exists(), "install Debian's chromium package (.ci/run does)"
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        page = browser.new_page(viewport={"width": 1400, "height": 1000})
        yield page
        browser.close()
