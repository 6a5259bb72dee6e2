"""The Hub models' compute on this machine, before and after issue 12's changes: random weights of the exact
architectures (OpenCLIP ViT-B/32, SigLIP base, BLIP base; `bench.lookalike`'s tokenizers and processors), so the
cost is the real one and nothing about quality is.

    python -m bench.real_architectures [--repeats 5] [--out bench/results/real_architectures.json]

Before and after run in the same process, interleaved call by call (the CPUs are shared: a busy neighbour slows
both alike), with the app's thread settings (`app.configure_threads`: 2 torch threads). Each figure is the p50 of
`repeats` calls after one warm-up; the ratio before/after is the robust figure on a noisy machine.
"""
from __future__ import annotations

import argparse
import gc
import os
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

from bench import save_result
from bench.search_latency import machine

# Queries of at most 12 CLIP tokens, special tokens included (checked at run time)
QUERIES = ["a dog running on the grass", "two children playing on the beach", "a man in a red shirt climbing a rock",
           "a dog on a blue background", "a small cat at the top left", "a rocket and a pizza",
           "a laptop isolated on white", "a woman riding a bike in the city"]
GOALS_MS = {"text_query": 15, "categorise": 400, "siglip_image_search": 400, "blip_caption": 2000}


def interleaved(variants: dict[str, Callable[[int], object]], repeats: int) -> dict[str, dict]:
    """p50 / p95 ms of each variant, called in turn (variant(i) for i in range(repeats)) after one warm-up each."""
    for fn in variants.values():
        fn(0)
    times: dict[str, list[float]] = {name: [] for name in variants}
    for i in range(repeats):
        for name, fn in variants.items():
            t0 = time.perf_counter()
            fn(i)
            times[name].append((time.perf_counter() - t0) * 1000)
    return {name: {"p50_ms": float(np.median(v)), "p95_ms": float(np.percentile(v, 95)), "n": len(v)}
            for name, v in times.items()}


def vit_b_32():
    import open_clip
    import torch

    from models.open_clip_encoder import OpenClipEncoder

    torch.manual_seed(0)
    model, _, preprocess = open_clip.create_model_and_transforms("ViT-B-32")  # random weights
    tokenizer = open_clip.get_tokenizer("ViT-B-32")
    import copy

    # before: open_clip's own full-length tower, plain linear layers; after: the app's (stops at the end token,
    # linear layers prepacked for oneDNN); each its own copy of the same weights
    before = OpenClipEncoder(copy.deepcopy(model), preprocess, tokenizer, "vit-b-32-random", shorten=False, pack=False)
    int8 = OpenClipEncoder(copy.deepcopy(model), preprocess, tokenizer, "vit-b-32-random", text_int8=True)
    return before, OpenClipEncoder(model, preprocess, tokenizer, "vit-b-32-random"), int8


def text_query(full, short, int8, repeats: int) -> dict:
    from core import search

    tokens = [short.check_text(q).n_tokens for q in QUERIES]
    assert max(tokens) <= 12, tokens
    for q in QUERIES:
        search.query_embedding(short, q)  # the repeated queries below hit the cache
    n = len(QUERIES)
    r = interleaved({"before (context 77)": lambda i: full.encode_text([QUERIES[i % n]]),
                     "after (stops at the end token, packed layers)": lambda i: short.encode_text([QUERIES[i % n]]),
                     "after, repeated query (cache)": lambda i: search.query_embedding(short, QUERIES[i % n]),
                     "after, int8 text MLPs (opt-in)": lambda i: int8.encode_text([QUERIES[i % n]])},
                    repeats * n)
    diff = float(np.abs(full.encode_text(QUERIES) - short.encode_text(QUERIES)).max())
    cos = (short.encode_text(QUERIES) * int8.encode_text(QUERIES)).sum(1)  # both L2-normalised
    return {"max_tokens": max(tokens), "max_abs_embedding_difference": diff, "timings": r,
            "int8_min_cosine_to_float": float(cos.min())}


