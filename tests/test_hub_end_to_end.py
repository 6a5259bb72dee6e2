"""A model repo and an index repo served by the local Hub, downloaded by the real client, used for a search."""
from pathlib import Path

from core.catalog import load_catalog
from core.search import search_text
from core.services import Services

ROOT = Path(__file__).resolve().parent.parent


def test_search_with_model_and_index_from_the_hub(local_hub, tmp_path):
    model_sha = local_hub.add_repo("vl-studio/demo-clip", ROOT / "assets/models/demo-clip")
    local_hub.add_repo("vl-studio/index-demo-scenes", ROOT / "assets/indexes/demo-clip--scenes-test-heldout", repo_type="dataset")
    catalog_file = tmp_path / "catalog.toml"
    catalog_file.write_text(
        f'[models.demo-clip]\nfamily = "open_clip"\nsource = "hf-hub:vl-studio/demo-clip@{model_sha}"\n'
        '[[indexes]]\nmodel = "demo-clip"\ncollection = "scenes"\nsource = "hf-hub:vl-studio/index-demo-scenes"\n'
    )
    hub = Services(load_catalog(catalog_file))
    local = Services(load_catalog())
    query = "a red car at the top left on a green background"
    from_hub = search_text(hub.encoder("demo-clip"), hub.index("demo-clip", "scenes"), query, 5)
    from_folder = search_text(
        local.encoder("demo-clip"), local.index("demo-clip", "demo scenes (test split + never-seen concepts)"), query, 5
    )
    assert [h.id for h in from_hub.hits] == [h.id for h in from_folder.hits]
    assert any(r.startswith("GET /vl-studio/demo-clip/resolve/") for r in local_hub.requests)
    assert any(r.startswith("GET /datasets/vl-studio/index-demo-scenes/resolve/") for r in local_hub.requests)
