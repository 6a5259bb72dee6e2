"""Throughput: building the demo index (images/s), zero-shot categorisation (images/s), captioning latency by beam.

    python -m bench.throughput [--out bench/results/throughput.json]

Single process on this machine's threads, as the app runs (`app.configure_threads`). Rendered into BENCHMARKS.md by
`python -m bench`.
"""
from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np

from bench import save_result
from bench.search_latency import machine


def _median_ms(fn, repeats: int) -> tuple[float, float]:
    fn()
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return float(np.median(times) * 1000), float(np.percentile(times, 95) * 1000)


def build_index_rate(services, model: str, n: int = 1000) -> dict:
    """Images per second from PNG bytes to a searchable FAISS index (decode, preprocess, embed, add)."""
    from demo_world.free_corpus import build_free_split, undecoded
    from index import build_index
    from pipelines.build_index import embed_images

    data = undecoded(build_free_split("scenes", "test", n))
    enc = services.encoder(model)
    t0 = time.perf_counter()
    emb = embed_images(enc, data)
    t1 = time.perf_counter()
    build_index(emb)
    t2 = time.perf_counter()
    return {"model": model, "images": n, "embed_s": t1 - t0, "index_s": t2 - t1, "images_per_s": n / (t2 - t0)}


def categorise_rate(services, model: str, n: int = 350) -> dict:
    from demo_world.free_corpus import build_free_split
    from models.zero_shot import build_zero_shot_classifier, catalogue_classes, prompts_for, zero_shot_probs

    data = build_free_split("products", "val", n)
    images = [im.convert("RGB") for im in data["image"]]
    enc = services.encoder(model)
    classes = build_zero_shot_classifier(enc, prompts_for(catalogue_classes(), "descriptive"))
    t0 = time.perf_counter()
    zero_shot_probs(enc.encode_image(images), classes, enc.logit_scale)
    batched = n / (time.perf_counter() - t0)
    single, _ = _median_ms(lambda: zero_shot_probs(enc.encode_image(images[:1]), classes, enc.logit_scale), 30)
    return {"model": model, "images": n, "batched_images_per_s": batched, "single_image_ms": single}


def caption_latency(services, model: str, n: int = 30) -> dict:
    from demo_world.free_corpus import build_free_split

    images = [im.convert("RGB") for im in build_free_split("scenes", "val", n)["image"]]
    cap = services.encoder(model)
    out = {"model": model, "images": n}
    for beam in (1, 3, 5):
        times = []
        cap.caption(images[0], beam_size=beam)
        for im in images:
            t0 = time.perf_counter()
            cap.caption(im, beam_size=beam)
            times.append(time.perf_counter() - t0)
        out[f"beam{beam}"] = {"p50_ms": float(np.median(times) * 1000), "p95_ms": float(np.percentile(times, 95) * 1000)}
    return out


def run() -> dict:
    from app import configure_threads
    from core.catalog import load_catalog
    from core.services import Services

    configure_threads()
    services = Services(load_catalog())
    catalog = services.catalog
    return {
        "machine": machine(),
        "date": time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime()),
        "build_index": [build_index_rate(services, m) for m in catalog.search_models()],
        "categorise": [categorise_rate(services, m) for m in catalog.models_for("categorise")
                       if catalog.model(m).family != "cnn_classifier"],
        "caption": [caption_latency(services, m) for m in catalog.models_for("caption")],
    }


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--out", type=Path, default=Path("bench/results/throughput.json"))
    args = p.parse_args(argv)
    result = run()
    save_result(args.out, result)
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
