"""Run every benchmark and write BENCHMARKS.md (figures, the machine, the date, the commands, the goals).

    python -m bench                     # run all, then render
    python -m bench --only throughput   # rerun one, render with the stored results of the others
    python -m bench --only first_minute # the first minute of a visit (before: see bench/first_minute.py)
    python -m bench --render            # render from bench/results/*.json only
    python -m bench --only rehearsal    # the Space with Hub models, on a look-alike Hub (~20 min)
    python -m bench --only real_architectures  # the real models' compute with random weights, before / after
    python -m bench --only explanations # explanation maps on the demo world: pointing, agreement
    python -m bench --only gradio_overhead  # where a /search call's time goes: gradio_client, sessions, the app
    python -m bench --only demo_models  # the bundled models at a visitor's pace: upload, query, caption
    python -m bench --only private_collections  # your pictures: 200 photos indexed, time and memory per session

Benchmarks are not tests: CI runs a small smoke version only (tests/test_bench.py).
"""
from __future__ import annotations

import argparse
import json
from pathlib import Path

from bench import save_result
from bench import (demo_models, explanations, first_minute, gradio_overhead, private_collections, ray_embedding,
                   real_architectures, rehearsal, scale, search_latency, throughput)

RESULTS = Path("bench/results")
BENCHES = {"search_latency": search_latency.run, "throughput": throughput.run, "scale": scale.run,
           "first_minute": first_minute.run, "ray_embedding": ray_embedding.run, "rehearsal": rehearsal.run,
           "real_architectures": real_architectures.run, "explanations": explanations.run,
           "gradio_overhead": gradio_overhead.run, "demo_models": demo_models.run,
           "private_collections": private_collections.run}


def _met(ok: bool) -> str:
    return "met" if ok else "**not met**"


def throughput_markdown(r: dict) -> str:
    lines = [f"## Throughput\n\n`python -m bench.throughput`, {r['date']}.\n",
             "| what | model | figure | goal | |", "|---|---|---|---|---|"]
    for b in r["build_index"]:
        lines.append(f"| build the demo index ({b['images']} scenes: decode, embed, index) | {b['model']} | "
                     f"{b['images_per_s']:.0f} images/s | ≥ 500 images/s | {_met(b['images_per_s'] >= 500)} |")
    for c in r["categorise"]:
        lines.append(f"| zero-shot categorisation, batched ({c['images']} products) | {c['model']} | "
                     f"{c['batched_images_per_s']:.0f} images/s | | |")
        lines.append(f"| zero-shot categorisation, one image | {c['model']} | {c['single_image_ms']:.1f} ms | | |")
    for c in r["caption"]:
        for beam in (1, 3, 5):
            v = c[f"beam{beam}"]
            goal, ok = ("≤ 100 ms", _met(v["p50_ms"] <= 100)) if beam == 3 else ("", "")
            lines.append(f"| caption one image, beam {beam} (p50 / p95 over {c['images']}) | {c['model']} | "
                         f"{v['p50_ms']:.1f} / {v['p95_ms']:.1f} ms | {goal} | {ok} |")
    return "\n".join(lines) + "\n"


def render() -> str:
    parts = []
    machine = None
    for name, fmt in (("demo_models", demo_models.markdown),
                      ("search_latency", search_latency.markdown), ("gradio_overhead", gradio_overhead.markdown),
                      ("throughput", throughput_markdown),
                      ("scale", scale.markdown), ("ray_embedding", ray_embedding.markdown),
                      ("rehearsal", rehearsal.markdown), ("real_architectures", real_architectures.markdown),
                      ("explanations", explanations.markdown),
                      ("private_collections", private_collections.markdown)):
        path = RESULTS / f"{name}.json"
        if path.is_file():
            r = json.loads(path.read_text())
            machine = machine or r["machine"]
            parts.append(fmt(r))
    first = RESULTS / "first_minute.json"
    if first.is_file():
        before = RESULTS / "first_minute_before.json"  # the code before the warm start, measured by the same bench
        parts.append(first_minute.markdown(json.loads(first.read_text()),
                                           json.loads(before.read_text()) if before.is_file() else None))
    head = "# Benchmarks\n\nEvery figure below was measured by `python -m bench` (one command, every benchmark)"
    if machine:
        head += f" on {machine['cpu_count']} CPUs, {machine['platform']}, Python {machine['python']}"
    head += (". Ratios are taken within one run. Benchmarks are not tests: CI runs only a smoke version. "
             "Raw results: `bench/results/*.json`.\n")
    return "\n".join([head] + parts)


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--only", choices=sorted(BENCHES), action="append")
    p.add_argument("--render", action="store_true", help="only render BENCHMARKS.md from stored results")
    args = p.parse_args(argv)
    if not args.render:
        for name in args.only or BENCHES:
            save_result(RESULTS / f"{name}.json", BENCHES[name]())
    Path("BENCHMARKS.md").write_text(render())
    print(Path("BENCHMARKS.md").read_text())


if __name__ == "__main__":
    main()
