"""core.explain: one explanation module for every model family (demo CNN towers, open_clip ResNet and ViT,
transformers CLIP and SigLIP); maps in [0, 1] over the image's own coordinates, one weight per word."""
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from core import explain as ex
from core.catalog import load_catalog
from core.services import Services
from demo_world.free_corpus import build_free_split


@pytest.fixture(scope="module")
def services():
    return Services(load_catalog())


@pytest.fixture(scope="module")
def scene():
    row = build_free_split("scenes", "test", 1)[0]
    return row["image"].convert("RGB"), row["objects"]


def _tiny_open_clip_vit():
    import open_clip
    from open_clip.model import CLIP

    from models.open_clip_encoder import OpenClipEncoder

    torch.manual_seed(0)
    model = CLIP(32, {"image_size": 32, "patch_size": 8, "width": 64, "layers": 2, "head_width": 32},
                 {"context_length": 77, "vocab_size": 49408, "width": 64, "heads": 2, "layers": 2})
    return OpenClipEncoder(model, open_clip.image_transform(32, is_train=False), open_clip.get_tokenizer("ViT-B-32"),
                           "tiny-vit")


def _tiny_transformers(kind: str):
    import tempfile

    from transformers import (CLIPConfig, CLIPImageProcessor, CLIPModel, CLIPProcessor, CLIPTokenizer, SiglipConfig,
                              SiglipImageProcessor, SiglipModel)

    from bench.lookalike import clip_tokenizer_files
    from models.hf_clip import HFClipEncoder

    torch.manual_seed(0)
    text = {"hidden_size": 32, "intermediate_size": 64, "num_hidden_layers": 2, "num_attention_heads": 2}
    vision = {**text, "image_size": 32, "patch_size": 8}
    with tempfile.TemporaryDirectory() as tmp:
        clip_tokenizer_files(Path(tmp))
        tokenizer = CLIPTokenizer.from_pretrained(tmp)
    if kind == "clip":
        model = CLIPModel(CLIPConfig(text_config=text, vision_config=vision, projection_dim=16))
        image_processor = CLIPImageProcessor(size={"shortest_edge": 32}, crop_size={"height": 32, "width": 32})
    else:  # SigLIP's architecture; a CLIP tokenizer stands in for its sentencepiece one
        cfg = SiglipConfig(text_config={**text, "vocab_size": 49408, "max_position_embeddings": 64}, vision_config=vision)
        model = SiglipModel(cfg)
        image_processor = SiglipImageProcessor(size={"height": 32, "width": 32})
    processor = CLIPProcessor(image_processor=image_processor, tokenizer=tokenizer)
    return HFClipEncoder(model, processor, f"tiny-{kind}")


FAMILIES = {
    "demo-clip (open_clip ModifiedResNet)": lambda s: s.encoder("demo-clip"),
    "dual-minilm-cnn (demo CNN)": lambda s: s.encoder("dual-minilm-cnn"),
    "open_clip ViT": lambda s: _tiny_open_clip_vit(),
    "transformers CLIP": lambda s: _tiny_transformers("clip"),
    "transformers SigLIP": lambda s: _tiny_transformers("siglip"),
}


@pytest.mark.parametrize("family", list(FAMILIES))
@pytest.mark.parametrize("method", ["occlusion", "gradient"])
def test_every_family_is_explained_by_every_method(services, scene, family, method):
    encoder = FAMILIES[family](services)
    e = ex.explain(encoder, scene[0], "a small dog at the top left", method=method)
    assert e.method == method and e.heatmap.shape == (ex.OCCLUSION_GRID, ex.OCCLUSION_GRID)
    assert e.heatmap.dtype == np.float32 and 0 <= e.heatmap.min() and e.heatmap.max() <= 1
    assert [w for w, _ in e.tokens] == "a small dog at the top left".split()
    assert all(np.isfinite(w) for _, w in e.tokens) and -1 <= e.score <= 1


def test_word_weights_are_the_drop_without_each_word(services, scene):
    enc = services.encoder("demo-clip")
    e = ex.explain(enc, scene[0], "a red dog")
    image = enc.encode_image([scene[0]])[0]
    full, without_dog = enc.encode_text(["a red dog", "a red"]) @ image
    assert e.score == pytest.approx(float(full), abs=1e-6)
    assert dict(e.tokens)["dog"] == pytest.approx(float(full - without_dog), abs=1e-6)


def test_auto_keeps_occlusion_for_the_demo_towers_and_gradient_for_large_ones(services, monkeypatch):
    assert ex.choose_method(services.encoder("demo-clip")) == "occlusion"
    assert ex.choose_method(services.encoder("dual-minilm-cnn")) == "occlusion"
    monkeypatch.setattr(ex, "GRADIENT_ABOVE_PARAMS", 1000)
    assert ex.choose_method(services.encoder("demo-clip")) == "gradient"
    with pytest.raises(ValueError, match="known: auto, occlusion, gradient"):
        ex.choose_method(services.encoder("demo-clip"), "attention")


def test_gradient_map_lands_in_the_image_coordinates():
    """A centre crop of a wide image: the model saw only the middle square; the sides get nothing."""
    rel = np.ones((10, 10))
    w, h = 300, 100
    box = ((w - h) / 2 / w, 0.0, 1 - (w - h) / 2 / w, 1.0)
    cells = ex._onto_image_grid(rel, box, grid=6)
    assert cells[:, 0].max() == 0 and cells[:, -1].max() == 0 and cells[:, 2:4].min() == 1
    # padded to a square (the dual encoder): the image is the middle third of the model's square, all of it seen
    cells = ex._onto_image_grid(rel, (0.0, -1.0, 1.0, 2.0), grid=6)
    assert cells.min() == 1