def int8_on_demo_clip(n_images: int = 1000) -> dict:
    """What int8 text MLPs cost in retrieval on the trained demo CLIP: t2i / i2t Recall@K on the open-vocabulary
    world's test split (regenerated, seed 0), float32 and int8 text towers, same image embeddings."""
    from core.catalog import load_catalog
    from demo_world.free_corpus import build_free_split, undecoded
    from evaluation.retrieval import recall_at_k
    from models.registry import create_model
    from pipelines.build_index import embed_images

    spec = load_catalog().model("demo-clip")
    fp32 = create_model(spec.family, Path(spec.source), spec.name)
    int8 = create_model(spec.family, Path(spec.source), spec.name, text_int8=True)
    data = build_free_split("scenes", "test", n_images)
    image_emb = embed_images(fp32, undecoded(data))
    captions = [c for caps in data["captions"] for c in caps]
    owner = np.repeat(np.arange(len(data)), [len(c) for c in data["captions"]])
    out = {}
    for name, enc in (("float32", fp32), ("int8 text MLPs", int8)):
        out[name] = recall_at_k(enc.encode_text(captions), image_emb, owner)
    cos = (fp32.encode_text(captions) * int8.encode_text(captions)).sum(1)
    out["min_cosine_to_float"], out["mean_cosine_to_float"] = float(cos.min()), float(cos.mean())
    out["n_images"], out["n_captions"] = n_images, len(captions)
    return out


def _categorise_before(encoder, image):
    """Categorise's gradient heat-map as it was: `encode_image` to score the classes, then a second forward with
    autograd and a full `.backward()` (weight gradients computed, and left on the model)."""
    import torch

    from core.categorise import class_embeddings
    from core.explain import _onto_image_grid, _patch_footprint, _unit
    from models.zero_shot import catalogue_classes, zero_shot_probs

    labels = catalogue_classes()
    class_emb, _ = class_embeddings(encoder, labels, "descriptive")
    p = zero_shot_probs(encoder.encode_image([image]), class_emb, encoder.logit_scale)[0]
    target = class_emb[int(np.argmax(p))]
    with torch.enable_grad():
        x = encoder.pixels([image.convert("RGB")]).detach().requires_grad_(True)
        emb = torch.nn.functional.normalize(encoder.image_tower(x).float(), dim=-1)
        (emb[0] @ torch.as_tensor(target, dtype=emb.dtype)).backward()
    rel = (x.grad * x.detach()).sum(dim=1)[0].clamp_min(0).numpy()
    encoder.model.zero_grad(set_to_none=True)
    return _unit(_patch_footprint(_onto_image_grid(rel, encoder.view_box(image.size), 6)))


def categorise_heatmap(encoder, repeats: int) -> dict:
    from bench.lookalike import photo
    from core.categorise import categorise
    from core.explain import overlay

    image = photo(np.random.default_rng(0), (640, 480))

    def before():
        return overlay(image, _categorise_before(encoder, image))

    def after():
        return overlay(image, categorise(encoder, image, None, "descriptive").heatmap)

    same = bool(np.array_equal(_categorise_before(encoder, image),
                               categorise(encoder, image, None, "descriptive").heatmap))
    return {"image": "640x480", "identical_maps": same,
            "timings": interleaved({"before (scoring forward, then forward + full backward)": lambda i: before(),
                                    "after (one forward, the input's gradient only)": lambda i: after()}, repeats)}


def mobileclip_towers(vit, repeats: int) -> dict:
    """MobileCLIP2-S0 and -S2 (look-alike repos: open_clip's configs, random weights, loaded and reparameterised
    by the app's own loader) against ViT-B/32 (the app's shortened text tower): one text query and one image."""
    from bench.lookalike import MOBILECLIP2, Plan, mobileclip2, photo
    from models.open_clip_encoder import load_open_clip

    image = photo(np.random.default_rng(0), (500, 375))
    out = {}
    for arch, repo in MOBILECLIP2.items():
        with tempfile.TemporaryDirectory() as tmp:
            mobileclip2(Path(tmp), arch, Plan())
            enc = load_open_clip(Path(tmp), arch)
        n = len(QUERIES)
        r = interleaved({"ViT-B/32 text": lambda i: vit.encode_text([QUERIES[i % n]]),
                         f"{arch} text": lambda i: enc.encode_text([QUERIES[i % n]]),
                         "ViT-B/32 image": lambda i: vit.encode_image([image]),
                         f"{arch} image": lambda i: enc.encode_image([image])}, repeats)
        text = r["ViT-B/32 text"]["p50_ms"] / r[f"{arch} text"]["p50_ms"]
        img = r["ViT-B/32 image"]["p50_ms"] / r[f"{arch} image"]["p50_ms"]
        out[arch] = {"repo": repo, "timings": r, "text_speedup": text, "image_speedup": img,
                     "qualifies": text >= 2 and img >= 2, "text_tower_shortened": enc.shorten}
        del enc
        gc.collect()
    return out


