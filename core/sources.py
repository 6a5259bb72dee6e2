"""Sources: `hf-hub:owner/repo[@revision]` or a local folder with the same files.

`resolve` is the one function every loader goes through: a Hub source becomes a local snapshot folder via
`huggingface_hub.snapshot_download` (cached; the cache is used when the Hub cannot be reached), a folder is
returned as it is.

Timeouts. `snapshot_download` in huggingface_hub 2.4.0 asks the Hub for the revision with *no* timeout, so a
Hub that accepts connections but never answers hangs it forever. `resolve` therefore first asks the same
question itself with `HUB_TIMEOUT_S` (env `VLSTUDIO_HUB_TIMEOUT`, seconds) and falls back to the cache when that
fails. The per-file metadata call gets the same timeout; the file transfer itself uses huggingface_hub's
`HF_HUB_DOWNLOAD_TIMEOUT` (seconds without data, default 10), which that library reads once at import.
"""
from __future__ import annotations

import logging
import os
import re
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Literal

from core.atomic import recover

log = logging.getLogger(__name__)

HF_HUB_PREFIX = "hf-hub:"
HUB_TIMEOUT_S = float(os.environ.get("VLSTUDIO_HUB_TIMEOUT", "10"))
# The Hub's own rules (huggingface_hub.utils.validate_repo_id): ASCII letters, digits, . _ -, no leading or
# trailing . or -, at most 96 characters, no "--" or "..", no ".git" suffix.
_NAME = r"[A-Za-z0-9_](?:[A-Za-z0-9._-]{0,94}[A-Za-z0-9_])?"
_REPO_ID = re.compile(rf"^{_NAME}/{_NAME}$")
_REVISION = re.compile(r"^[A-Za-z0-9._-]+(?:/[A-Za-z0-9._-]+)*$")  # branch, tag, sha or refs/pr/N
_COMMIT_SHA = re.compile(r"^[0-9a-f]{40}$")
_EXPECTED = "expected hf-hub:owner/repo, hf-hub:owner/repo@revision or a folder path"


class SourceError(Exception):
    """A source that cannot be parsed or resolved; the message names it and says what to do."""


class SourceNotFound(SourceError):
    """The Hub answered that the repository does not exist (or is private or gated)."""


@dataclass(frozen=True)
class Source:
    kind: Literal["hub", "local"]
    repo_id: str | None = None  # "owner/name", hub only
    revision: str | None = None  # branch, tag or commit sha; None means the default branch
    path: Path | None = None  # absolute folder, local only

    def __str__(self) -> str:
        if self.kind == "hub":
            return f"{HF_HUB_PREFIX}{self.repo_id}" + (f"@{self.revision}" if self.revision else "")
        return str(self.path)


def parse_source(text: str, base_dir: Path | None = None) -> Source:
    """Parse a source string; pure (touches neither the network nor the disk).

    >>> parse_source("hf-hub:laion/CLIP-ViT-B-32@main")
    Source(kind='hub', repo_id='laion/CLIP-ViT-B-32', revision='main', path=None)
    """
    if not isinstance(text, str) or not text.strip():
        raise SourceError(f"Empty source: {_EXPECTED}.")
    text = text.strip()
    if not text.startswith(HF_HUB_PREFIX):
        path = Path(text).expanduser()
        return Source("local", path=path if path.is_absolute() else Path(base_dir or Path.cwd()) / path)
    repo_id, at, revision = text[len(HF_HUB_PREFIX):].partition("@")
    if not _valid_repo_id(repo_id):
        raise SourceError(f"{text!r} does not name a Hub repository: {_EXPECTED}.")
    if at and not (_REVISION.match(revision) and ".." not in revision):
        raise SourceError(f"{text!r} has an invalid revision after '@': give a branch, tag or commit sha.")
    return Source("hub", repo_id=repo_id, revision=revision or None)


def _valid_repo_id(repo_id: str) -> bool:
    if not _REPO_ID.match(repo_id) or repo_id.endswith(".git"):
        return False
    return "--" not in repo_id and ".." not in repo_id


def describe(text: str) -> tuple[str, str | None]:
    """(name, revision) to record where an asset came from: the Hub source as written, or a folder's name."""
    source = parse_source(text)
    return (text, source.revision) if source.kind == "hub" else (source.path.name, None)


def resolve(
    text: str, *, repo_type: str = "model", base_dir: Path | None = None, allow_patterns: list[str] | str | None = None
) -> Path:
    """The local folder holding the files of a source, downloading a Hub repo into the cache if needed.

    `repo_type` ("model" or "dataset") and `allow_patterns` only matter for Hub sources.
    """
    source = parse_source(text, base_dir)
    if source.kind == "local":
        recover(source.path)  # a save killed between its two renames left the previous copy aside
        if not source.path.is_dir():
            raise SourceError(
                f"Folder {source.path} not found: build it (README, 'Build the assets') or fix the source."
            )
        return source.path
    return _resolve_hub(source, repo_type, allow_patterns)


