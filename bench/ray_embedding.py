"""The embedding stage on Ray Data against the single-process path: images/s on 1 and 2 CPUs.

    python -m bench.ray_embedding [--out bench/results/ray_embedding.json]   (or: python -m bench --only ray_embedding)

Both paths run the whole stage, from a corpus-layout parquet split to an embeddings parquet: the single process
is `pipelines.shards.embed_shard` (one shard of one) with torch on `cpus` threads; Ray is
`pipelines.ray_shards.embed_on_ray` on a fresh local cluster of `cpus` CPUs with `cpus` actors of one thread
each. Models: the demo CLIP and open_clip's ViT-B-32 with random weights (`open_clip.create_model("ViT-B-32")`,
no pretrained: the real model's compute at 224 px). Each path runs on a small and a large split, back to back
(single, Ray, single, Ray), so the two see the same load from the machine's other users; the per-image cost is the
slope (T_large - T_small) / (n_large - n_small), which leaves out what a job pays once (starting actors, loading
the model); the fixed cost is reported beside it. Overhead = Ray's per-image cost / the single process's - 1.
"""
from __future__ import annotations

import argparse
import json
import os
import tempfile
import time
from pathlib import Path

from bench.search_latency import machine

GOAL_OVERHEAD = 0.15
VIT = "vit-b-32-random"
SIZES = {"demo-clip": (1000, 8000), VIT: (32, 320)}  # (small, large) images per run


def random_vit(folder: Path) -> Path:
    """open_clip's ViT-B-32 with random weights, saved in the open_clip Hub layout our loader reads."""
    import open_clip
    import torch
    from safetensors.torch import save_file

    torch.manual_seed(0)
    model = open_clip.create_model("ViT-B-32")  # no pretrained weights: nothing is downloaded
    folder.mkdir(parents=True, exist_ok=True)
    save_file({k: v.contiguous() for k, v in model.state_dict().items()}, str(folder / "open_clip_model.safetensors"))
    config = {"model_cfg": open_clip.get_model_config("ViT-B-32"), "revision": "random-init-seed0",
              "preprocess_cfg": {"mean": list(open_clip.OPENAI_DATASET_MEAN), "std": list(open_clip.OPENAI_DATASET_STD)}}
    (folder / "open_clip_config.json").write_text(json.dumps(config))
    return folder


def corpus(root: Path, n: int, distinct: int = 1000) -> str:
    """`n` test scenes in the corpus layout (`<root>/scenes/test-00000-of-00001.parquet`): the first `distinct`
    rendered once and repeated under new ids (rendering is not what is measured)."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    from demo_world.corpus import build_split

    base = build_split("scenes", "test", min(n, distinct)).data.table
    table = pa.concat_tables([base] * -(-n // base.num_rows)).slice(0, n)
    ids = [f"{i}-copy{k // base.num_rows}" for k, i in enumerate(table.column("id").to_pylist())]
    table = table.set_column(table.schema.get_field_index("id"), "id", pa.array(ids))
    (root / "scenes").mkdir(parents=True, exist_ok=True)
    pq.write_table(table, root / "scenes" / "test-00000-of-00001.parquet")
    return str(root)


def single_seconds(catalog: str, model: str, dataset: str, cpus: int, out: Path) -> float:
    import torch

    from core.catalog import load_catalog
    from core.services import Services
    from pipelines.shards import embed_shard

    torch.set_num_threads(cpus)
    t0 = time.perf_counter()
    embed_shard(Services(load_catalog(catalog)), model, dataset, "scenes", "test", 0, 1, out)  # loads the model
    return time.perf_counter() - t0


def ray_seconds(catalog: str, model: str, dataset: str, cpus: int, out: Path) -> float:
    import ray

    from pipelines.ray_shards import embed_on_ray, start

    start(num_cpus=cpus)
    try:
        t0 = time.perf_counter()
        embed_on_ray(model, dataset, "scenes", "test", str(out), catalog=catalog, concurrency=cpus, threads=1,
                     batch_size=32)
        return time.perf_counter() - t0
    finally:
        ray.shutdown()


def compare(catalog: str, model: str, datasets: dict[int, str], cpus: int, work: Path) -> dict:
    (small, large), seconds = sorted(datasets), {"single": {}, "ray": {}}
    for n in (small, large):  # back to back: the machine's load is shared by both paths
        seconds["single"][n] = single_seconds(catalog, model, datasets[n], cpus, work / f"single-{n}")
        seconds["ray"][n] = ray_seconds(catalog, model, datasets[n], cpus, work / f"ray-{n}")
    out = {"model": model, "cpus": cpus, "images": [small, large], "seconds": seconds}
    for path, s in seconds.items():
        per_image = (s[large] - s[small]) / (large - small)
        out[path] = {"images_per_s": 1 / per_image, "fixed_s": s[small] - small * per_image,
                     "end_to_end_images_per_s": large / s[large]}
    out["overhead"] = out["single"]["images_per_s"] / out["ray"]["images_per_s"] - 1
    return out


def run(cpus_list: tuple[int, ...] = (1, 2), sizes: dict | None = None) -> dict:
    import ray

    sizes = sizes or SIZES
    load_before = os.getloadavg()
    runs = []
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        catalog = work / "catalog.toml"
        catalog.write_text(f'[models.demo-clip]\nfamily = "open_clip"\nsource = "{Path("assets/models/demo-clip").resolve()}"\n'
                           f'[models.{VIT}]\nfamily = "open_clip"\nsource = "{random_vit(work / VIT)}"\n')
        for model, (small, large) in sizes.items():
            datasets = {n: corpus(work / f"data-{n}", n) for n in (small, large)}
            for cpus in cpus_list:
                runs.append(compare(str(catalog), model, datasets, cpus, work / f"{model}-{cpus}"))
    return {"machine": machine(), "date": time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime()),
            "ray": ray.__version__, "load_average_before_after": [load_before[0], os.getloadavg()[0]], "runs": runs}


def markdown(r: dict) -> str:
    lines = [f"## Embedding on Ray Data against one process\n\n`python -m bench --only ray_embedding` "
             f"(`bench/ray_embedding.py`), {r['date']}, Ray {r['ray']}. One run, both paths back to back; the "
             f"machine's 1-minute load average was {r['load_average_before_after'][0]:.1f} before and "
             f"{r['load_average_before_after'][1]:.1f} after (other users of its cores), so absolute rates are "
             "low and the ratios are what to read. Images/s is the per-image cost from two split sizes (fixed "
             "start-up cost left out and shown apart: model load, and for Ray the actors); Ray runs one single-thread "
             "actor per CPU.\n",
             "| model | CPUs | single process | Ray | Ray overhead | goal | | fixed cost single / Ray |",
             "|---|---|---|---|---|---|---|---|"]
    for x in r["runs"]:
        ok = "met" if x["overhead"] <= GOAL_OVERHEAD else "**not met**"
        lines.append(f"| {x['model']} | {x['cpus']} | {x['single']['images_per_s']:.1f} images/s | "
                     f"{x['ray']['images_per_s']:.1f} images/s | {x['overhead'] * 100:+.0f}% | ≤ +15% | {ok} | "
                     f"{x['single']['fixed_s']:.1f} s / {x['ray']['fixed_s']:.1f} s |")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--out", type=Path, default=Path("bench/results/ray_embedding.json"))
    args = p.parse_args(argv)
    result = run()
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    print(markdown(result))


if __name__ == "__main__":
    main()
