"""Your pictures: how long indexing 200 photos of 1024×768 takes, and how much memory a session's collection costs.

    python -m bench.private_collections [--pictures 200] [--repeats 3] [--out bench/results/private_collections.json]

The pictures are seeded synthetic photos (smooth gradients, shapes, sensor-like noise), saved as JPEG quality 90
(about the size of a phone photo scaled to 1024×768). Each model is measured in a fresh process, so its memory
figures are its own: the collection is built `repeats` times through `core.private.PrivateCollections.build`
(reading, decoding, embedding, indexing: everything a visitor waits for after the upload), after one warm-up
picture. Models: the bundled default search model, and OpenCLIP ViT-B/32 with random weights (the Space's model;
real compute, nothing about quality). The end-to-end figure adds what the app adds: the 200 files uploaded
through `gradio_client` to the real app and `/build_collection` called, on the default model.

Memory: "peak extra" is the most the process's resident memory rose above its level before the first build (the
model loaded and warmed up), sampled every 10 ms; "held" is what the finished collection keeps (its vectors and
thumbnails, counted exactly: `PrivateCollection.nbytes`).
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np

from bench import save_result
from bench.search_latency import machine

GOAL_S = 20.0  # 200 pictures of 1024×768 with the bundled dual encoder, on this machine


def make_photos(folder: Path, n: int, size=(1024, 768), seed: int = 0) -> list[Path]:
    """`n` seeded photo-like JPEGs of `size`."""
    from PIL import Image, ImageDraw, ImageFilter

    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    w, h = size
    paths = []
    for i in range(n):
        a, b = rng.random(3) * 255, rng.random(3) * 255
        t = np.linspace(0, 1, w)[None, :, None] * 0.6 + np.linspace(0, 1, h)[:, None, None] * 0.4  # (h, w, 1)
        img = Image.fromarray((a * (1 - t) + b * t).astype(np.uint8))
        draw = ImageDraw.Draw(img)
        for _ in range(int(rng.integers(4, 10))):
            x, y, s = int(rng.integers(0, w - 60)), int(rng.integers(0, h - 60)), int(rng.integers(40, 400))
            fill = tuple(int(c) for c in rng.integers(0, 255, 3))
            (draw.ellipse if rng.random() < 0.5 else draw.rectangle)([x, y, x + s, y + int(s * rng.uniform(0.5, 1.5))],
                                                                     fill=fill)
        img = img.filter(ImageFilter.GaussianBlur(1.5))
        noisy = np.asarray(img, dtype=np.int16) + rng.normal(0, 6, (h, w, 3)).astype(np.int16)
        path = folder / f"photo-{i:03d}.jpg"
        Image.fromarray(np.clip(noisy, 0, 255).astype(np.uint8)).save(path, quality=90)
        paths.append(path)
    return paths


def _rss() -> int:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


class PeakRSS:
    """The highest resident memory seen while the block runs, sampled every `every` seconds."""

    def __init__(self, every: float = 0.01):
        self.every, self.peak, self._stop = every, 0, threading.Event()

    def __enter__(self):
        self.peak = _rss()
        self._thread = threading.Thread(target=self._sample, daemon=True)
        self._thread.start()
        return self

    def _sample(self):
        while not self._stop.wait(self.every):
            self.peak = max(self.peak, _rss())

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join()
        self.peak = max(self.peak, _rss())


def encoder_for(model: str):
    if model == "vit-b-32-random":
        import open_clip
        import torch

        from models.open_clip_encoder import OpenClipEncoder

        torch.manual_seed(0)
        net, _, preprocess = open_clip.create_model_and_transforms("ViT-B-32")  # random weights, the real compute
        return OpenClipEncoder(net, preprocess, open_clip.get_tokenizer("ViT-B-32"), model)
    from core.catalog import load_catalog
    from core.services import Services

    return Services(load_catalog()).encoder(model)


def measure_one(model: str, folder: Path, repeats: int) -> dict:
    """In this process: build the collection of every picture in `folder` `repeats` times with `model`."""
    import gc

    from app import configure_threads
    from core.private import PrivateCollections, decode

    configure_threads()
    paths = sorted(str(p) for p in folder.glob("*.jpg"))
    encoder = encoder_for(model)
    encoder.encode_image([decode(Path(paths[0]).read_bytes())])  # warm-up: first-call allocations are not the build's
    gc.collect()
    base = _rss()
    registry = PrivateCollections()
    seconds, cpu, peak, held = [], [], 0, 0
    for i in range(repeats):
        cpu0 = time.process_time()
        with PeakRSS() as p:
            c = registry.build(f"bench-{i}", paths, encoder, model, [folder])
        seconds.append(c.seconds)
        cpu.append(time.process_time() - cpu0)  # every thread of the process: a busy neighbour does not inflate it
        if i == 0:
            peak = p.peak - base
            held = c.nbytes
            assert c.count == len(paths) and not c.skipped, c.skipped
        registry.forget(f"bench-{i}")
    return {"model": model, "pictures": len(paths), "seconds": seconds, "median_s": float(np.median(seconds)),
            "cpu_s": cpu, "median_cpu_s": float(np.median(cpu)),
            "images_per_s": len(paths) / float(np.median(seconds)), "peak_extra_rss_mb": peak / 2**20,
            "held_mb": held / 2**20, "dim": int(encoder.dim)}


def end_to_end(folder: Path) -> dict:
    """The app as a visitor's client meets it: upload the pictures and build, on the default model."""
    from gradio_client import Client, handle_file

    from app import MAX_FILE_SIZE, build_demo, configure_threads
    from core.catalog import load_catalog

    configure_threads()
    catalog = load_catalog()
    demo = build_demo(catalog)
    demo.launch(prevent_thread_lock=True, server_name="127.0.0.1", max_file_size=MAX_FILE_SIZE, quiet=True)
    try:
        client = Client(demo.local_url, verbose=False)
        files = [handle_file(str(p)) for p in sorted(folder.glob("*.jpg"))]
        t0 = time.perf_counter()
        out = client.predict(files, catalog.search_models()[0], api_name="/build_collection")
        total = time.perf_counter() - t0
        client.close()
    finally:
        demo.close()
    return {"model": out["model"], "pictures": out["pictures"], "total_s": total, "build_s": out["seconds"],
            "upload_and_app_s": total - out["seconds"]}


