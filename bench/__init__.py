"""Benchmarks: each module measures one thing, writes its raw result to `bench/results/<name>.json` and renders its
section of BENCHMARKS.md (`python -m bench`)."""
from __future__ import annotations

import json
from pathlib import Path


def save_result(out: Path, result: dict) -> None:
    """Write a benchmark's raw result as JSON, creating its folder: what BENCHMARKS.md is rendered from."""
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2) + "\n")
