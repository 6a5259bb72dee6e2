"""A captioner that names only what its image tower sees, says where it is, and shows where it looked per word.

The dual encoder's image tower (`models.dual_encoder.BackboneTower`) classifies every cell of its grid: which seen
concept is drawn in front there, or none, against the MiniLM embeddings of the concept names. This captioner reads
that grid instead of generating words freely:
- a concept is named when its most confident cell reaches `threshold` (chosen on the val split for precision,
  `pipelines.grounded_captioner`), at most `max_objects` of them, most confident first;
- where it is comes from the probability mass of its cells (centre and extent), and a position word is written
  only where that centre is clearly inside the word's zone (the generator's own dead zones);
- the background's colour is the median colour of the picture where the grid is sure nothing is drawn, named by
  the world's nearest everyday colour;
- every word carries a map: an object's words (article, noun, position) its own cell probabilities, the
  background phrase the cells of no concept, the joining words the whole picture.
A picture where nothing reaches the threshold gets no invented objects: the caption says so, and, when the
ImageNet backbone is confident, what the picture looks like to it, marked as outside the demo world (an
ImageNet class is not a demo-world concept, so CHAIR never counts it as one).

Beam search does not apply: the caption is read off the grid, so `beam_size` is accepted and ignored.

Folder layout: `config.json` (GroundedConfig + `names`) + `model.safetensors` (the tower's trained parts, fp16,
and `names` (K, 384), the concept name embeddings); the tower's trunk comes from pip like the dual encoder's.
"""
from __future__ import annotations

import json
import logging
import threading
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from models.base import read_config
from models.captioner import Captioner, CaptionResult, detokenize, tokenize
from models.dual_encoder import BackboneTower, DualEncoderConfig, input_scaling, preprocess
from models.registry import register_family

log = logging.getLogger(__name__)
EDGE, MID = 0.3, 0.1  # the generator's zones (demo_world.free_scenes): "left" when cx < 0.3, "center" within 0.1
FILLS = 0.7  # an object whose extent is this wide fills the picture: no position word


@dataclass
class GroundedConfig:
    image_tower: str = "efficientnet-lite0"
    image_size: int = 192
    embed_dim: int = 384
    threshold: float = 0.5  # a concept is named when its best cell's probability reaches this
    max_objects: int = 4  # the world draws at most four
    background_floor: float = 0.9  # cells at least this sure that nothing is drawn there give the background colour
    photo_floor: float = 0.5  # ImageNet probability above which an unknown picture is described as a photograph
    revision: str | None = None


@dataclass(frozen=True)
class Detection:
    name: str
    score: float  # the best cell's probability
    heat: np.ndarray  # (g, g) this concept's probability per cell
    centre: tuple[float, float]  # (x, y) in [0, 1] over the model's square input
    extent: float  # side of the square the concept's cells cover, as a fraction of the picture


def position_words(centre: tuple[float, float], extent: float) -> str:
    """"at the top left", "on the right", "in the middle", ... or "" when no zone is clearly true."""
    if extent >= FILLS:
        return "filling the picture"
    cx, cy = centre
    h = "left" if cx < EDGE else "right" if cx > 1 - EDGE else "center" if abs(cx - 0.5) <= MID else None
    v = "top" if cy < EDGE else "bottom" if cy > 1 - EDGE else "middle" if abs(cy - 0.5) <= MID else None
    if v in ("top", "bottom") and h in ("left", "right"):
        return f"at the {v} {h}"
    if v in ("top", "bottom"):
        return f"at the {v}"
    if h in ("left", "right"):
        return f"on the {h}"
    return "in the middle" if (h, v) == ("center", "middle") else ""