def _resolve_hub(source: Source, repo_type: str, allow_patterns: list[str] | str | None) -> Path:
    from huggingface_hub import snapshot_download  # imported here: `import core.sources` stays light

    download = partial(
        snapshot_download, source.repo_id, repo_type=repo_type, revision=source.revision,
        allow_patterns=allow_patterns, endpoint=_endpoint(), etag_timeout=HUB_TIMEOUT_S,
    )
    with _as_source_errors(source, repo_type):
        if source.revision and _COMMIT_SHA.match(source.revision):
            if folder := _cached_snapshot(download):  # a commit never changes: no need to ask the Hub
                return folder
        try:
            _ask_hub_for_revision(source, repo_type)
        except Exception as e:
            if not _is_unreachable(e):
                raise
            log.warning("%s: the Hub could not be reached (%s); using the local cache", source, e)
            return Path(download(local_files_only=True))
        folder = Path(download())
    log.info("resolved %s to %s", source, folder)
    return folder


def hub_reachable(timeout: float = 3.0) -> bool:
    """Whether the Hub (HF_ENDPOINT, else huggingface.co) answers HTTP within `timeout` seconds; offline mode
    counts as unreachable. Any HTTP answer, even an error status, means it is reachable."""
    import urllib.error
    import urllib.request

    from huggingface_hub import constants

    if os.environ.get("HF_HUB_OFFLINE", "").lower() in ("1", "true", "yes") or constants.HF_HUB_OFFLINE:
        return False
    try:
        urllib.request.urlopen((_endpoint() or constants.ENDPOINT) + "/api/models?limit=1", timeout=timeout).close()
        return True
    except urllib.error.HTTPError:
        return True
    except (OSError, ValueError):
        return False


def _endpoint() -> str | None:
    # Read at call time, unlike huggingface_hub's import-time constant, so HF_ENDPOINT can be set later.
    endpoint = os.environ.get("HF_ENDPOINT")
    return endpoint.rstrip("/") if endpoint else None


def _cached_snapshot(download: partial) -> Path | None:
    from huggingface_hub.errors import LocalEntryNotFoundError

    try:
        return Path(download(local_files_only=True))
    except LocalEntryNotFoundError:  # includes an incomplete cached snapshot
        return None


def _ask_hub_for_revision(source: Source, repo_type: str) -> None:
    """The call snapshot_download makes first, but bounded by HUB_TIMEOUT_S; raises what the Hub answers."""
    from huggingface_hub import HfApi

    HfApi(endpoint=_endpoint()).repo_info(
        source.repo_id, repo_type=repo_type, revision=source.revision, timeout=HUB_TIMEOUT_S
    )


def _is_unreachable(error: Exception) -> bool:
    """No connection, a timeout, offline mode, or the Hub itself failing (5xx): the cache may still serve."""
    import httpx2
    from huggingface_hub.errors import HfHubHTTPError, OfflineModeIsEnabled

    if isinstance(error, (httpx2.TransportError, OfflineModeIsEnabled)):
        return True
    return isinstance(error, HfHubHTTPError) and error.response is not None and error.response.status_code >= 500


@contextmanager
def _as_source_errors(source: Source, repo_type: str) -> Iterator[None]:
    """Turn huggingface_hub's exceptions into a SourceError naming the source and the fix."""
    import httpx2
    from huggingface_hub.errors import (
        HfHubHTTPError, IncompleteSnapshotError, LocalEntryNotFoundError, RepositoryNotFoundError,
        RevisionNotFoundError,
    )

    try:
        yield
    except RevisionNotFoundError:
        raise SourceError(
            f"{source}: the {repo_type} repository has no revision {source.revision!r}; fix the part after '@'."
        ) from None
    except RepositoryNotFoundError:  # also gated repos
        raise SourceNotFound(
            f"{source}: no such {repo_type} repository on the Hub, or it is private or gated; check the name and "
            f"the repository type, or set HF_TOKEN to a token that can read it."
        ) from None
    except IncompleteSnapshotError:
        raise SourceError(
            f"{source}: the Hugging Face Hub could not be reached and the cached copy is incomplete; "
            "reconnect and try again, or use the bundled catalog (catalog.toml)."
        ) from None
    except LocalEntryNotFoundError:
        raise SourceError(
            f"{source}: the Hugging Face Hub could not be reached and nothing is cached; "
            "check the connection (and HF_ENDPOINT, HF_HUB_OFFLINE) or use the bundled catalog (catalog.toml)."
        ) from None
    except (HfHubHTTPError, httpx2.HTTPError, OSError) as e:
        raise SourceError(f"{source}: download failed ({e.__class__.__name__}: {e}); try again later.") from e
