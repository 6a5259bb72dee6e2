"""Captioners: the interface, the vocabulary, and show-attend-tell (Xu et al., 2015) done properly.

Show-attend-tell: a CNN encodes the image into a grid of feature vectors; at every word an additive attention
over the grid gives a context vector and the weights `alpha` (one per cell, summing to one); an LSTM reads
[word embedding; gated context] and predicts the next word. Its hidden state starts from the mean feature. The
training loss adds the doubly-stochastic regulariser, which pushes every cell to receive, over the whole
caption, about one unit of attention.

The encoder is the demo CNN trunk (`encoder = "demo_cnn"`, 8×8 grid at 64 px, started from the dual encoder's
image tower) or, for real photos, a timm ResNet (`encoder = "timm:resnet50"`, 7×7 grid at 224 px) whose
pretrained weights come from the Hub (e.g. `hf-hub:timm/resnet50.a1_in1k`) when the pipeline starts training;
afterwards the whole captioner, encoder included, lives in its own `model.safetensors`.

Folder layout: `config.json` (CaptionerConfig) + `vocab.json` (the word list, specials first) +
`model.safetensors`.
"""
from __future__ import annotations

import json
import re
from abc import ABC, abstractmethod
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from torch import nn

from models.base import read_config
from models.beam_search import beam_search
from models.dual_encoder import MEAN, STD, conv_features, preprocess
from models.registry import register_family

PAD, SOS, EOS, UNK = "<pad>", "<sos>", "<eos>", "<unk>"
SPECIALS = (PAD, SOS, EOS, UNK)
_WORD = re.compile(r"[a-z0-9]+(?:[-'][a-z0-9]+)*|[,;.:]")
NO_REPEAT_NGRAM = 3  # the default guard; the demo captions never need a repeated word trigram


def tokenize(text: str) -> list[str]:
    """Lower-case words and punctuation marks."""
    return _WORD.findall(text.lower())


def detokenize(words: list[str]) -> str:
    return re.sub(r" ([,;.:])", r"\1", " ".join(words))


class Vocabulary:
    def __init__(self, words: list[str]):
        if tuple(words[:4]) != SPECIALS:
            raise ValueError(f"a vocabulary starts with {SPECIALS}")
        self.words = list(words)
        self.index = {w: i for i, w in enumerate(self.words)}
        self.pad, self.sos, self.eos, self.unk = range(4)

    @classmethod
    def build(cls, texts: list[str], min_count: int = 1) -> Vocabulary:
        counts: dict[str, int] = {}
        for t in texts:
            for w in tokenize(t):
                counts[w] = counts.get(w, 0) + 1
        return cls(list(SPECIALS) + sorted(w for w, c in counts.items() if c >= min_count))

    def __len__(self) -> int:
        return len(self.words)

    def encode(self, text: str, max_len: int) -> list[int]:
        """<sos> words <eos>, cut to `max_len` words."""
        return [self.sos] + [self.index.get(w, self.unk) for w in tokenize(text)][:max_len] + [self.eos]

    def decode(self, ids: list[int]) -> list[str]:
        return [self.words[i] for i in ids if i >= len(SPECIALS) or i == self.unk]


@dataclass
class CaptionResult:
    caption: str
    tokens: list[str]  # the generated words, one attention map each
    attention: np.ndarray  # (T, gh, gw): where the model looked for each token; each map sums to one
    score: float  # length-normalised log-probability


class Captioner(ABC):
    """Images -> a caption with one attention map per generated token."""

    name: str
    revision: str | None = None
    max_beam = 10

    @abstractmethod
    def caption(self, image: Image.Image, beam_size: int = 3, max_len: int = 30) -> CaptionResult: ...

    @abstractmethod
    def square_box(self, size: tuple[int, int]) -> tuple[float, float, float, float]:
        """Where the image lies in the square the model saw, as fractions (x0, y0, x1, y1) of its side."""