class GroundedCaptioner(Captioner):
    max_beam = 10

    def __init__(self, tower: BackboneTower, names: list[str], name_emb: torch.Tensor, cfg: GroundedConfig, name: str):
        self.tower = tower.eval()
        self.names = names
        self.name_emb = name_emb  # (K, D)
        self.cfg = cfg
        self.name = name
        self.revision = cfg.revision
        self._imagenet = None  # the untouched ImageNet network, loaded on the first picture it must read
        self._imagenet_lock = threading.Lock()

    def square_box(self, size: tuple[int, int]) -> tuple[float, float, float, float]:
        side = max(size)
        x0, y0 = (side - size[0]) // 2 / side, (side - size[1]) // 2 / side
        return x0, y0, x0 + size[0] / side, y0 + size[1] / side

    def pixels(self, image: Image.Image) -> torch.Tensor:
        mean, std = input_scaling(DualEncoderConfig(image_tower=self.cfg.image_tower))
        return preprocess(image, self.cfg.image_size, mean, std)[None]  # (1, 3, S, S)

    @torch.inference_mode()
    def cell_probs(self, image: Image.Image) -> np.ndarray:
        """(g, g, 1 + K) per-cell probabilities: no concept first, then each concept of `names`."""
        fmap = self.tower.features(self.pixels(image))
        return self.tower.cell_logits(fmap, self.name_emb)[0].softmax(-1).numpy()

    def detect(self, probs: np.ndarray) -> list[Detection]:
        g = probs.shape[0]
        best = probs[..., 1:].reshape(-1, len(self.names)).max(0)  # (K,)
        order = [k for k in np.argsort(-best) if best[k] >= self.cfg.threshold][: self.cfg.max_objects]
        centres = (np.arange(g) + 0.5) / g
        out = []
        for k in order:
            heat = probs[..., 1 + k]
            mask = heat >= 0.5 * heat.max()  # the concept's own cells
            w = heat * mask
            cx, cy = float((w.sum(0) * centres).sum() / w.sum()), float((w.sum(1) * centres).sum() / w.sum())
            extent = float(max(mask.any(0).sum(), mask.any(1).sum()) / g)
            out.append(Detection(self.names[k], float(best[k]), heat, (cx, cy), extent))
        return out

    def background_colour(self, image: Image.Image, probs: np.ndarray) -> str | None:
        from demo_world.free_scenes import colour_name

        g = probs.shape[0]
        empty = probs[..., 0] >= self.cfg.background_floor  # (g, g)
        if not empty.any():
            return None
        x0, y0, x1, y1 = self.square_box(image.size)  # where the picture lies in the model's square
        side = max(image.size)
        square = Image.new("RGB", (side, side), (255, 255, 255))
        square.paste(image.convert("RGB"), (round(x0 * side), round(y0 * side)))
        cells = np.asarray(square.resize((g * 8, g * 8), Image.BILINEAR)).reshape(g, 8, g, 8, 3)
        pixels = cells.transpose(0, 2, 1, 3, 4)[empty].reshape(-1, 3)  # (n, 3)
        return colour_name(np.median(pixels, axis=0))

    def caption(self, image: Image.Image, beam_size: int = 3, max_len: int | None = None) -> CaptionResult:
        probs = self.cell_probs(image)
        g = probs.shape[0]
        whole = np.full((g, g), 1.0 / (g * g), np.float32)
        found = self.detect(probs)
        if not found:
            return self._unknown(image, whole)
        from demo_world.concepts import with_article

        words: list[tuple[str, np.ndarray]] = []
        for i, d in enumerate(found):
            if i:
                words.append(("and" if i == len(found) - 1 else ",", whole))
            heat = (d.heat / d.heat.sum()).astype(np.float32)
            phrase = f"{with_article(d.name)} {position_words(d.centre, d.extent)}".strip()
            words += [(w, heat) for w in tokenize(phrase)]
        colour = self.background_colour(image, probs)
        if colour is not None:
            empty = probs[..., 0] * (probs[..., 0] >= self.cfg.background_floor)
            bg = (empty / empty.sum()).astype(np.float32)
            words += [(w, bg) for w in tokenize(f"on a {colour} background")]
        tokens = [w for w, _ in words]
        score = float(np.mean([np.log(d.score) for d in found]))
        return CaptionResult(detokenize(tokens), tokens, np.stack([m for _, m in words]), score)

    def _unknown(self, image: Image.Image, whole: np.ndarray) -> CaptionResult:
        """No concept of the demo world reaches the threshold: say so, and what ImageNet sees if it is sure."""
        label, p, cam = self.imagenet_guess(image)
        if label is not None and p >= self.cfg.photo_floor:
            text = f"nothing from the demo world ; it looks like a photograph of {label}"
            maps = [whole] * len(tokenize("nothing from the demo world ;")) + [cam] * len(tokenize(f"it looks like a photograph of {label}"))
        else:
            text = "nothing from the demo world that i can name"
            maps = [whole] * len(tokenize(text))
        tokens = tokenize(text)
        return CaptionResult(detokenize(tokens), tokens, np.stack(maps).astype(np.float32), float(np.log(max(p, 1e-6))))

    @torch.inference_mode()
    def imagenet_guess(self, image: Image.Image) -> tuple[str | None, float, np.ndarray]:
        """ImageNet's top class for the picture, its probability and its class activation map on the grid."""
        from models.backbone import imagenet_classes, load_backbone

        with self._imagenet_lock:  # two first photos at once must not load it twice
            if self._imagenet is None:
                self._imagenet = load_backbone(self.cfg.image_tower)
        net = self._imagenet
        fmap = net.forward_features(self.pixels(image))  # (1, 1280, g, g)
        probs = net.forward_head(fmap).softmax(-1)[0]
        k = int(probs.argmax())
        cam = torch.relu(torch.einsum("c,chw->hw", net.classifier.weight[k], fmap[0])).numpy()
        cam = cam / cam.sum() if cam.sum() > 0 else np.full(cam.shape, 1.0 / cam.size)
        return imagenet_classes()[k], float(probs[k]), cam.astype(np.float32)


