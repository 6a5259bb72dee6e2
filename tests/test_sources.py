"""Sources: parsing, local folders, and the Hub path run by the real huggingface_hub client on a local server."""
import socket
import time
from pathlib import Path

import pytest

import core.sources
from core.sources import Source, SourceError, parse_source, resolve
from pipelines.publish import main as publish_main
from pipelines.publish import publish

SHA = "0123456789abcdef0123456789abcdef01234567"
MODEL_FILES = {"config.json": b'{"dim": 8}', "weights/model.safetensors": b"\x00\x01" * 100, "empty.txt": b""}


@pytest.mark.parametrize(
    "text, expected",
    [
        ("hf-hub:laion/CLIP-ViT-B-32", Source("hub", "laion/CLIP-ViT-B-32", None)),
        ("  hf-hub:org/repo@main  ", Source("hub", "org/repo", "main")),
        (f"hf-hub:org/repo@{SHA}", Source("hub", "org/repo", SHA)),
        ("hf-hub:org/re.po_x-1@refs/pr/3", Source("hub", "org/re.po_x-1", "refs/pr/3")),
        ("hf-hub:org/repo@v1.0", Source("hub", "org/repo", "v1.0")),
        ("/abs/folder", Source("local", path=Path("/abs/folder"))),
        ("rel/folder", Source("local", path=Path("/base/rel/folder"))),
        ("hf-hub-like/folder", Source("local", path=Path("/base/hf-hub-like/folder"))),
    ],
)
def test_parse_source(text, expected):
    assert parse_source(text, base_dir=Path("/base")) == expected


@pytest.mark.parametrize(
    "text",
    [
        "", "   ", "hf-hub:", "hf-hub:@main", "hf-hub:noslash", "hf-hub:a/b/c", "hf-hub:../x", "hf-hub:a/..",
        "hf-hub:a/b..c", "hf-hub:a/b--c", "hf-hub:a/b.git", "hf-hub:-a/b", "hf-hub:a/b.", "hf-hub:o w/r",
        "hf-hub:o/r@", "hf-hub:o/r@a..b", "hf-hub:o/r@/main", "hf-hub:o/r@a b", "hf-hub:ö/r", "hf-hub:o/" + "r" * 97,
    ],
)
def test_parse_source_rejects(text):
    with pytest.raises(SourceError, match="hf-hub:|revision|Empty"):
        parse_source(text)


def test_str_round_trips():
    for text in ["hf-hub:org/repo", f"hf-hub:org/repo@{SHA}", "/abs/folder"]:
        assert str(parse_source(text)) == text


def test_local_folder_is_returned_as_is(tmp_path):
    assert resolve(str(tmp_path)) == tmp_path
    (tmp_path / "assets").mkdir()
    assert resolve("assets", base_dir=tmp_path) == tmp_path / "assets"
    with pytest.raises(SourceError, match=f"{tmp_path / 'missing'} not found"):
        resolve(str(tmp_path / "missing"))


def test_fixture_points_the_plain_client_at_the_local_hub(local_hub):
    import huggingface_hub
    from huggingface_hub import HfApi, hf_hub_download

    assert huggingface_hub.constants.ENDPOINT == local_hub.url and local_hub.url.startswith("http://127.0.0.1:")
    local_hub.add_repo("acme/m", {"a.txt": b"a"})
    path = hf_hub_download("acme/m", "a.txt")  # no endpoint argument: the patched constants must do it
    assert Path(path).read_bytes() == b"a" and str(local_hub.root.parent) in path
    assert HfApi().create_repo("acme/new", exist_ok=True).endswith("/acme/new")
    assert local_hub.requests[:2] == ["HEAD /acme/m/resolve/main/a.txt", "GET /acme/m/resolve/main/a.txt"]


def test_hub_model_and_dataset_repos_download_and_cache(local_hub):
    sha = local_hub.add_repo("acme/tiny-model", MODEL_FILES)
    local_hub.add_repo("acme/tiny-data", {"data/test.parquet": b"PAR1"}, repo_type="dataset")

    model = resolve("hf-hub:acme/tiny-model")
    assert {p: (model / p).read_bytes() for p in MODEL_FILES} == MODEL_FILES
    assert model.name == sha and resolve(f"hf-hub:acme/tiny-model@{sha}") == model
    data = resolve("hf-hub:acme/tiny-data", repo_type="dataset")
    assert (data / "data/test.parquet").read_bytes() == b"PAR1"
    assert any(r.startswith("GET /datasets/acme/tiny-data/resolve/") for r in local_hub.requests)

    local_hub.stop()  # the Hub goes away: the cache still serves, by branch and by sha
    assert resolve("hf-hub:acme/tiny-model") == model
    assert resolve(f"hf-hub:acme/tiny-model@{sha}") == model
    assert resolve("hf-hub:acme/tiny-data", repo_type="dataset") == data


def test_a_cached_commit_is_served_without_asking_the_hub(local_hub):
    sha = local_hub.add_repo("acme/m", MODEL_FILES)
    folder = resolve(f"hf-hub:acme/m@{sha}")
    asked = len(local_hub.requests)
    assert resolve(f"hf-hub:acme/m@{sha}") == folder
    assert len(local_hub.requests) == asked


