"""Every registered family builds from a tiny local folder and encodes to normalised vectors."""
import json

import numpy as np
import pytest
import torch
from PIL import Image

from models.registry import UnknownModelError, available_families, create_model
from pipelines.train_clip import save_open_clip

TINY_OPEN_CLIP = {
    "embed_dim": 16,
    "vision_cfg": {"image_size": 32, "layers": [1, 1, 1, 1], "width": 8},
    "text_cfg": {"context_length": 12, "vocab_size": 49408, "width": 16, "heads": 2, "layers": 1},
}


@pytest.fixture(scope="module")
def tiny_open_clip(tmp_path_factory):
    import open_clip

    torch.manual_seed(0)
    model = open_clip.CLIP(**TINY_OPEN_CLIP)
    return save_open_clip(model, tmp_path_factory.mktemp("m") / "tiny-clip", TINY_OPEN_CLIP, {"revision": "r1"})


def _check_encoder(enc, dim):
    images = [Image.new("RGB", (40, 30), c) for c in ("red", "blue", "white")]
    xi = enc.encode_image(images)
    xt = enc.encode_text(["a dog", "a red car on a blue background", "犬"])
    for x in (xi, xt):
        assert x.shape == (3, dim) and x.dtype == np.float32
        assert np.allclose(np.linalg.norm(x, axis=1), 1, atol=1e-5)
    assert not np.allclose(xi[0], xi[1])
    assert enc.encode_text([]).shape == (0, dim)


def test_open_clip_family_round_trip(tiny_open_clip):
    enc = create_model("open_clip", tiny_open_clip, "tiny")
    _check_encoder(enc, 16)
    assert enc.context_length == 12 and enc.revision == "r1"
    assert not enc.check_text("a dog").truncated
    long = enc.check_text("word " * 40)
    assert long.truncated and long.n_tokens == 42
    # batched and one-by-one encodings agree
    texts = ["a cat", "a small cat at the top left", "a bus"]
    one_by_one = np.concatenate([enc.encode_text([t]) for t in texts])
    assert np.allclose(enc.encode_text(texts, batch_size=2), one_by_one, atol=1e-5)


def test_open_clip_weights_are_safetensors_fp16(tiny_open_clip):
    from safetensors.torch import load_file

    state = load_file(str(tiny_open_clip / "open_clip_model.safetensors"))
    assert all(v.dtype == torch.float16 for v in state.values())
    cfg = json.loads((tiny_open_clip / "open_clip_config.json").read_text())
    assert cfg["model_cfg"] == TINY_OPEN_CLIP and "preprocess_cfg" in cfg


def test_missing_weights_is_a_clear_error(tiny_open_clip, tmp_path):
    broken = tmp_path / "broken"
    broken.mkdir()
    (broken / "open_clip_config.json").write_text((tiny_open_clip / "open_clip_config.json").read_text())
    with pytest.raises(FileNotFoundError, match="open_clip_model.safetensors is missing"):
        create_model("open_clip", broken, "broken")


def test_unknown_family_lists_known_ones(tmp_path):
    with pytest.raises(UnknownModelError, match="open_clip"):
        create_model("no-such-family", tmp_path, "x")
    assert {"open_clip", "hf_clip", "siglip"} <= set(available_families())


def _clip_tokenizer_files(folder):
    """CLIP's BPE vocabulary, as shipped inside open_clip, written in the transformers layout."""
    import open_clip

    tok = open_clip.SimpleTokenizer()
    names = {"<start_of_text>": "<|startoftext|>", "<end_of_text>": "<|endoftext|>"}  # transformers' spelling
    (folder / "vocab.json").write_text(json.dumps({names.get(k, k): v for k, v in tok.encoder.items()}))
    merges = sorted(tok.bpe_ranks, key=tok.bpe_ranks.get)
    (folder / "merges.txt").write_text("#version: 0.2\n" + "\n".join(" ".join(m) for m in merges) + "\n")


@pytest.fixture(scope="module")
def tiny_hf_clip(tmp_path_factory):
    from transformers import CLIPConfig, CLIPImageProcessor, CLIPModel, CLIPProcessor, CLIPTokenizer

    folder = tmp_path_factory.mktemp("hf") / "tiny-hf-clip"
    folder.mkdir()
    torch.manual_seed(0)
    cfg = CLIPConfig(
        text_config={"vocab_size": 49408, "hidden_size": 16, "intermediate_size": 32, "num_hidden_layers": 1,
                     "num_attention_heads": 2, "max_position_embeddings": 16},
        vision_config={"hidden_size": 16, "intermediate_size": 32, "num_hidden_layers": 1, "num_attention_heads": 2,
                       "image_size": 32, "patch_size": 8},
        projection_dim=12,
    )
    CLIPModel(cfg).save_pretrained(folder, safe_serialization=True)
    _clip_tokenizer_files(folder)
    tokenizer = CLIPTokenizer(str(folder / "vocab.json"), str(folder / "merges.txt"))
    image_processor = CLIPImageProcessor(size={"shortest_edge": 32}, crop_size={"height": 32, "width": 32})
    CLIPProcessor(image_processor=image_processor, tokenizer=tokenizer).save_pretrained(folder)
    return folder


def test_hf_clip_family(tiny_hf_clip):
    enc = create_model("hf_clip", tiny_hf_clip, "tiny-hf")
    _check_encoder(enc, 12)
    assert enc.context_length == 16
    assert enc.check_text("word " * 30).truncated


def test_hf_clip_refuses_pickled_weights(tiny_hf_clip, tmp_path):
    import shutil

    folder = tmp_path / "pickled"
    shutil.copytree(tiny_hf_clip, folder)
    (folder / "model.safetensors").unlink()
    with pytest.raises(FileNotFoundError, match="only safetensors"):
        create_model("hf_clip", folder, "pickled")
