import threading
import time

import pytest

from core.catalog import CatalogError, load_catalog
from core.services import AssetError, BoundedCache, Services


def test_default_catalog_points_at_bundled_assets():
    catalog = load_catalog()
    assert catalog.search_models() == ["dual-minilm-cnn", "demo-clip"]
    assert catalog.models_for("categorise") == ["dual-minilm-cnn", "demo-clip", "demo-clip-products", "cnn-baseline"]
    assert catalog.models_for("caption") == ["demo-captioner", "demo-sat-captioner"]
    # what the pickers offer: models that work on the world they serve; the others answer by name and in Compare
    assert catalog.picker_models("search") == ["dual-minilm-cnn"]
    assert catalog.picker_models("categorise") == ["dual-minilm-cnn", "cnn-baseline"]
    assert catalog.picker_models("caption") == ["demo-captioner"]
    for spec in catalog.indexes:
        assert not spec.source.startswith("hf-hub:")
    assert "demo scenes (test split + never-seen concepts)" in catalog.collections("demo-clip")


def test_hub_catalog_includes_the_demo_one():
    catalog = load_catalog("catalog.hub.toml")
    assert "demo-clip" in catalog.models
    assert catalog.model("clip-vit-b-32-laion2b").source.startswith("hf-hub:laion/")


def test_catalog_errors(tmp_path):
    with pytest.raises(CatalogError, match="not found"):
        load_catalog(tmp_path / "nope.toml")
    bad = tmp_path / "bad.toml"
    bad.write_text('[models.x]\nsource = "a"\n')
    with pytest.raises(CatalogError, match="lacks 'family'"):
        load_catalog(bad)
    orphan = tmp_path / "orphan.toml"
    orphan.write_text('[[indexes]]\nmodel = "ghost"\ncollection = "c"\nsource = "s"\n')
    with pytest.raises(CatalogError, match="unknown model 'ghost'"):
        load_catalog(orphan)
    catalog = load_catalog()
    with pytest.raises(CatalogError, match="Known models: dual-minilm-cnn, demo-clip, demo-clip-products, demo-captioner, demo-sat-captioner, cnn-baseline"):
        catalog.model("nope")
    with pytest.raises(CatalogError, match="Its collections"):
        catalog.index("demo-clip", "nope")


def test_relative_sources_resolve_against_the_catalog_file(tmp_path, monkeypatch):
    cat = tmp_path / "c.toml"
    cat.write_text('[models.m]\nfamily = "open_clip"\nsource = "models/m"\n')
    monkeypatch.chdir("/")
    assert load_catalog(cat).model("m").source == str(tmp_path / "models" / "m")


def test_env_var_selects_the_catalog(monkeypatch):
    monkeypatch.setenv("VLSTUDIO_CATALOG", "catalog.hub.toml")
    assert "siglip-base" in load_catalog().models


def test_bounded_cache_evicts_least_recently_used():
    cache = BoundedCache(2)
    built = []
    for key in ("a", "b", "a", "c"):
        cache.get(key, lambda k=key: built.append(k) or k.upper())
    assert built == ["a", "b", "c"] and cache.keys() == ["a", "c"]


def test_bounded_cache_builds_once_under_concurrency():
    cache = BoundedCache(2)
    calls = []

    def slow():
        calls.append(1)
        time.sleep(0.2)
        return object()

    results = []
    threads = [threading.Thread(target=lambda: results.append(cache.get("m", slow))) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(calls) == 1 and len({id(r) for r in results}) == 1


def test_services_load_lazily_and_once():
    services = Services(load_catalog())
    assert services.loaded_models() == []
    enc = services.encoder("demo-clip")
    assert services.encoder("demo-clip") is enc and services.loaded_models() == ["demo-clip"]
    idx = services.index("demo-clip", "demo scenes (test split + never-seen concepts)")
    assert idx.info.model == "demo-clip" and idx.index.ntotal == len(idx.meta)


def test_broken_asset_is_named_in_the_error(tmp_path):
    cat = tmp_path / "c.toml"
    cat.write_text(
        '[models.m]\nfamily = "open_clip"\nsource = "missing-folder"\n'
        '[[indexes]]\nmodel = "m"\ncollection = "c"\nsource = "also-missing"\n'
    )
    services = Services(load_catalog(cat))
    with pytest.raises(AssetError, match="Model 'm' could not be loaded"):
        services.encoder("m")
