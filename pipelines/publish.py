"""Publish a model, index or dataset folder to the Hugging Face Hub.

    HF_TOKEN=... python -m pipelines.publish assets/models/demo-clip your-name/demo-clip
    HF_TOKEN=... python -m pipelines.publish assets/indexes/demo-clip--scenes-test-heldout your-name/index-demo \\
        --repo-type dataset

Prints the commit sha: pin it in a catalog source (`hf-hub:your-name/demo-clip@<sha>`) for reproducibility.
HF_ENDPOINT, when set, names another Hub-compatible server (the tests use a local one).
"""
from __future__ import annotations

import argparse
import logging
import os
import sys
from pathlib import Path

log = logging.getLogger(__name__)


def publish(
    folder: Path,
    repo_id: str,
    repo_type: str = "model",
    token: str | None = None,
    private: bool = False,
    commit_message: str = "Upload from Vision-Language Studio pipelines",
) -> str:
    """Create the repo if needed, upload every file of `folder` in one commit, return the commit sha.

    `token` defaults to HF_TOKEN (or the token saved by `hf auth login`). Files that did not change are skipped;
    when nothing changed, the sha of the current commit is returned.
    """
    from huggingface_hub import HfApi

    folder = Path(folder)
    if not folder.is_dir() or not any(folder.iterdir()):
        raise FileNotFoundError(f"{folder} is missing or empty; build it first (README, 'Build the assets').")
    api = HfApi(endpoint=_endpoint(), token=token or os.environ.get("HF_TOKEN") or None)
    api.create_repo(repo_id, repo_type=repo_type, private=private, exist_ok=True)
    info = api.upload_folder(folder_path=folder, repo_id=repo_id, repo_type=repo_type, commit_message=commit_message)
    log.info("published %s to %s %s at %s", folder, repo_type, repo_id, info.oid)
    return info.oid


def _endpoint() -> str | None:
    # Read at call time: huggingface_hub reads HF_ENDPOINT once, at import.
    endpoint = os.environ.get("HF_ENDPOINT")
    return endpoint.rstrip("/") if endpoint else None


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description="Publish a folder to the Hugging Face Hub (token from HF_TOKEN).")
    p.add_argument("folder", type=Path, help="folder to upload, e.g. assets/models/demo-clip")
    p.add_argument("repo_id", help="owner/name on the Hub")
    p.add_argument("--repo-type", default="model", choices=["model", "dataset"])
    p.add_argument("--private", action="store_true", help="create the repo as private (if it does not exist)")
    p.add_argument("--message", default="Upload from Vision-Language Studio pipelines", help="commit message")
    args = p.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    sha = publish(args.folder, args.repo_id, args.repo_type, private=args.private, commit_message=args.message)
    sys.stdout.write(sha + "\n")  # the one result, for scripts: `SHA=$(python -m pipelines.publish ...)`


if __name__ == "__main__":
    main()
