"""Linear layers with their weights prepacked for oneDNN, for inference on CPU.

A query of a few tokens (a text query, a caption's next token for a few beams) multiplies a handful of rows by
every weight matrix of the model: the time goes into streaming the weights through the matrix kernel, and the
kernel behind `nn.Linear` does that slowly for so few rows. oneDNN's inner-product primitive with the weights
reordered once into its blocked layout (`torch.ops.mkldnn._reorder_linear_weight`, the layout PyTorch's own
compiler uses for frozen CPU models) runs the same float32 product 2-3x faster on this machine
(`python -m bench.real_architectures`). The result is the float32 product summed in another order: equal to
`nn.Linear` to float rounding (tests/test_packed.py), not bit for bit.

`PackedLinear` keeps the original `weight` and `bias` parameters (state dicts, `.to()`, training see a plain
linear layer) and uses the packed copy only where it is valid: autograd off, float32 on CPU, and the weight
unchanged since it was packed (its version counter; an optimizer step repacks on the next call).
"""
from __future__ import annotations

import logging

import torch
import torch.nn.functional as F

log = logging.getLogger(__name__)


def available() -> bool:
    """oneDNN and the two ops this module uses are in this build of torch."""
    return (torch.backends.mkldnn.is_available() and hasattr(torch.ops.mkldnn, "_reorder_linear_weight")
            and hasattr(torch.ops.mkldnn, "_linear_pointwise"))


class PackedLinear(torch.nn.Linear):
    """`nn.Linear` whose inference forward uses a oneDNN-packed copy of its weight (module docstring)."""

    def __init__(self, linear: torch.nn.Linear, rows_hint: int):
        torch.nn.Module.__init__(self)
        self.in_features, self.out_features = linear.in_features, linear.out_features
        self.weight, self.bias = linear.weight, linear.bias  # the same parameters, shared
        self.rows_hint = rows_hint
        self._packed: torch.Tensor | None = None
        self._packed_version = -1

    def __getstate__(self):
        """Copies and pickles leave the packed weight behind (oneDNN's opaque tensors have no storage to copy);
        the copy packs its own on its first call."""
        state = super().__getstate__().copy()
        state["_packed"], state["_packed_version"] = None, -1
        return state

    def _packed_weight(self) -> torch.Tensor:
        version = self.weight._version
        if self._packed is None or version != self._packed_version:
            self._packed = torch.ops.mkldnn._reorder_linear_weight(self.weight.detach(), batch_size=self.rows_hint)
            self._packed_version = version
        return self._packed

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if (torch.is_grad_enabled() and (x.requires_grad or self.weight.requires_grad)) or x.dtype != torch.float32 \
                or self.weight.dtype != torch.float32 or x.device.type != "cpu" or self.weight.device.type != "cpu":
            return F.linear(x, self.weight, self.bias)
        shape = x.shape
        y = torch.ops.mkldnn._linear_pointwise(x.reshape(-1, self.in_features).contiguous(), self._packed_weight(),
                                               self.bias, "none", [], "")
        return y.reshape(*shape[:-1], self.out_features)


def pack_linears(module: torch.nn.Module, rows_hint: int, skip: tuple[type, ...] = ()) -> int:
    """Replace every plain `nn.Linear` below `module` (exact type: subclasses such as quantized or
    attention-internal layers are left alone) by a `PackedLinear` sharing its parameters. In place; returns how
    many layers changed, 0 where this build of torch lacks oneDNN."""
    if not available():
        log.info("oneDNN not available: linear layers left unpacked")
        return 0
    changed = 0
    for parent in module.modules():
        if isinstance(parent, skip):
            continue
        for name, child in list(parent.named_children()):
            if type(child) is torch.nn.Linear:
                setattr(parent, name, PackedLinear(child, rows_hint))
                changed += 1
    return changed


class PackedMultiheadAttention(torch.nn.MultiheadAttention):
    """`nn.MultiheadAttention` (batch first, self-attention) whose inference forward runs its input and output
    projections as packed linear layers and the attention itself through `scaled_dot_product_attention`, as
    PyTorch's own forward does; any other call (autograd, attention weights asked for, a key padding mask, keys
    other than the queries) goes to PyTorch's forward unchanged."""

    def __init__(self, attn: torch.nn.MultiheadAttention, rows_hint: int):
        torch.nn.Module.__init__(self)
        self.__dict__.update(attn.__dict__)  # the same parameters, submodules and settings
        self._parameters, self._buffers, self._modules = dict(attn._parameters), dict(attn._buffers), dict(attn._modules)
        in_proj = PackedLinear(torch.nn.Linear(1, 1), rows_hint)  # with in_proj's parameters, set below
        in_proj.in_features, in_proj.out_features = attn.embed_dim, 3 * attn.embed_dim
        in_proj.weight, in_proj.bias = attn.in_proj_weight, attn.in_proj_bias
        # plain attributes, not submodules: the state dict keeps exactly nn.MultiheadAttention's keys
        object.__setattr__(self, "_packed_projections", (in_proj, PackedLinear(attn.out_proj, rows_hint)))

    def _fast(self, query, key, value, key_padding_mask, need_weights) -> bool:
        return (not torch.is_grad_enabled() and self.batch_first and query is key and key is value
                and query.dim() == 3 and key_padding_mask is None and not need_weights and self._qkv_same_embed_dim
                and self.in_proj_weight is not None and self.bias_k is None and self.bias_v is None
                and not self.add_zero_attn and query.dtype == torch.float32 and query.device.type == "cpu")

    def forward(self, query, key, value, key_padding_mask=None, need_weights=True, attn_mask=None,
                average_attn_weights=True, is_causal=False):
        if not self._fast(query, key, value, key_padding_mask, need_weights):
            return super().forward(query, key, value, key_padding_mask=key_padding_mask, need_weights=need_weights,
                                   attn_mask=attn_mask, average_attn_weights=average_attn_weights, is_causal=is_causal)
        b, n, d = query.shape
        h = self.num_heads
        in_proj, out_proj = self._packed_projections
        q, k, v = in_proj(query).view(b, n, 3, h, d // h).permute(2, 0, 3, 1, 4)  # each (B, H, L, D/H)
        if attn_mask is not None and attn_mask.dtype == torch.bool:
            attn_mask = torch.zeros_like(attn_mask, dtype=q.dtype).masked_fill_(attn_mask, float("-inf"))
        x = F.scaled_dot_product_attention(q, k, v, attn_mask=attn_mask, dropout_p=0.0,
                                           is_causal=is_causal and attn_mask is None)  # (B, H, L, D/H)
        return out_proj(x.transpose(1, 2).reshape(b, n, d)), None


def pack_for_inference(module: torch.nn.Module, rows_hint: int) -> int:
    """`pack_linears`, and every self-attention `nn.MultiheadAttention` below `module` as a
    `PackedMultiheadAttention`. In place; returns how many layers changed."""
    if not available():
        return 0
    changed = 0
    for parent in list(module.modules()):
        for name, child in list(parent.named_children()):
            if type(child) is torch.nn.MultiheadAttention:
                setattr(parent, name, PackedMultiheadAttention(child, rows_hint))
                changed += 1
    return changed + pack_linears(module, rows_hint, skip=(torch.nn.MultiheadAttention,))