def save_grounded_captioner(tower: BackboneTower, names: list[str], name_emb: torch.Tensor, cfg: GroundedConfig,
                            out: Path, extra: dict | None = None) -> Path:
    from safetensors.torch import save_file

    from core.atomic import replace_folder

    state = {f"tower.{k}": v.detach().half().contiguous() for k, v in tower.shipped_state_dict().items()
             if not k.startswith("global_proj.")}
    state["names"] = name_emb.detach().half().contiguous()
    with replace_folder(out) as tmp:
        save_file(state, str(tmp / "model.safetensors"))
        (tmp / "config.json").write_text(json.dumps({**asdict(cfg), "names": names, **(extra or {})}, indent=2) + "\n")
    return out


@register_family("grounded_captioner", imports=["timm", "safetensors.torch", "models.backbone", "torchvision.models._meta",
                                               "demo_world.free_scenes", "demo_world.concepts"])
def load_grounded_captioner(folder: Path, name: str) -> GroundedCaptioner:
    from safetensors.torch import load_file

    cfg = read_config(folder, name, GroundedConfig, ("config.json", "model.safetensors"), "pipelines.grounded_captioner")
    names = json.loads((folder / "config.json").read_text())["names"]
    state = load_file(str(folder / "model.safetensors"))
    holder = torch.nn.Module()
    holder.image = BackboneTower(DualEncoderConfig(embed_dim=cfg.embed_dim, text_head="locked", image_tower=cfg.image_tower,
                                                   image_size=cfg.image_size))
    tower_state = {f"image.{k.removeprefix('tower.')}": v for k, v in state.items() if k.startswith("tower.")}
    load_weights_partial(holder, tower_state)
    return GroundedCaptioner(holder.image, names, state["names"].float(), cfg, name)


def load_weights_partial(holder: torch.nn.Module, state: dict[str, torch.Tensor]) -> None:
    """The tower's trained parts (its global head excepted, which captions do not use) over the pip trunk."""
    state = {k: v.float() for k, v in state.items()}
    missing, unexpected = holder.load_state_dict(state, strict=False)
    shipped = {f"image.{k}" for k in holder.image.shipped_state_dict() if not k.startswith("global_proj.")}
    wrong = [k for k in missing if k in shipped] + list(unexpected)
    if wrong:
        raise RuntimeError(f"model.safetensors does not fit the grounded captioner: {wrong[:5]}")