def test_allow_patterns_download_only_matching_files(local_hub):
    local_hub.add_repo("acme/m", MODEL_FILES)
    folder = resolve("hf-hub:acme/m", allow_patterns=["*.json"])
    assert sorted(p.name for p in folder.rglob("*") if p.is_file()) == ["config.json"]


def test_unknown_repo_and_revision(local_hub):
    local_hub.add_repo("acme/m", {"a.txt": b"a"})
    with pytest.raises(SourceError, match="no such model repository"):
        resolve("hf-hub:acme/nope")
    with pytest.raises(SourceError, match="no such dataset repository"):
        resolve("hf-hub:acme/m", repo_type="dataset")
    with pytest.raises(SourceError, match="no revision 'v9'"):
        resolve("hf-hub:acme/m@v9")


def test_unreachable_hub_with_empty_cache_fails_fast(local_hub):
    local_hub.stop()  # connection refused
    start = time.perf_counter()
    with pytest.raises(SourceError, match="could not be reached and nothing is cached"):
        resolve("hf-hub:acme/never-downloaded")
    assert time.perf_counter() - start < 15  # guards against a hang, not a speed test


@pytest.fixture
def silent_hub(monkeypatch):
    """An endpoint that accepts connections and never answers (snapshot_download alone would wait forever)."""
    import huggingface_hub.constants

    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen(64)  # the kernel completes the handshakes; nobody ever reads or replies
    url = f"http://127.0.0.1:{sock.getsockname()[1]}"
    monkeypatch.setenv("HF_ENDPOINT", url)
    monkeypatch.setattr(huggingface_hub.constants, "ENDPOINT", url)
    monkeypatch.setattr(core.sources, "HUB_TIMEOUT_S", 1.0)
    yield url
    sock.close()


def test_silent_hub_times_out_then_uses_the_cache(local_hub, request):
    local_hub.add_repo("acme/m", MODEL_FILES)
    folder = resolve("hf-hub:acme/m")
    request.getfixturevalue("silent_hub")
    start = time.perf_counter()
    assert resolve("hf-hub:acme/m") == folder
    with pytest.raises(SourceError, match="could not be reached and nothing is cached"):
        resolve("hf-hub:acme/never-downloaded")
    assert time.perf_counter() - start < 15  # two 1 s timeouts; without them this hangs


def test_publish_round_trip(local_hub, tmp_path):
    folder = tmp_path / "to-publish"
    (folder / "sub").mkdir(parents=True)
    weights = bytes(range(256)) * 40
    (folder / "model.safetensors").write_bytes(weights)  # an LFS file on the Hub
    (folder / "sub" / "card.md").write_text("hello")  # a regular one
    sha = publish(folder, "acme/published", repo_type="dataset")
    assert any(r.endswith("/datasets/acme/published.git/info/lfs/objects/batch") for r in local_hub.requests)
    assert any(r.startswith("PUT /_lfs/") for r in local_hub.requests)

    got = resolve(f"hf-hub:acme/published@{sha}", repo_type="dataset")
    assert (got / "model.safetensors").read_bytes() == weights
    assert (got / "sub" / "card.md").read_text() == "hello"
    assert publish(folder, "acme/published", repo_type="dataset") == sha  # nothing changed: same commit


def test_publish_cli_prints_the_commit_sha(local_hub, tmp_path, capsys):
    (tmp_path / "m").mkdir()
    (tmp_path / "m" / "config.json").write_text("{}")
    publish_main([str(tmp_path / "m"), "acme/cli-model", "--private"])
    sha = capsys.readouterr().out.strip()
    assert (resolve(f"hf-hub:acme/cli-model@{sha}") / "config.json").read_text() == "{}"


def test_publish_refuses_an_empty_folder(tmp_path):
    with pytest.raises(FileNotFoundError, match="build it first"):
        publish(tmp_path / "missing", "acme/x")


def test_resolve_restores_a_folder_left_aside_by_an_interrupted_save(tmp_path):
    aside = tmp_path / ".demo-clip.old-999999-abc"  # what a save killed between its two renames leaves
    aside.mkdir()
    (aside / "open_clip_config.json").write_text("{}")
    folder = resolve(str(tmp_path / "demo-clip"))
    assert folder == tmp_path / "demo-clip" and (folder / "open_clip_config.json").read_text() == "{}"
    assert not aside.exists()


def test_describe_records_where_an_asset_came_from():
    from core.sources import describe

    assert describe("data/demo_world") == ("demo_world", None)
    assert describe("hf-hub:org/set@abc123") == ("hf-hub:org/set@abc123", "abc123")


def test_hub_reachability_and_the_apps_notice(local_hub, monkeypatch, tmp_path):
    from app import HubNotice
    from core.catalog import load_catalog
    from core.sources import hub_reachable

    catalog_file = tmp_path / "c.toml"
    catalog_file.write_text('[models.remote]\nfamily = "open_clip"\nsource = "hf-hub:someone/remote"\n')
    catalog = load_catalog(catalog_file)
    assert hub_reachable(timeout=2)
    assert HubNotice(catalog)() == ""
    local_hub.stop()  # the Hub goes away: a notice, quickly, naming the Hub models
    import time

    t0 = time.perf_counter()
    assert not hub_reachable(timeout=2)
    text = HubNotice(catalog, timeout=2)()
    assert "cannot be reached" in text and "remote" in text
    assert time.perf_counter() - t0 < 10
    assert HubNotice(load_catalog())() == ""  # the bundled catalog never asks the Hub
