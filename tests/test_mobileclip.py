"""MobileCLIP2 from open_clip's Hub layout (look-alike repo: open_clip's config, random weights): the loader fuses
the towers' training-time branches for inference, and the fused model gives the unfused one's embeddings."""
import numpy as np
import pytest
import torch

from bench.lookalike import MOBILECLIP2, Plan, mobileclip2, photo
from models.registry import create_model


@pytest.mark.slow
def test_mobileclip2_s0_loads_fused_and_matches_the_training_time_model(tmp_path):
    import open_clip

    mobileclip2(tmp_path, "MobileCLIP2-S0", Plan())
    assert sorted(p.name for p in tmp_path.iterdir()) == ["open_clip_config.json", "open_clip_model.safetensors"]
    assert MOBILECLIP2["MobileCLIP2-S0"] == open_clip.get_pretrained_cfg("MobileCLIP2-S0", "dfndr2b")["hf_hub"].rstrip("/")
    fused = create_model("open_clip", tmp_path, "mobileclip2-s0")
    unfused, _ = open_clip.create_model_from_pretrained(f"local-dir:{tmp_path}", device="cpu", precision="fp32")
    unfused.eval()
    reparameterisable = [m for m in unfused.modules() if hasattr(m, "reparameterize")]
    assert reparameterisable  # MobileOne / RepMixer blocks with training-time branches
    # after fusing, no block keeps its training-time branches
    assert all(getattr(m, "rbr_skip", None) is None and not getattr(m, "rbr_conv", None)
               for m in fused.model.modules() if hasattr(m, "reparameterize"))
    image = photo(np.random.default_rng(0), (320, 240))
    with torch.inference_mode():
        want_image = torch.nn.functional.normalize(unfused.encode_image(fused.pixels([image])), dim=-1).numpy()
        want_text = torch.nn.functional.normalize(unfused.encode_text(fused.tokenizer(["a dog on the grass"])), dim=-1).numpy()
    np.testing.assert_allclose(fused.encode_image([image]), want_image, atol=1e-4)
    np.testing.assert_allclose(fused.encode_text(["a dog on the grass"]), want_text, atol=1e-5)
    assert fused.dim == 512 and not fused.shorten  # its text tower has no causal mask: no end-token shortcut
