"""Sources: `hf-hub:owner/repo[@revision]` or a local folder with the same files.

`resolve` is the one function every loader goes through: a Hub source becomes a local snapshot folder via
`huggingface_hub.snapshot_download` (cached; the cache is used when the Hub cannot be reached), a folder is
returned as it is.
"""
from __future__ import annotations

import logging
import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

log = logging.getLogger(__name__)
HF_HUB_PREFIX = "hf-hub:"
_NAME = r"[A-Za-z0-9](?:[A-Za-z0-9._-]{0,94}[A-Za-z0-9])?"
_REPO_ID = re.compile(rf"^{_NAME}/{_NAME}$")
_REVISION = re.compile(r"^[A-Za-z0-9._/-]{1,200}$")
HUB_TIMEOUT_S = float(os.environ.get("VLSTUDIO_HUB_TIMEOUT", "10"))  # per request: a down Hub never hangs us


class SourceError(Exception):
    """A source that cannot be parsed or resolved; the message names it and says what to do."""


@dataclass(frozen=True)
class Source:
    kind: Literal["hub", "local"]
    repo_id: str | None = None
    revision: str | None = None
    path: Path | None = None

    def __str__(self) -> str:
        if self.kind == "hub":
            return f"{HF_HUB_PREFIX}{self.repo_id}" + (f"@{self.revision}" if self.revision else "")
        return str(self.path)


def parse_source(text: str, base_dir: Path | None = None) -> Source:
    """Parse a source string; pure (touches neither the network nor the disk)."""
    if not isinstance(text, str) or not text.strip():
        raise SourceError("Empty source: give hf-hub:owner/repo[@revision] or a folder path.")
    text = text.strip()
    if not text.startswith(HF_HUB_PREFIX):
        path = Path(text).expanduser()
        return Source("local", path=path if path.is_absolute() else Path(base_dir or Path.cwd()) / path)
    rest = text[len(HF_HUB_PREFIX):]
    repo_id, _, revision = rest.partition("@")
    if not _REPO_ID.match(repo_id) or ".." in repo_id:
        raise SourceError(f"{text!r} is not a valid Hub source; expected hf-hub:owner/repo[@revision].")
    if "@" in rest and (not _REVISION.match(revision) or ".." in revision):
        raise SourceError(f"{text!r} has an invalid revision after '@'.")
    return Source("hub", repo_id=repo_id, revision=revision or None)


def resolve(text: str, *, repo_type: str = "model", base_dir: Path | None = None, allow_patterns=None) -> Path:
    """The local folder holding the files of a source (downloading a Hub repo into the cache if needed)."""
    source = parse_source(text, base_dir)
    if source.kind == "local":
        if not source.path.is_dir():
            raise SourceError(f"Folder {source.path} not found; build it (see README, 'Build the assets') or fix the source.")
        return source.path
    return _snapshot(source, repo_type, allow_patterns)


def _snapshot(source: Source, repo_type: str, allow_patterns) -> Path:
    from huggingface_hub import snapshot_download
    from huggingface_hub.errors import HfHubHTTPError, LocalEntryNotFoundError, RepositoryNotFoundError

    endpoint = os.environ.get("HF_ENDPOINT") or None  # read now, not at import, so it can be redirected
    try:
        folder = snapshot_download(
            source.repo_id,
            repo_type=repo_type,
            revision=source.revision,
            allow_patterns=allow_patterns,
            endpoint=endpoint,
            etag_timeout=HUB_TIMEOUT_S,
        )
    except RepositoryNotFoundError:
        raise SourceError(f"{source}: no such {repo_type} repository on the Hub (or it is private).") from None
    except LocalEntryNotFoundError:
        raise SourceError(
            f"{source}: the Hugging Face Hub could not be reached and nothing is cached; "
            "check the connection or use the bundled catalog (catalog.toml)."
        ) from None
    except (HfHubHTTPError, OSError) as e:
        raise SourceError(f"{source}: download failed ({e.__class__.__name__}: {e}).") from None
    log.info("resolved %s to %s", source, folder)
    return Path(folder)
