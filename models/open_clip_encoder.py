"""open_clip models (CLIP-family) from a folder in open_clip's Hub layout.

The folder holds `open_clip_config.json` (`model_cfg` + `preprocess_cfg`) and `open_clip_model.safetensors`,
which is what `hf-hub:` open_clip repos contain, so a Hub snapshot and a local folder load the same way.
"""
from __future__ import annotations

import json
import logging
from pathlib import Path

import torch
from PIL import Image

from models.base import Encoder, TextCheck, weights_digest
from models.packed import pack_for_inference
from models.registry import register_family

log = logging.getLogger(__name__)
CONFIG_FILE = "open_clip_config.json"
WEIGHTS_FILE = "open_clip_model.safetensors"


# A query runs up to its real length rounded up to this many positions (shapes stay few; the saving stays).
TEXT_BUCKET = 8


class ModelFilesError(FileNotFoundError):
    pass


def causal_text_tower(model) -> bool:
    """Whether `model.encode_text` is CLIP's causal text tower pooled at the end token (argmax / eos): then the
    positions after the end token cannot change the embedding, and a query can stop there. open_clip's other text
    towers (bidirectional, a class token, pooled at the last position or not at all, an HF encoder) do not qualify."""
    mask = getattr(model, "attn_mask", None)
    if not all(hasattr(model, a) for a in ("transformer", "token_embedding", "positional_embedding", "ln_final")):
        return False
    if mask is None or getattr(model, "text_pool_type", None) not in ("argmax", "eos"):
        return False
    if getattr(model, "cls_emb", None) is not None:
        return False
    causal = torch.full_like(mask, float("-inf")).triu_(1)
    return mask.shape[0] == mask.shape[1] and torch.equal(mask, causal)


def _pool_index(model, text: torch.Tensor) -> torch.Tensor:
    """(B,) position the tower pools at, exactly as open_clip's `text_global_pool` picks it."""
    if model.text_pool_type == "argmax":
        return text.argmax(dim=-1)
    return (text == model.text_eos_id).int().argmax(dim=-1)


