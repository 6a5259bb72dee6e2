"""Linear and attention layers prepacked for oneDNN (`models.packed`): the same float32 products as PyTorch's
layers, to rounding; the plain layers wherever autograd, another dtype or an unsupported call needs them."""
from __future__ import annotations

import copy

import pytest
import torch

from models import packed
from models.packed import PackedLinear, PackedMultiheadAttention, pack_for_inference, pack_linears

pytestmark = pytest.mark.skipif(not packed.available(), reason="this build of torch has no oneDNN")


def _close(a: torch.Tensor, b: torch.Tensor) -> None:
    torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("rows", [1, 3, 16, 77])
def test_packed_linear_equals_linear(rows):
    torch.manual_seed(rows)
    lin = torch.nn.Linear(64, 96)
    p = PackedLinear(lin, rows_hint=4)
    x = torch.randn(2, rows, 64)
    with torch.inference_mode():
        _close(p(x), lin(x))
    with torch.no_grad():
        _close(p(x), lin(x))
    assert p.weight is lin.weight and p.bias is lin.bias


def test_packed_linear_without_bias_and_in_other_dtypes():
    lin = torch.nn.Linear(32, 8, bias=False)
    p = PackedLinear(lin, rows_hint=4)
    x = torch.randn(5, 32)
    with torch.inference_mode():
        _close(p(x), lin(x))
    lin64 = torch.nn.Linear(32, 8).double()
    p64 = PackedLinear(lin64, rows_hint=4)
    with torch.inference_mode():  # another dtype: the plain layer
        torch.testing.assert_close(p64(x.double()), lin64(x.double()), rtol=0, atol=0)


def test_packed_linear_repacks_after_the_weight_changes_and_trains_as_a_plain_layer():
    torch.manual_seed(0)
    lin = torch.nn.Linear(16, 16)
    p = PackedLinear(copy.deepcopy(lin), rows_hint=4)
    x = torch.randn(3, 16)
    with torch.inference_mode():
        before = p(x)
    opt = torch.optim.SGD(p.parameters(), lr=0.5)
    loss = p(x).square().sum()  # autograd on: the plain layer, with gradients for the shared parameters
    loss.backward()
    assert p.weight.grad is not None
    opt.step()  # changes the weight in place: the packed copy is stale
    with torch.inference_mode():
        after = p(x)
        _close(after, torch.nn.functional.linear(x, p.weight, p.bias))
    assert not torch.allclose(before, after)


def test_pack_linears_replaces_plain_linears_only_and_keeps_the_state_dict():
    net = torch.nn.Sequential(torch.nn.Linear(8, 8), torch.nn.ReLU(), torch.nn.Sequential(torch.nn.Linear(8, 4)),
                              torch.nn.MultiheadAttention(8, 2, batch_first=True))
    keys = list(net.state_dict())
    assert pack_linears(net, rows_hint=2, skip=(torch.nn.MultiheadAttention,)) == 2
    assert isinstance(net[0], PackedLinear) and isinstance(net[2][0], PackedLinear)
    assert type(net[3].out_proj) is not PackedLinear  # attention's own projection: read by its forward directly
    assert list(net.state_dict()) == keys


@pytest.mark.parametrize("mask", ["causal float", "bool", None])
def test_packed_attention_equals_pytorch_attention(mask):
    torch.manual_seed(1)
    attn = torch.nn.MultiheadAttention(32, 4, batch_first=True)
    ref = copy.deepcopy(attn)
    p = PackedMultiheadAttention(attn, rows_hint=8)
    x = torch.randn(2, 11, 32)
    m = None
    if mask == "causal float":
        m = torch.full((11, 11), float("-inf")).triu_(1)
    elif mask == "bool":
        m = torch.ones(11, 11, dtype=torch.bool).triu_(1)
    with torch.inference_mode():
        _close(p(x, x, x, need_weights=False, attn_mask=m)[0], ref(x, x, x, need_weights=False, attn_mask=m)[0])
        out, weights = p(x, x, x, need_weights=True, attn_mask=m)  # weights asked for: PyTorch's forward
        assert weights is not None
    assert list(p.state_dict()) == list(ref.state_dict())
    twin = copy.deepcopy(p)  # after a call: the packed weights stay behind, the copy packs its own
    with torch.inference_mode():
        _close(twin(x, x, x, need_weights=False, attn_mask=m)[0], ref(x, x, x, need_weights=False, attn_mask=m)[0])
    in_proj, out_proj = twin._packed_projections
    assert in_proj.weight is twin.in_proj_weight and out_proj.weight is twin.out_proj.weight


def test_packed_open_clip_text_tower_matches_the_plain_one():
    import open_clip

    torch.manual_seed(0)
    model = open_clip.create_model("ViT-B-32")  # random weights: the arithmetic, nothing about quality
    model.eval()
    plain = copy.deepcopy(model)
    tokens = open_clip.get_tokenizer("ViT-B-32")(["a dog on a blue background", "two cats"])
    assert pack_for_inference(model.transformer, rows_hint=16) == 12 * 3  # per block: attention, c_fc, c_proj
    with torch.inference_mode():
        _close(model.encode_text(tokens), plain.encode_text(tokens))
    x = model.encode_text(tokens)  # autograd on: plain layers, a graph to the parameters
    assert x.requires_grad


def test_dual_encoder_query_equals_sentence_transformers_on_plain_minilm():
    """The bundled dual encoder's text path (MiniLM packed; one query through sentence-transformers' modules
    without `encode`) against sentence-transformers' `encode` on a plain MiniLM."""
    from pathlib import Path

    from core.catalog import load_catalog
    from models.dual_encoder import MINILM, load_sentence_encoder
    from models.registry import create_model

    spec = load_catalog().model("dual-minilm-cnn")
    enc = create_model(spec.family, Path(spec.source), spec.name)
    assert enc.packed_layers > 0
    plain = load_sentence_encoder(MINILM)
    texts = ["a dog on a blue background", "an olive", "two red umbrellas at the top left of a picture"]
    ref = plain.encode(texts, convert_to_tensor=True, normalize_embeddings=True, show_progress_bar=False)
    one = torch.cat([enc.sentence_embeddings([t]) for t in texts])
    _close(one, ref)
    _close(enc.sentence_embeddings(texts), ref)  # a batch: `encode`, on the packed layers