def siglip_base(tmp: Path):
    import torch
    from transformers import SiglipConfig, SiglipImageProcessor, SiglipModel, SiglipProcessor, SiglipTokenizer

    from bench.lookalike import siglip_spiece
    from models.hf_clip import HFClipEncoder

    torch.manual_seed(2)
    cfg = SiglipConfig()
    cfg.text_config.pad_token_id, cfg.text_config.eos_token_id, cfg.text_config.bos_token_id = 1, 1, None
    siglip_spiece(tmp / "spiece.model")
    processor = SiglipProcessor(image_processor=SiglipImageProcessor(size={"height": 224, "width": 224}, resample=3,
                                                                     image_mean=[0.5] * 3, image_std=[0.5] * 3),
                                tokenizer=SiglipTokenizer(vocab_file=str(tmp / "spiece.model"), model_max_length=64))
    return HFClipEncoder(SiglipModel(cfg), processor, "siglip-base-random")


def image_search(encoder, repeats: int, n_index: int = 1000) -> dict:
    from bench.lookalike import photo
    from index import build_index

    rng = np.random.default_rng(0)
    xb = rng.normal(size=(n_index, encoder.dim)).astype(np.float32)
    xb /= np.linalg.norm(xb, axis=1, keepdims=True)
    index = build_index(xb)
    images = [photo(rng, (500, 375)) for _ in range(4)]

    def query(i: int):
        xq = encoder.encode_image([images[i % len(images)]])  # (1, D)
        return index.search(xq, 10)

    return {"index": f"{n_index} vectors, exact", "timings": interleaved({"image -> image, k=10": query}, repeats)}


def blip_base(pack: bool = True):
    import torch
    from transformers import BertTokenizerFast, BlipConfig, BlipForConditionalGeneration, BlipImageProcessor, BlipProcessor

    from bench.lookalike import OPENAI_MEAN, OPENAI_STD, bert_vocab
    from models.blip_captioner import BlipCaptioner

    torch.manual_seed(3)
    words = bert_vocab().read_text().splitlines()
    tok = BertTokenizerFast(vocab={w: i for i, w in enumerate(words)}, do_lower_case=True, bos_token="[DEC]",
                            additional_special_tokens=["[ENC]"], model_max_length=512)
    processor = BlipProcessor(image_processor=BlipImageProcessor(size={"height": 384, "width": 384}, resample=3,
                                                                 image_mean=OPENAI_MEAN, image_std=OPENAI_STD),
                              tokenizer=tok)
    return BlipCaptioner(BlipForConditionalGeneration(BlipConfig()).eval(), processor, "blip-base-random", pack=pack)


def _blip_before(cap, image, beam: int, max_len: int):
    """The captioner as it was: BLIP's own generate, then a second vision pass for the maps."""
    import torch

    with torch.inference_mode():
        pixels = cap.processor(images=image.convert("RGB"), return_tensors="pt")["pixel_values"]
        out = cap.model.generate(pixel_values=pixels, num_beams=beam, max_new_tokens=max_len, no_repeat_ngram_size=3,
                                 do_sample=False, output_scores=True, return_dict_in_generate=True)
        return cap.token_attention(pixels, out.sequences[0])


def blip_caption(cap, plain, repeats: int, beam: int = 3, max_len: int = 20) -> dict:
    """`cap` the app's captioner, `plain` the same weights unpacked, decoded by transformers' own `generate`."""
    import torch

    from bench.lookalike import photo

    image = photo(np.random.default_rng(1), (500, 375))
    after = cap.caption(image, beam_size=beam, max_len=max_len)
    with torch.inference_mode():
        pixels = plain.processor(images=image.convert("RGB"), return_tensors="pt")["pixel_values"]
        ref = plain.model.generate(pixel_values=pixels, num_beams=beam, max_new_tokens=max_len,
                                   no_repeat_ngram_size=3, do_sample=False, return_dict_in_generate=True)
    ids = ref.sequences[0]
    tok = plain.processor.tokenizer
    keep = [i for i, t in enumerate(ids[1:].tolist()) if t not in tok.all_special_ids]
    maps = _blip_before(plain, image, beam, max_len)[keep]
    same = after.caption == tok.decode(ids, skip_special_tokens=True).strip() and maps.shape == after.attention.shape
    return {"beam": beam, "max_new_tokens": max_len, "tokens_with_maps": len(after.attention),
            "identical_tokens": "identical" if same else "DIFFERENT",
            "max_map_difference": float(np.abs(maps - after.attention).max()) if same else None,
            "timings": interleaved({"before (BLIP generate + a second vision pass for the maps)":
                                    lambda i: _blip_before(plain, image, beam, max_len),
                                    "after (one vision pass, the image's keys and values once, packed layers)":
                                    lambda i: cap.caption(image, beam_size=beam, max_len=max_len)}, repeats)}