@dataclass
class CaptionerConfig:
    image_size: int = 64
    encoder: str = "demo_cnn"  # or "timm:<architecture>", e.g. "timm:resnet50"
    channels: list[int] = field(default_factory=lambda: [24, 48, 96, 192])  # the demo CNN trunk (the dual encoder's)
    embed_dim: int = 128  # word embeddings
    hidden: int = 256  # LSTM state
    attention_dim: int = 128
    dropout: float = 0.3
    max_len: int = 30
    # Words that never occur twice within one training caption (object names, in the demo world), learned from the
    # references by `once_words`; decoding uses each at most once. Empty: no such guard.
    once_words: list[str] = field(default_factory=list)
    revision: str | None = None


def once_words(captions: list[str], min_count: int = 5) -> list[str]:
    """Words seen at least `min_count` times in the references but never twice in the same caption."""
    seen: dict[str, int] = {}
    repeated: set[str] = set()
    for c in captions:
        counts: dict[str, int] = {}
        for w in tokenize(c):
            counts[w] = counts.get(w, 0) + 1
        for w, n in counts.items():
            seen[w] = seen.get(w, 0) + 1
            if n > 1:
                repeated.add(w)
    return sorted(w for w, n in seen.items() if n >= min_count and w not in repeated and w.isalpha())