def test_view_boxes(services):
    assert services.encoder("demo-clip").view_box((200, 100)) == (0.25, 0.0, 0.75, 1.0)  # shortest side, centre crop
    assert services.encoder("dual-minilm-cnn").view_box((200, 100)) == (0.0, -0.5, 1.0, 1.5)  # padded square
    assert _tiny_transformers("siglip").view_box((200, 100)) == (0.0, 0.0, 1.0, 1.0)  # squashed
    assert _tiny_transformers("clip").view_box((200, 100)) == (0.25, 0.0, 0.75, 1.0)


def test_gradient_finds_what_the_score_depends_on():
    """A tower that scores the red in the top-left quarter only: the map's peak is there."""

    class RedCorner:
        model = None

        def pixels(self, images):
            return torch.stack([torch.from_numpy(np.asarray(im, np.float32) / 255).permute(2, 0, 1) for im in images])

        def image_tower(self, x):
            return torch.stack([x[:, 0, :16, :16].mean(dim=(1, 2)), torch.full((len(x),), 0.1)], dim=1)  # (B, 2)

        def view_box(self, size):
            return 0.0, 0.0, 1.0, 1.0

    image = Image.new("RGB", (32, 32), (200, 200, 200))
    heat = ex.gradient_map(RedCorner(), image, np.array([1.0, 0.0], np.float32), grid=4)
    assert np.unravel_index(heat.argmax(), heat.shape) in {(0, 0), (0, 1), (1, 0), (1, 1)}
    assert heat[2:, 2:].max() < heat.max()


def test_clicked_search_result_is_explained(services, monkeypatch, tmp_path):
    import io

    import tabs.search as tab

    hits = tab.run_search(services, "a dog", None, 2, "demo-clip", "demo scenes (test split + never-seen concepts)").hits
    state = {"model": "demo-clip", "text": "a dog", "image": None, "hits": [h.image_png for h in hits]}
    picture, words, note = tab.explain_hit(services, state, 1)
    assert picture.size == Image.open(io.BytesIO(hits[1].image_png)).size
    assert [w for w, _ in words] == ["a", "dog"] and max(abs(v) for _, v in words) == pytest.approx(1.0)
    assert "occlusion" in note
    query = tmp_path / "query.png"
    Image.open(io.BytesIO(hits[0].image_png)).save(query)
    monkeypatch.setattr(tab, "upload_dirs", lambda: [tmp_path])
    picture, words, note = tab.explain_hit(services, {**state, "text": "", "image": str(query)}, 0)
    assert words == [] and "resembles your image" in note
    with pytest.raises(tab.InputError, match="Search first"):
        tab.explain_hit(services, None, 0)


def _reference_gradient_map(encoder, image, target, grid=ex.OCCLUSION_GRID):
    """The gradient map as first written: a forward of its own, then `.backward()` (weight gradients included)."""
    import copy

    encoder = copy.copy(encoder)
    encoder.model = copy.deepcopy(encoder.model)  # .backward() leaves gradients on the weights
    x = encoder.pixels([image.convert("RGB")]).detach().requires_grad_(True)
    emb = torch.nn.functional.normalize(encoder.image_tower(x).float(), dim=-1)
    (emb[0] @ torch.as_tensor(target, dtype=emb.dtype)).backward()
    rel = (x.grad * x.detach()).sum(dim=1)[0].clamp_min(0).numpy()
    return ex._unit(ex._patch_footprint(ex._onto_image_grid(rel, encoder.view_box(image.size), grid)))


@pytest.mark.parametrize("family", ["open_clip ViT", "transformers SigLIP", "demo-clip (open_clip ModifiedResNet)"])
def test_categorise_and_explain_share_one_forward_and_give_the_reference_maps(services, scene, family):
    """Categorise's gradient heat-map reuses the forward that scores the classes, and reads only the input's
    gradient: the same map as a separate forward + full backward, the same probabilities as `encode_image`, and
    no gradient left on the shared model's weights."""
    from core.categorise import categorise
    from models.zero_shot import catalogue_classes

    encoder, image = FAMILIES[family](services), scene[0]
    result = categorise(encoder, image, None, "descriptive", method="gradient")
    reference = categorise(encoder, image, None, "descriptive", heatmap=False)
    assert list(result.probs) == list(reference.probs) and result.heatmap_method == "gradient"
    np.testing.assert_allclose(list(result.probs.values()), list(reference.probs.values()), atol=1e-5)
    from core.categorise import class_embeddings

    class_emb, _ = class_embeddings(encoder, catalogue_classes(), "descriptive")
    target = class_emb[catalogue_classes().index(result.top)]
    assert np.array_equal(result.heatmap, _reference_gradient_map(encoder, image, target))
    explained = ex.explain(encoder, image, "a dog on a blue background", method="gradient")
    text, _, _ = ex.word_weights(encoder, np.zeros(encoder.dim, np.float32), "a dog on a blue background")
    assert np.array_equal(explained.heatmap, _reference_gradient_map(encoder, image, text))
    assert all(p.grad is None for p in encoder.model.parameters())
