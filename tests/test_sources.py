import time
from pathlib import Path

import pytest

from core.sources import Source, SourceError, parse_source, resolve
from pipelines.publish import publish


@pytest.mark.parametrize(
    "text, expected",
    [
        ("hf-hub:laion/CLIP-ViT-B-32", Source("hub", "laion/CLIP-ViT-B-32", None)),
        ("hf-hub:org/repo@main", Source("hub", "org/repo", "main")),
        ("hf-hub:org/repo@0123abcd", Source("hub", "org/repo", "0123abcd")),
        ("hf-hub:org/re.po_x-1@refs/pr/3", Source("hub", "org/re.po_x-1", "refs/pr/3")),
        ("/abs/folder", Source("local", path=Path("/abs/folder"))),
        ("rel/folder", Source("local", path=Path("/base/rel/folder"))),
    ],
)
def test_parse_source(text, expected):
    assert parse_source(text, base_dir=Path("/base")) == expected


@pytest.mark.parametrize(
    "text", ["", "   ", "hf-hub:", "hf-hub:noslash", "hf-hub:a/b/c", "hf-hub:../x", "hf-hub:a/..", "hf-hub:o/r@", "hf-hub:o/r@a..b", "hf-hub:o w/r"]
)
def test_parse_source_rejects(text):
    with pytest.raises(SourceError):
        parse_source(text)


def test_local_folder_is_returned_as_is(tmp_path):
    assert resolve(str(tmp_path)) == tmp_path
    with pytest.raises(SourceError, match="not found"):
        resolve(str(tmp_path / "missing"))


def test_hub_model_and_dataset_repos_download_and_cache(local_hub):
    sha = local_hub.add_repo("acme/tiny-model", {"config.json": b"{}", "weights/w.bin": b"\x00\x01"})
    local_hub.add_repo("acme/tiny-data", {"data/test.parquet": b"PAR1"}, repo_type="dataset")
    model = resolve("hf-hub:acme/tiny-model")
    assert (model / "config.json").read_bytes() == b"{}" and (model / "weights/w.bin").read_bytes() == b"\x00\x01"
    assert resolve(f"hf-hub:acme/tiny-model@{sha}") == model
    data = resolve("hf-hub:acme/tiny-data", repo_type="dataset")
    assert (data / "data/test.parquet").read_bytes() == b"PAR1"
    assert any(r.startswith("HEAD /datasets/acme/tiny-data/resolve/") for r in local_hub.requests)
    local_hub.stop()  # the Hub goes away: the cache still serves
    assert resolve("hf-hub:acme/tiny-model") == model


def test_unknown_repo_and_revision(local_hub):
    local_hub.add_repo("acme/m", {"a.txt": b"a"})
    with pytest.raises(SourceError, match="no such model repository"):
        resolve("hf-hub:acme/nope")
    with pytest.raises(SourceError):
        resolve("hf-hub:acme/m@v9")


def test_unreachable_hub_with_empty_cache_fails_fast(local_hub):
    local_hub.stop()
    start = time.perf_counter()
    with pytest.raises(SourceError, match="could not be reached and nothing is cached"):
        resolve("hf-hub:acme/never-downloaded")
    assert time.perf_counter() - start < 30  # guards against a hang, not a speed test


def test_publish_round_trip(local_hub, tmp_path):
    folder = tmp_path / "to-publish"
    (folder / "sub").mkdir(parents=True)
    (folder / "model.safetensors").write_bytes(bytes(range(256)) * 40)
    (folder / "sub" / "card.md").write_text("hello")
    sha = publish(folder, "acme/published", repo_type="dataset")
    got = resolve(f"hf-hub:acme/published@{sha}", repo_type="dataset")
    assert (got / "model.safetensors").read_bytes() == bytes(range(256)) * 40
    assert (got / "sub" / "card.md").read_text() == "hello"
    with pytest.raises(FileNotFoundError, match="build it first"):
        publish(tmp_path / "empty", "acme/x")