def _in_subprocess(args: list[str]) -> dict:
    out = subprocess.run([sys.executable, "-m", "bench.private_collections", *args], capture_output=True, text=True,
                         check=True, env={**os.environ, "OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS", "1")})
    return json.loads(out.stdout.strip().splitlines()[-1])


def run(n_pictures: int = 200, repeats: int = 3, out: Path | None = None) -> dict:
    from core.catalog import load_catalog

    default = load_catalog().search_models()[0]
    load = [os.getloadavg()[0]]
    with tempfile.TemporaryDirectory(prefix="bench-private-") as tmp:
        folder = Path(tmp)
        make_photos(folder, n_pictures)
        mb = sum(p.stat().st_size for p in folder.glob("*.jpg")) / 2**20
        result = {"machine": machine(), "date": time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime()),
                  "pictures": n_pictures, "size": "1024x768", "jpeg_mb_total": mb, "repeats": repeats, "models": [],
                  "end_to_end": None, "goal_s": GOAL_S, "load_average_1min": load}
        for m in (default, "vit-b-32-random"):
            result["models"].append(_in_subprocess(["--one", m, "--folder", tmp, "--repeats", str(repeats)]))
            if out:  # what is measured is kept, should a later part fail
                save_result(out, result)
        result["end_to_end"] = _in_subprocess(["--e2e", "--folder", tmp])
    load.append(os.getloadavg()[0])
    return result


def markdown(r: dict) -> str:
    load = r["load_average_1min"]
    head = (f"## Your pictures: a private collection\n\n`python -m bench.private_collections`, {r['date']}: "
             f"{r['pictures']} seeded photos of {r['size']} (JPEG, {r['jpeg_mb_total']:.0f} MB together) indexed "
             "through `core.private` (read, decode, embed, index), median of "
             f"{r['repeats']} builds, each model in its own process; 1-minute load average {load[0]:.1f} at the start, "
             f"{load[-1]:.1f} at the end. Peak extra memory: the most resident memory rose during the first build "
             "(model already loaded); held: what the finished collection keeps (vectors and thumbnails). "
             "ViT-B/32 has random weights: its figures are compute and memory, nothing about quality.\n")
    lines = [head, "| model | time for 200 pictures | CPU time | pictures/s | goal | | peak extra memory | held |",
             "|---|---|---|---|---|---|---|---|"]
    for m in r["models"]:
        goal = f"≤ {r['goal_s']:.0f} s" if m["model"] != "vit-b-32-random" else ""
        met = ("met" if m["median_s"] <= r["goal_s"] else "**not met**") if goal else ""
        lines.append(f"| {m['model']} | {m['median_s']:.1f} s | {m.get('median_cpu_s', float('nan')):.1f} s | "
                     f"{m['images_per_s']:.0f} | {goal} | {met} | {m['peak_extra_rss_mb']:.0f} MB | {m['held_mb']:.1f} MB |")
    lines.append("\nCPU time: every thread of the process together, which a busy neighbour does not inflate; on an idle "
                 "machine the build takes at most about that long.")
    if r.get("note"):
        lines.append(f"\n{r['note']}")
    if e := r.get("end_to_end"):
        lines.append(f"\nEnd to end through the app ({e['model']}): upload of the {e['pictures']} files with "
                     f"`gradio_client` and `/build_collection`, {e['total_s']:.1f} s, of which the build {e['build_s']:.1f} s.")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--pictures", type=int, default=200)
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--out", type=Path, default=Path("bench/results/private_collections.json"))
    p.add_argument("--one", help=argparse.SUPPRESS)  # internal: measure one model in this process
    p.add_argument("--e2e", action="store_true", help=argparse.SUPPRESS)
    p.add_argument("--folder", type=Path, help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.one:
        print(json.dumps(measure_one(args.one, args.folder, args.repeats)))
        return
    if args.e2e:
        print(json.dumps(end_to_end(args.folder)))
        return
    result = run(args.pictures, args.repeats, args.out)
    save_result(args.out, result)
    print(markdown(result))


if __name__ == "__main__":
    main()