class AdditiveAttention(nn.Module):
    """Bahdanau attention: score_i = w . tanh(W_f f_i + W_h h); alpha = softmax(score)."""

    def __init__(self, feature_dim: int, hidden: int, attention_dim: int):
        super().__init__()
        self.features = nn.Linear(feature_dim, attention_dim)
        self.hidden = nn.Linear(hidden, attention_dim)
        self.score = nn.Linear(attention_dim, 1)

    def forward(self, feats: torch.Tensor, feats_proj: torch.Tensor, h: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """feats (B, P, C), feats_proj (B, P, A) = self.features(feats), h (B, H) -> context (B, C), alpha (B, P)."""
        e = self.score(torch.tanh(feats_proj + self.hidden(h)[:, None, :])).squeeze(-1)  # (B, P)
        alpha = torch.softmax(e, dim=-1)
        return (alpha[:, :, None] * feats).sum(dim=1), alpha


class TimmTrunk(nn.Module):
    """A timm CNN without its pooling and classifier: (B, 3, H, W) in `preprocess`'s normalisation -> (B, C, h, w).

    `preprocess` normalises with CLIP's mean/std; the trunk re-normalises to what its weights were trained with.
    """

    def __init__(self, architecture: str):
        super().__init__()
        import timm

        self.model = timm.create_model(architecture, pretrained=False, num_classes=0, global_pool="")
        cfg = self.model.pretrained_cfg
        self.channels = self.model.num_features
        self.stride = self.model.feature_info[-1]["reduction"]
        scale = torch.tensor(STD) / torch.tensor(cfg.get("std", STD))
        shift = (torch.tensor(MEAN) - torch.tensor(cfg.get("mean", MEAN))) / torch.tensor(cfg.get("std", STD))
        self.register_buffer("scale", scale.view(1, 3, 1, 1), persistent=False)
        self.register_buffer("shift", shift.view(1, 3, 1, 1), persistent=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.model.forward_features(x * self.scale + self.shift)

    def load_pretrained(self, folder: Path) -> None:
        """Weights as timm publishes them on the Hub (`model.safetensors`); the classifier is dropped."""
        from safetensors.torch import load_file

        state = load_file(str(Path(folder) / "model.safetensors"))
        arch = self.model.default_cfg.get("architecture")
        try:
            missing, unexpected = self.model.load_state_dict(state, strict=False)
        except RuntimeError as e:  # same names, other shapes
            raise ValueError(f"{folder} does not hold {arch} weights: {str(e).splitlines()[1].strip()}") from None
        head = self.model.default_cfg.get("classifier", "fc")
        unexpected = [k for k in unexpected if not k.startswith(head + ".")]
        if missing or unexpected:
            raise ValueError(f"{folder} does not hold {arch} weights: missing {missing[:3]}, unexpected {unexpected[:3]}")


def make_trunk(cfg: CaptionerConfig) -> tuple[nn.Module, int, int]:
    """(encoder, feature channels, stride) for `cfg.encoder`."""
    if cfg.encoder == "demo_cnn":
        return conv_features(cfg.channels), cfg.channels[-1], 8
    if cfg.encoder.startswith("timm:"):
        trunk = TimmTrunk(cfg.encoder.removeprefix("timm:"))
        return trunk, trunk.channels, trunk.stride
    raise ValueError(f"unknown captioner encoder {cfg.encoder!r}: use 'demo_cnn' or 'timm:<architecture>'")


class ShowAttendTell(nn.Module):
    def __init__(self, cfg: CaptionerConfig, vocab_size: int):
        super().__init__()
        self.cfg = cfg
        self.encoder, c, self.stride = make_trunk(cfg)
        self.feature_dim = c
        self.embed = nn.Embedding(vocab_size, cfg.embed_dim, padding_idx=0)
        self.attention = AdditiveAttention(c, cfg.hidden, cfg.attention_dim)
        self.gate = nn.Linear(cfg.hidden, c)
        self.init_h, self.init_c = nn.Linear(c, cfg.hidden), nn.Linear(c, cfg.hidden)
        self.lstm = nn.LSTMCell(cfg.embed_dim + c, cfg.hidden)
        self.dropout = nn.Dropout(cfg.dropout)
        self.out = nn.Linear(cfg.hidden, vocab_size)

    def encode(self, images: torch.Tensor) -> torch.Tensor:
        """(B, 3, H, W) -> (B, P, C) grid features, P = (H/stride) * (W/stride), row-major."""
        return self.encoder(images).flatten(2).transpose(1, 2)

    def init_state(self, feats: torch.Tensor) -> tuple[torch.Tensor, ...]:
        """(h, c, feats, feats_proj) for a batch of grids."""
        mean = feats.mean(dim=1)
        return torch.tanh(self.init_h(mean)), torch.tanh(self.init_c(mean)), feats, self.attention.features(feats)

    def step(self, words: torch.Tensor, state: tuple) -> tuple[torch.Tensor, torch.Tensor, tuple]:
        """One word for each row: (B,) ids -> logits (B, V), alpha (B, P), new state."""
        logits, alpha, _, state = self._step(words, state)
        return logits, alpha, state

    def _step(self, words: torch.Tensor, state: tuple) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, tuple]:
        h, c, feats, feats_proj = state
        context, alpha = self.attention(feats, feats_proj, h)  # (B, C), (B, P)
        gated = torch.sigmoid(self.gate(h)) * context  # the gating scalar per channel (Xu et al., 4.2.1)
        h, c = self.lstm(torch.cat([self.embed(words), gated], dim=-1), (h, c))
        return self.out(self.dropout(h)), alpha, context, (h, c, feats, feats_proj)

    def forward(self, feats: torch.Tensor, tokens: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Teacher forcing. feats (B, P, C), tokens (B, T) starting with <sos> ->
        logits (B, T-1, V), alphas (B, T-1, P), attended contexts (B, T-1, C)."""
        state = self.init_state(feats)
        logits, alphas, contexts = [], [], []
        for t in range(tokens.shape[1] - 1):
            out, alpha, context, state = self._step(tokens[:, t], state)
            logits.append(out)
            alphas.append(alpha)
            contexts.append(context)
        return torch.stack(logits, dim=1), torch.stack(alphas, dim=1), torch.stack(contexts, dim=1)


def caption_loss(logits: torch.Tensor, alphas: torch.Tensor, targets: torch.Tensor, pad: int, alpha_c: float = 1.0) -> torch.Tensor:
    """Cross-entropy on the next word plus the doubly-stochastic attention regulariser.

    logits (B, T, V), alphas (B, T, P), targets (B, T) (the tokens after <sos>, padded with `pad`).
    The regulariser, alpha_c * mean_i (1 - sum_t alpha_ti)^2 over the non-pad steps, is scaled so that
    "one unit of attention per cell" means sum_t alpha_ti = T_valid / P, i.e. attention spread over the caption.
    """
    mask = (targets != pad).float()  # (B, T)
    ce = nn.functional.cross_entropy(logits.transpose(1, 2), targets, ignore_index=pad)
    total = (alphas * mask[:, :, None]).sum(dim=1)  # (B, P)
    expected = mask.sum(dim=1, keepdim=True) / alphas.shape[-1]  # (B, 1)
    return ce + alpha_c * ((expected - total) ** 2).mean()


class ShowAttendTellCaptioner(Captioner):
    def __init__(self, model: ShowAttendTell, vocab: Vocabulary, name: str):
        self.model = model.eval()
        self.vocab = vocab
        self.name = name
        self.revision = model.cfg.revision
        self.grid = model.cfg.image_size // model.stride
        self.once = frozenset(vocab.index[w] for w in model.cfg.once_words if w in vocab.index)

    def square_box(self, size: tuple[int, int]) -> tuple[float, float, float, float]:
        side = max(size)
        x0, y0 = (side - size[0]) // 2 / side, (side - size[1]) // 2 / side
        return x0, y0, x0 + size[0] / side, y0 + size[1] / side

    @torch.inference_mode()
    def caption(self, image: Image.Image, beam_size: int = 3, max_len: int | None = None,
                no_repeat_ngram: int = NO_REPEAT_NGRAM) -> CaptionResult:
        feats = self.model.encode(preprocess(image, self.model.cfg.image_size)[None])  # (1, P, C)

        def step(words, state):
            logits, alpha, state = self.model.step(words, state)
            return torch.log_softmax(logits, dim=-1), alpha, state

        best = beam_search(step, self.model.init_state(feats), sos=self.vocab.sos, eos=self.vocab.eos,
                           beam_size=beam_size, max_len=max_len or self.model.cfg.max_len,
                           no_repeat_ngram=no_repeat_ngram, forbidden=(self.vocab.pad, self.vocab.sos, self.vocab.unk),
                           once=self.once if no_repeat_ngram else frozenset())[0]
        words = self.vocab.decode(best.tokens)
        maps = torch.stack(best.alphas).view(-1, self.grid, self.grid).numpy() if best.alphas else np.zeros((0, self.grid, self.grid))
        return CaptionResult(detokenize(words), words, maps.astype(np.float32), best.normalised)


def save_captioner(model: ShowAttendTell, vocab: Vocabulary, out: Path, extra: dict | None = None) -> Path:
    from safetensors.torch import save_file

    from core.atomic import replace_folder

    with replace_folder(out) as tmp:
        save_file({k: v.contiguous() for k, v in model.state_dict().items()}, str(tmp / "model.safetensors"))
        (tmp / "vocab.json").write_text(json.dumps(vocab.words) + "\n")
        (tmp / "config.json").write_text(json.dumps({**asdict(model.cfg), **(extra or {})}, indent=2) + "\n")
    return out


@register_family("show_attend_tell", imports=["timm", "safetensors.torch"])
def load_show_attend_tell(folder: Path, name: str) -> ShowAttendTellCaptioner:
    from safetensors.torch import load_file

    cfg = read_config(folder, name, CaptionerConfig, ("config.json", "vocab.json", "model.safetensors"),
                      "pipelines.train_captioner")
    vocab = Vocabulary(json.loads((folder / "vocab.json").read_text()))
    model = ShowAttendTell(cfg, len(vocab))
    model.load_state_dict(load_file(str(folder / "model.safetensors")))
    return ShowAttendTellCaptioner(model, vocab, name)
