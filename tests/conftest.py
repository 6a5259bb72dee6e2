"""Shared fixtures."""
import pytest

from tests.hubserver import LocalHub


@pytest.fixture
def local_hub(tmp_path, monkeypatch):
    """A local Hub-compatible server; the real huggingface_hub client is pointed at it with HF_ENDPOINT."""
    import huggingface_hub.constants as hf_constants

    hub = LocalHub(tmp_path / "hub").start()
    monkeypatch.setenv("HF_ENDPOINT", hub.url)
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    monkeypatch.setenv("HF_HUB_DISABLE_TELEMETRY", "1")
    monkeypatch.setenv("HF_TOKEN", "test-token")
    # huggingface_hub reads these once at import; the client must really talk to our server.
    monkeypatch.setattr(hf_constants, "ENDPOINT", hub.url)
    monkeypatch.setattr(hf_constants, "HUGGINGFACE_CO_URL_TEMPLATE", hub.url + "/{repo_id}/resolve/{revision}/{filename}")
    monkeypatch.setattr(hf_constants, "HF_HUB_OFFLINE", False)
    monkeypatch.setattr(hf_constants, "HF_HUB_CACHE", str(tmp_path / "hf-cache"))
    yield hub
    hub.stop()
