"""The shortened text tower: a query stops at its end token, and its embedding is the full-length one."""
import copy
from pathlib import Path

import numpy as np
import pytest
import torch

from models.open_clip_encoder import OpenClipEncoder, causal_text_tower, encode_text_prefix
from models.registry import create_model

TEXTS = ["a dog", "a man in a red shirt climbing a rock", "two children playing on the beach at sunset, " * 12, ""]


def _full_and_short(enc: OpenClipEncoder) -> tuple[np.ndarray, np.ndarray]:
    full = OpenClipEncoder(enc.model, enc.preprocess, enc.tokenizer, enc.name, shorten=False)
    return full.encode_text(TEXTS), enc.encode_text(TEXTS)


@pytest.fixture(scope="module")
def vit_b_32():
    import open_clip

    torch.manual_seed(0)
    model, _, preprocess = open_clip.create_model_and_transforms("ViT-B-32")  # random weights, the real shapes
    return OpenClipEncoder(model, preprocess, open_clip.get_tokenizer("ViT-B-32"), "vit-b-32-random")


@pytest.fixture(scope="module")
def demo_clip():
    return create_model("open_clip", Path("assets/models/demo-clip"), "demo-clip")


@pytest.mark.slow
def test_vit_b_32_short_tower_gives_the_full_embedding(vit_b_32):
    assert vit_b_32.shorten
    full, short = _full_and_short(vit_b_32)
    np.testing.assert_allclose(short, full, atol=1e-5)


def test_demo_clip_short_tower_gives_the_full_embedding(demo_clip):
    assert demo_clip.shorten  # ModifiedResNet + causal text transformer, context 40
    full, short = _full_and_short(demo_clip)
    np.testing.assert_allclose(short, full, atol=1e-5)


def test_prefix_length_is_the_query_rounded_to_the_bucket(demo_clip):
    seen = []
    hook = demo_clip.model.transformer.register_forward_pre_hook(lambda m, args: seen.append(args[0].shape[1]))
    try:
        demo_clip.encode_text(["a dog"])  # <sot> a dog <eot>: 4 tokens -> one bucket of 8
        demo_clip.encode_text(["a dog " * 40])  # truncated: the whole context
    finally:
        hook.remove()
    assert seen == [8, demo_clip.context_length]


@pytest.mark.parametrize("change", ["pool_last", "no_mask", "not_causal"])
def test_towers_that_are_not_causal_end_pooled_keep_the_full_length(demo_clip, change):
    model = copy.deepcopy(demo_clip.model)
    if change == "pool_last":
        model.text_pool_type = "last"
    elif change == "no_mask":
        model.attn_mask = None
    else:
        model.attn_mask = torch.zeros_like(model.attn_mask)
    assert not causal_text_tower(model)
    enc = OpenClipEncoder(model, demo_clip.preprocess, demo_clip.tokenizer, "changed")
    assert not enc.shorten


def test_a_disagreeing_prefix_falls_back(demo_clip, monkeypatch):
    import models.open_clip_encoder as oce

    monkeypatch.setattr(oce, "encode_text_prefix", lambda model, text: encode_text_prefix(model, text) + 1)
    enc = OpenClipEncoder(demo_clip.model, demo_clip.preprocess, demo_clip.tokenizer, "demo-clip")
    assert not enc.shorten


def test_transformers_clip_pads_only_to_the_longest_and_stays_exact():
    """transformers CLIP already runs a single query at its own length; padding beside a longer one changes nothing."""
    from transformers import CLIPConfig, CLIPModel

    from models.hf_clip import HFClipEncoder

    torch.manual_seed(0)
    cfg = CLIPConfig(text_config={"hidden_size": 32, "intermediate_size": 64, "num_hidden_layers": 2,
                                  "num_attention_heads": 2},
                     vision_config={"hidden_size": 32, "intermediate_size": 64, "num_hidden_layers": 1,
                                    "num_attention_heads": 2, "image_size": 32, "patch_size": 16}, projection_dim=16)
    processor = _clip_processor()
    enc = HFClipEncoder(CLIPModel(cfg), processor, "tiny-hf-clip")
    alone = enc.encode_text([TEXTS[0]])
    batched = enc.encode_text(TEXTS[:2])
    np.testing.assert_allclose(batched[:1], alone, atol=1e-5)
    tok = processor.tokenizer([TEXTS[0]], padding=True, return_tensors="pt")
    assert tok.input_ids.shape[1] == enc.check_text(TEXTS[0]).n_tokens  # no padding to 77


def _clip_processor():
    import tempfile

    from transformers import CLIPImageProcessor, CLIPProcessor, CLIPTokenizer

    from bench.lookalike import clip_tokenizer_files

    with tempfile.TemporaryDirectory() as tmp:
        clip_tokenizer_files(Path(tmp))
        tokenizer = CLIPTokenizer.from_pretrained(tmp)
    return CLIPProcessor(image_processor=CLIPImageProcessor(), tokenizer=tokenizer)


def test_int8_text_mlps_are_opt_in_close_to_float_and_never_share_the_query_cache(demo_clip, tmp_path):
    from core.catalog import load_catalog
    from core.services import Services

    int8 = create_model("open_clip", Path("assets/models/demo-clip"), "demo-clip", text_int8=True)
    assert int8.text_int8 and not demo_clip.text_int8 and int8.shorten
    assert int8.revision != demo_clip.revision  # cached query embeddings are keyed by revision
    from models.open_clip_encoder import Int8Linear

    layers = [m for m in int8.model.transformer.modules() if isinstance(m, Int8Linear)]
    assert not any("quantized" in type(m).__module__ for m in int8.model.modules())  # no deprecated torch.ao layers
    assert len(layers) == 2 * len(int8.model.transformer.resblocks)
    cos = (int8.encode_text(TEXTS[:3]) * demo_clip.encode_text(TEXTS[:3])).sum(1)
    assert cos.min() > 0.98, cos
    # the image tower is untouched
    assert all(p.dtype == torch.float32 for p in int8.model.visual.parameters())
    # the catalog switch reaches the loader; a family without the switch refuses it by name
    catalog = tmp_path / "catalog.toml"
    src = Path("assets/models").resolve()
    catalog.write_text(f'[models.q]\nfamily = "open_clip"\nsource = "{src / "demo-clip"}"\ntext_int8 = true\n'
                       f'[models.c]\nfamily = "cnn_classifier"\nsource = "{src / "cnn-baseline"}"\ntext_int8 = true\n'
                       'tasks = ["categorise"]\n')
    services = Services(load_catalog(catalog))
    assert services.encoder("q").text_int8
    with pytest.raises(Exception, match="text_int8"):
        services.encoder("c")