def encode_text_prefix(model, text: torch.Tensor, bucket: int = TEXT_BUCKET) -> torch.Tensor:
    """open_clip's `CLIP.encode_text` run on the first L positions only, L the furthest pooling position + 1
    rounded up to `bucket`: under a causal mask earlier positions never see later ones, so the pooled features
    are the full-length ones (to float rounding). Only for models where `causal_text_tower` holds."""
    from open_clip.transformer import text_global_pool

    n = text.shape[1]
    length = min(n, -(-(int(_pool_index(model, text).max()) + 1) // bucket) * bucket)
    text = text[:, :length]  # (B, L)
    cast_dtype = model.transformer.get_cast_dtype()
    x = model.token_embedding(text).to(cast_dtype)  # (B, L, W)
    x = x + model.positional_embedding[:length].to(cast_dtype)
    x = model.transformer(x, attn_mask=model.attn_mask[:length, :length])
    x = model.ln_final(x)  # (B, L, W)
    x = text_global_pool(x, text, model.text_pool_type, eos_token_id=getattr(model, "text_eos_id", None))  # (B, W)
    if model.text_projection is None:
        return x
    return model.text_projection(x) if isinstance(model.text_projection, torch.nn.Module) else x @ model.text_projection


class Int8Linear(torch.nn.Module):
    """`nn.Linear` computed in int8: weights quantized once (symmetric, one float32 scale per output channel),
    activations quantized per call (symmetric, one scale per token), the product accumulated in int32 by aten's
    `torch._int_mm` (the CPU kernel torchao's dynamic int8 layout uses), then rescaled to float32. A query of a few
    tokens reads a quarter of the weight bytes and runs int8 multiply-adds (VNNI). Replaces
    `torch.ao.quantization.quantize_dynamic` (deprecated), which quantized the same way with one activation scale
    per call."""

    def __init__(self, linear: torch.nn.Linear):
        super().__init__()
        w = linear.weight.detach().float()  # (N, K)
        scales = (w.abs().amax(dim=1) / 127).clamp_min(1e-12)  # (N,)
        q = torch.round(w / scales[:, None]).clamp(-127, 127).to(torch.int8)
        self.register_buffer("weight_int8_t", q.t().contiguous())  # (K, N): `_int_mm`'s layout
        self.register_buffer("scales", scales)
        self.register_buffer("bias", None if linear.bias is None else linear.bias.detach().float().clone())
        self.in_features, self.out_features = linear.in_features, linear.out_features

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x2 = x.reshape(-1, self.in_features).float()  # (M, K)
        x_scale = (x2.abs().amax(dim=1, keepdim=True) / 127).clamp_min(1e-12)  # (M, 1)
        xq = torch.round(x2 / x_scale).clamp(-127, 127).to(torch.int8)
        y = torch._int_mm(xq, self.weight_int8_t).float() * x_scale * self.scales  # (M, N)
        y = y.reshape(*x.shape[:-1], self.out_features)
        return y if self.bias is None else y + self.bias


def quantize_text_mlps(model) -> int:
    """int8 (`Int8Linear`: int8 weights, activations quantized per token) for the MLP layers of the text tower's residual
    blocks: two thirds of its weights and multiply-adds; attention stays float32. In place; returns how many layers
    changed. The embedding shifts slightly: opt-in per model (`text_int8 = true` in the catalog), with the shift and
    the retrieval change measured by `python -m bench.real_architectures`."""
    changed = 0
    for block in model.transformer.resblocks:
        for name, layer in list(block.mlp.named_children()):
            if isinstance(layer, torch.nn.Linear):
                setattr(block.mlp, name, Int8Linear(layer))
                changed += 1
    # open_clip reads the tower's dtype off the first MLP weight, which int8 layers no longer expose
    model.transformer.get_cast_dtype = lambda: torch.float32
    return changed


def _embedding_dim(model, tokenizer) -> int:
    if hasattr(model, "text_projection"):
        return int(model.text_projection.shape[1])
    if hasattr(model, "embed_dim"):
        return int(model.embed_dim)
    with torch.inference_mode():  # a custom text tower (MobileCLIP's) states it nowhere simpler
        return int(model.encode_text(tokenizer(["a"])).shape[-1])


class OpenClipEncoder(Encoder):
    def __init__(self, model, preprocess, tokenizer, name: str, revision: str | None = None, shorten: bool = True,
                 text_int8: bool = False, pack: bool = True):
        self.text_int8 = False
        self.model = model.eval()
        self.preprocess = preprocess
        self.tokenizer = tokenizer
        self.name = name
        self.revision = revision
        self.context_length = int(tokenizer.context_length)
        self.dim = _embedding_dim(model, tokenizer)
        # the text tower's linear layers prepacked for oneDNN (`models.packed`: the same float32 product, 2x faster
        # for a query of a few tokens); autograd and training still see plain layers
        self.packed_layers = pack_for_inference(model.transformer, rows_hint=2 * TEXT_BUCKET) \
            if pack and isinstance(getattr(model, "transformer", None), torch.nn.Module) else 0
        # stop the text tower at the query's end token when that is exact (checked once here, on this model, in
        # float32: int8 activations are quantized per call, so the two paths differ by quantization, not by code)
        self.shorten = shorten and causal_text_tower(model) and self._prefix_agrees()
        if text_int8:
            quantize_text_mlps(model)
            self.text_int8 = True
            self.revision = f"{revision or 'local'}+text-int8"  # other query embeddings: never share cache entries

    def check_text(self, text: str) -> TextCheck:
        ids = self.tokenizer.encode(text) if hasattr(self.tokenizer, "encode") else self.tokenizer.tokenizer(text).input_ids
        n = len(ids) + (2 if hasattr(self.tokenizer, "encode") else 0)  # SimpleTokenizer adds <sot> and <eot>
        return TextCheck(n, self.context_length)

    def _text_features(self, texts: list[str]) -> torch.Tensor:
        tokens = self.tokenizer(texts)  # (B, context_length), padded
        if self.shorten:
            return encode_text_prefix(self.model, tokens)  # (B, D)
        return self.model.encode_text(tokens)  # (B, D)

    def _prefix_agrees(self) -> bool:
        """The shortened tower against open_clip's own on one text: guards against a future open_clip whose
        `encode_text` does more than `encode_text_prefix` repeats."""
        with torch.inference_mode():
            tokens = self.tokenizer(["a photo of a dog on a blue background"])
            full, short = self.model.encode_text(tokens), encode_text_prefix(self.model, tokens)
        ok = full.shape == short.shape and torch.allclose(full, short, atol=1e-4, rtol=1e-4)
        if not ok:
            log.warning("%s: the shortened text tower disagrees with open_clip's; using the full context", self.name)
        return ok

    def pixels(self, images: list[Image.Image]) -> torch.Tensor:
        return torch.stack([self.preprocess(im.convert("RGB")) for im in images])  # (B, 3, H, W)

    def image_tower(self, pixels: torch.Tensor) -> torch.Tensor:
        return self.model.encode_image(pixels)  # (B, D)

    def view_box(self, size: tuple[int, int]) -> tuple[float, float, float, float]:
        from torchvision.transforms import CenterCrop

        if any(isinstance(t, CenterCrop) for t in getattr(self.preprocess, "transforms", [])):
            return super().view_box(size)  # resize the shortest side, centre crop: open_clip's default
        return 0.0, 0.0, 1.0, 1.0  # "squash": the whole image resized to the square

    @property
    def logit_scale(self) -> float:
        return float(self.model.logit_scale.detach().exp())


# open_clip's Hub layout: its config and safetensors weights (its tokenizer is bundled with open_clip, or named in
# the config as an HF tokenizer, whose files then sit beside them).
@register_family("open_clip", files=[CONFIG_FILE, WEIGHTS_FILE, "tokenizer.json", "tokenizer_config.json",
                                     "special_tokens_map.json", "vocab.json", "merges.txt", "spiece.model"],
                 imports=["open_clip", "open_clip.transformer", "torchvision.transforms", "timm.utils.model"])
def load_open_clip(folder: Path, name: str, text_int8: bool = False) -> OpenClipEncoder:
    import open_clip

    for required in (CONFIG_FILE, WEIGHTS_FILE):
        if not (folder / required).is_file():
            raise ModelFilesError(
                f"Model {name!r}: {required} is missing in {folder}. Rebuild it with the training pipeline or "
                "point its catalog source at a complete open_clip folder or hf-hub: repo."
            )
    model, preprocess = open_clip.create_model_from_pretrained(f"local-dir:{folder}", device="cpu", precision="fp32")
    if any(hasattr(m, "reparameterize") for m in model.modules()):  # MobileCLIP's towers: fuse the training-time
        from timm.utils.model import reparameterize_model          # branches into single convolutions (exact)

        model = reparameterize_model(model.eval(), inplace=True)
    tokenizer = open_clip.get_tokenizer(f"local-dir:{folder}")
    revision = json.loads((folder / CONFIG_FILE).read_text()).get("revision") or weights_digest(folder / WEIGHTS_FILE)
    log.info("loaded open_clip model %s from %s", name, folder)
    return OpenClipEncoder(model, preprocess, tokenizer, name, revision, text_int8=text_int8)