def run(repeats: int = 5) -> dict:
    import torch

    from app import configure_threads

    configure_threads()
    out = {"machine": machine(), "date": time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime()),
           "torch_threads": torch.get_num_threads(), "repeats": repeats, "load_average_1min": [os.getloadavg()[0]]}
    full, short, int8 = vit_b_32()
    out["text_query"] = text_query(full, short, int8, max(2, repeats // 3))
    out["int8_on_demo_clip"] = int8_on_demo_clip()
    out["categorise"] = categorise_heatmap(short, repeats)
    out["mobileclip"] = mobileclip_towers(short, repeats)
    del full, short, int8
    gc.collect()
    with tempfile.TemporaryDirectory() as tmp:
        siglip = siglip_base(Path(tmp))
    out["siglip_image_search"] = image_search(siglip, repeats * 2)
    del siglip
    gc.collect()
    out["blip_caption"] = blip_caption(blip_base(), blip_base(pack=False), max(3, repeats // 2))
    out["load_average_1min"].append(os.getloadavg()[0])
    return out


def _row(what: str, timings: dict, goal: float, command: str) -> list[str]:
    names = list(timings)
    before, after = (timings[names[0]], timings[names[1]]) if len(names) > 1 else (None, timings[names[0]])
    b = f"{before['p50_ms']:.0f} ms" if before else "—"
    ratio = f"{before['p50_ms'] / after['p50_ms']:.1f}×" if before else "—"
    ok = "met" if after["p50_ms"] <= goal else "**not met**"
    return [f"| {what} | {b} | {after['p50_ms']:.0f} ms (p95 {after['p95_ms']:.0f}) | {ratio} | ≤ {goal:.0f} ms | {ok} |"]


def _conditions(r: dict) -> str:
    """How loaded the machine was: the milliseconds only mean something on a quiet one."""
    load = r.get("load_average_1min")
    if load:
        return (f"1-minute load average on the {r['machine']['cpu_count']} CPUs: {load[0]:.1f} at the start, "
                f"{load[-1]:.1f} at the end. Milliseconds on a loaded machine overstate a Space's; the speed-up "
                "column is a ratio within this run.")
    return r.get("conditions", "Load average not recorded for this run: read the ratios, not the milliseconds.")


def _int8_note(r: dict) -> str:
    d = r.get("int8_on_demo_clip")
    if not d:
        return ""
    f, q = d["float32"], d["int8 text MLPs"]
    return (f"- int8 text MLPs (opt-in): on ViT-B/32 the embedding keeps cosine ≥ "
            f"{r['text_query']['int8_min_cosine_to_float']:.4f} with float32 (random weights). On the trained demo "
            f"CLIP ({d['n_images']:,} test images of the open-vocabulary world, {d['n_captions']:,} captions): t2i R@1 "
            f"{f['t2i_R@1']:.1f} → {q['t2i_R@1']:.1f} ({q['t2i_R@1'] - f['t2i_R@1']:+.1f} points, limit −0.5), R@10 "
            f"{f['t2i_R@10']:.1f} → {q['t2i_R@10']:.1f}, i2t R@1 {f['i2t_R@1']:.1f} → {q['i2t_R@1']:.1f}; cosine to "
            f"float32 min {d['min_cosine_to_float']:.4f}, mean {d['mean_cosine_to_float']:.4f}.")


def _mobileclip_markdown(r: dict) -> str:
    m = r.get("mobileclip")
    if not m:
        return ""
    rows = []
    for arch, d in m.items():
        t = d["timings"]
        rows.append(f"| {arch} (`{d['repo']}`) | {t['ViT-B/32 text']['p50_ms']:.0f} / {t[arch + ' text']['p50_ms']:.0f} ms "
                    f"| {d['text_speedup']:.2f}× | {t['ViT-B/32 image']['p50_ms']:.0f} / {t[arch + ' image']['p50_ms']:.0f} ms "
                    f"| {d['image_speedup']:.2f}× | {'yes' if d['qualifies'] else 'no'} |")
    return f"""
### MobileCLIP2 against ViT-B/32 (same run)

Look-alike repos (open_clip 3.3's configs and preprocessing, random weights), loaded by the app's loader, which
fuses MobileCLIP's training-time branches (`reparameterize_model`); ViT-B/32 with the app's shortened text tower.
One text query (≤ 12 tokens) and one 500×375 photo; p50, ViT-B/32 / MobileCLIP2; a model joins
`catalog.hub.toml` when it is at least 2× faster on both towers.

| model | text query | speed-up | image | speed-up | 2× on both |
|---|---|---|---|---|---|
{chr(10).join(rows)}

MobileCLIP2's text tower is ViT-B/32's size (12 layers, width 512) without a causal mask: every padded position
changes the pooled embedding, so it cannot stop at the end token and runs all 77 positions.
"""


def markdown(r: dict) -> str:
    t, c, s, b = r["text_query"], r["categorise"], r["siglip_image_search"], r["blip_caption"]
    tq = t["timings"]
    names = list(tq)
    rows = (_row(f"ViT-B/32 text query, ≤ {t['max_tokens']} tokens", {n: tq[n] for n in names[:2]}, GOALS_MS["text_query"], "")
            + [f"| … the same query repeated (LRU cache hit) | | {tq[names[2]]['p50_ms']:.2f} ms | | | |"]
            + (_row("… int8 text MLPs (opt-in, `text_int8 = true`)", {n: tq[n] for n in (names[0], names[3])},
                    GOALS_MS["text_query"], "") if len(names) > 3 else [])
            + _row("Categorise + heat-map, ViT-B/32, 640×480 photo, end to end", c["timings"], GOALS_MS["categorise"], "")
            + _row(f"SigLIP base image → image search ({s['index']})", s["timings"], GOALS_MS["siglip_image_search"], "")
            + _row(f"BLIP base caption, beam {b['beam']}, {b['tokens_with_maps']} tokens with per-word maps",
                   b["timings"], GOALS_MS["blip_caption"], ""))
    return f"""## Real architectures on 2 CPU threads (random weights)

`python -m bench --only real_architectures` (or `python -m bench.real_architectures`), {r['date']}: OpenCLIP
ViT-B/32, SigLIP base and BLIP base with random weights of the exact architectures (the real models' compute,
nothing about their quality), in process, {r['torch_threads']} torch threads. Before and after run in one process,
interleaved call by call, p50 of {r['repeats']}–{3 * r['repeats']} calls each.

{_conditions(r)}

| work | before | after | speed-up | goal | |
|---|---|---|---|---|---|
{chr(10).join(rows)}

- Text query: *before* is open_clip's own tower (77 positions, plain linear layers); *after* stops at the end
  token and runs the linear layers prepacked for oneDNN (`models.packed`): the same float32 products in another
  order. Largest difference to *before* over the queries {t['max_abs_embedding_difference']:.1e} (tested to 1e-5 in
  `tests/test_text_tower.py` and `tests/test_packed.py`).
- BLIP: *before* is transformers' `generate` and a second vision pass for the maps; *after* runs the vision tower
  once, computes the image's cross-attention keys and values once for all beams (not once a beam, and never
  reordered), and packs the linear layers. Tokens and maps equal to *before*: tested on three pictures and beams
  1/3/5 in `tests/test_captioner.py`; in this run the tokens were {b.get('identical_tokens', 'not checked')},
  the maps within {b.get('max_map_difference') or 0:.1e}.
{_int8_note(r)}
- Categorise's heat-map: gradient × input (`core.explain`, chosen for image towers over 20 M parameters); *after*
  reuses the forward that scores the classes and asks autograd for the input's gradient only
  (maps identical to *before*: {c.get('identical_maps', 'not checked')} in this run; tested in `tests/test_explain.py`).
  How it agrees with occlusion and how well each points is in "Explanations" below; occlusion stays available
  (`/explain` with `method="occlusion"`).
- SigLIP: unchanged by this work (its text tower is not causal and pads to 64 by training; its image tower had
  nothing exact to save).
{_mobileclip_markdown(r)}"""


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--repeats", type=int, default=5)
    p.add_argument("--out", type=Path, default=Path("bench/results/real_architectures.json"))
    args = p.parse_args(argv)
    result = run(args.repeats)
    save_result(args.out, result)
    print(markdown(result))


if __name__ == "__main__":
    main()
