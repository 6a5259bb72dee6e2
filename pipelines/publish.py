"""Publish a model, index or dataset folder to the Hugging Face Hub.

    HF_TOKEN=... python -m pipelines.publish assets/models/demo-clip your-name/demo-clip
    HF_TOKEN=... python -m pipelines.publish assets/indexes/demo-clip--scenes-test your-name/index-demo --repo-type dataset

Prints the commit sha: pin it in a catalog source (`hf-hub:your-name/demo-clip@<sha>`) for reproducibility.
"""
from __future__ import annotations

import argparse
import logging
import os
from pathlib import Path

log = logging.getLogger(__name__)


def publish(
    folder: Path, repo_id: str, repo_type: str = "model", token: str | None = None, private: bool = False,
    commit_message: str = "Upload from Vision-Language Studio pipelines",
) -> str:
    """Create the repo if needed, upload every file of `folder`, return the commit sha."""
    from huggingface_hub import HfApi

    folder = Path(folder)
    if not folder.is_dir() or not any(folder.iterdir()):
        raise FileNotFoundError(f"{folder} is missing or empty; build it first (README, 'Build the assets').")
    api = HfApi(endpoint=os.environ.get("HF_ENDPOINT") or None, token=token or os.environ.get("HF_TOKEN"))
    api.create_repo(repo_id, repo_type=repo_type, private=private, exist_ok=True)
    info = api.upload_folder(folder_path=str(folder), repo_id=repo_id, repo_type=repo_type, commit_message=commit_message)
    log.info("published %s to %s (%s): %s", folder, repo_id, repo_type, info.oid)
    return info.oid


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description="Publish a folder to the Hugging Face Hub.")
    p.add_argument("folder", type=Path)
    p.add_argument("repo_id")
    p.add_argument("--repo-type", default="model", choices=["model", "dataset"])
    p.add_argument("--private", action="store_true")
    args = p.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    print(publish(args.folder, args.repo_id, args.repo_type, private=args.private))


if __name__ == "__main__":
    main()
