"""The Space's README front matter for a catalog: `models`, `datasets` and `preload_from_hub`.

    python -m pipelines.space_card --catalog catalog.hub.toml              # print the YAML lines
    python -m pipelines.space_card --catalog catalog.hub.toml --write README.md

Each Hub model's revision (a branch such as `main` or a pull request such as `refs/pr/32`) is resolved to its
commit sha with the Hub's API, so the weights a Space downloads at build time (`preload_from_hub`) are exactly
the files and the revision the app loads: the files its family reads (`models.registry.family_files`) and its model card,
never the pickled, TensorFlow or Flax copies. Needs the Hub (HF_ENDPOINT names another server, as in the tests).
"""
from __future__ import annotations

import argparse
import fnmatch
import logging
import os
import re
import sys
from pathlib import Path

from core.catalog import Catalog, load_catalog
from core.sources import parse_source

log = logging.getLogger(__name__)
KEYS = ("models", "datasets", "preload_from_hub")
CARD = "README.md"  # the model card: the app reads its `lookalike` field (core.evaluations), so it is preloaded too


def card_fields(catalog: Catalog) -> dict[str, list[str]]:
    """{"models": [...], "datasets": [...], "preload_from_hub": ["repo f1,f2 sha", ...]} for the catalog's Hub
    sources; each model's revision resolved to a commit sha."""
    from huggingface_hub import HfApi

    from models.registry import family_files

    api = HfApi(endpoint=(os.environ.get("HF_ENDPOINT") or "").rstrip("/") or None)
    models, preload = [], []
    for spec in catalog.models.values():
        source = parse_source(spec.source)
        if source.kind != "hub":
            continue
        info = api.repo_info(source.repo_id, revision=source.revision, files_metadata=False)
        names = [s.rfilename for s in info.siblings]
        patterns = (family_files(spec.family) or ["*"]) + [CARD]
        files = [n for n in names if any(fnmatch.fnmatch(n, p) for p in patterns)]
        models.append(source.repo_id)
        preload.append(f"{source.repo_id} {','.join(sorted(files))} {info.sha}")
    datasets = [parse_source(d.source).repo_id for d in catalog.datasets.values()
                if parse_source(d.source).kind == "hub"]
    datasets += [parse_source(i.source).repo_id for i in catalog.indexes
                 if i.build is None and parse_source(i.source).kind == "hub"]
    return {"models": models, "datasets": list(dict.fromkeys(datasets)), "preload_from_hub": preload}


def yaml_lines(fields: dict[str, list[str]]) -> str:
    return "".join(f"{key}:\n" + "".join(f"  - {v}\n" for v in values) for key, values in fields.items())


def write_front_matter(readme: Path, fields: dict[str, list[str]]) -> None:
    """Replace the `models`, `datasets` and `preload_from_hub` lists in the README's front matter."""
    text = readme.read_text()
    match = re.match(r"---\n(.*?\n)---\n", text, re.S)
    if not match:
        raise ValueError(f"{readme} has no front matter (a block between two '---' lines) to update")
    kept, skipping = [], False
    for line in match.group(1).splitlines(keepends=True):
        if re.match(rf"({'|'.join(KEYS)}):", line):
            skipping = True
            continue
        if skipping and (line.startswith("  ") or line.startswith("- ") or line.startswith("#")):
            continue
        skipping = False
        kept.append(line)
    readme.write_text("---\n" + "".join(kept) + yaml_lines(fields) + "---\n" + text[match.end():])


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description="Write the Space's models / datasets / preload_from_hub front matter.")
    p.add_argument("--catalog", default="catalog.hub.toml")
    p.add_argument("--write", type=Path, default=None, help="update this README's front matter in place")
    args = p.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    fields = card_fields(load_catalog(args.catalog))
    if args.write:
        write_front_matter(args.write, fields)
        log.info("updated %s", args.write)
    else:
        sys.stdout.write(yaml_lines(fields))


if __name__ == "__main__":
    main()
