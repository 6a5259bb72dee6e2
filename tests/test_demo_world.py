
import numpy as np
import pytest
from PIL import Image

from demo_world.free_corpus import build_split, iter_products, iter_scenes, load_split, write_corpus
from demo_world.icons import CATEGORIES, load_icons, render_icon
from demo_world.scenes import BACKGROUNDS, POSITIONS, SIZES, held_out_combinations, render


def test_icon_table_is_complete_and_renders():
    icons = load_icons()
    assert len({i.name for i in icons}) == len(icons)
    assert {i.group for i in icons if i.is_product} == set(CATEGORIES)
    for icon in icons:
        rgba = render_icon(icon.codepoint, 24)
        assert rgba.shape == (24, 24, 4) and rgba[..., 3].max() > 0.5, icon.name


def test_scenes_are_deterministic_by_seed():
    a = [(s, c) for s, c in iter_scenes("test", 20, seed=3)]
    b = [(s, c) for s, c in iter_scenes("test", 20, seed=3)]
    c = [(s, c) for s, c in iter_scenes("test", 20, seed=4)]
    assert a == b
    assert a != c
    assert np.array_equal(np.asarray(render(a[0][0])), np.asarray(render(b[0][0])))


def test_parquet_bytes_are_reproducible(tmp_path):
    d1 = build_split("scenes", "val", 5, seed=0)
    d2 = build_split("scenes", "val", 5, seed=0)
    d1 = d1.cast_column("image", d1.features["image"].__class__(decode=False))
    d2 = d2.cast_column("image", d2.features["image"].__class__(decode=False))
    assert d1["image"] == d2["image"] and d1["captions"] == d2["captions"]


def test_scene_contents_are_well_formed():
    for scene, captions in iter_scenes("val", 200):
        assert 1 <= len(scene.items) <= 3 and scene.background in BACKGROUNDS
        assert len(captions) == 5 and len(set(captions)) == 5
        names = [p.icon.name for p in scene.items]
        assert len(set(names)) == len(names)
        for p in scene.items:
            assert p.position in POSITIONS and p.size in SIZES
            x0, y0, x1, y1 = p.box
            assert 0 <= x0 < x1 <= 1 and 0 <= y0 < y1 <= 1
        for caption in captions:  # every caption names every object and the background
            assert all(n in caption for n in names) and scene.background in caption


def test_boxes_match_pixels():
    scene, _ = next(iter_scenes("test", 1, seed=11))
    img = np.asarray(render(scene, 128)).astype(int)
    bg = np.array(scene.background_rgb())
    differs = np.abs(img - bg).sum(-1) > 40  # (H, W) pixels that are not background
    inside = np.zeros_like(differs)
    for p in scene.items:
        x0, y0, x1, y1 = (round(v * 128) for v in p.box)
        inside[y0:y1, x0:x1] = True
    assert differs[inside].any() and not differs[~inside].any()


def test_held_out_combinations_never_appear_in_training_splits():
    held = held_out_combinations(0)
    assert held.icon_background and held.icon_pairs
    for split in ("train", "val", "test"):
        for scene, _ in iter_scenes(split, 300):
            assert not held.hits(scene.background, [p.icon.name for p in scene.items]), split
    for scene, _ in iter_scenes("heldout", 100):
        assert held.hits(scene.background, [p.icon.name for p in scene.items])


def test_training_stream_skips_test_scenes():
    test_keys = {s.key() for s, _ in iter_scenes("test", 1000)}
    assert not any(s.key() in test_keys for s, _ in iter_scenes("train", 3000))


def test_products_are_balanced_and_described():
    products = list(iter_products("test", 70))
    counts = {c: 0 for c in CATEGORIES}
    for scene, captions, description in products:
        counts[scene.category] += 1
        assert scene.items[0].icon.name in description and len(captions) == 5
    assert set(counts.values()) == {10}


def test_write_and_load_corpus(tmp_path):
    out = write_corpus(tmp_path / "dw", scale=0.01)
    assert (out / "README.md").read_text().startswith("---\nlicense: cc-by-sa-4.0")
    test = load_split(out, "scenes", "test")
    assert set(test.column_names) == {"id", "image", "captions", "objects", "background", "category", "description"}
    row = test[0]
    assert isinstance(row["image"], Image.Image) and row["image"].size == (128, 128)
    products = load_split(out, "products", "train")
    assert set(products["category"]) <= set(CATEGORIES)
    with pytest.raises(FileNotFoundError):
        load_split(out, "scenes", "nope")
