"""A local Hugging Face Hub-compatible file server (stdlib only, bound to 127.0.0.1): the tests' Hub and the
look-alike Hub of the rehearsal (`python -m bench.rehearsal`).

It answers what the real `huggingface_hub` client (2.4.0, plain HTTP, no Xet) calls:

- download: `GET /api/{type}s/{repo}[/revision/{rev}]` (repo_info), `GET /api/{type}s/{repo}/tree/{rev}[/{path}]`
  (list_repo_tree), `HEAD`/`GET /{prefix}{repo}/resolve/{rev}/{file}` with `X-Repo-Commit`, `ETag`,
  `Content-Length` and, for LFS files, `X-Linked-Etag`/`X-Linked-Size`;
- publish: `POST /api/repos/create`, `POST /api/{type}s/{repo}/preupload/{rev}`, the LFS batch API
  `POST /{prefix}{repo}.git/info/lfs/objects/batch` with a basic `PUT` upload, and the ndjson
  `POST /api/{type}s/{repo}/commit/{rev}`.

Repos live in `<root>/<type>s/<owner>/<name>/`, as plain files: that folder is the branch `main`. Other
revisions the real Hub has (`refs/pr/32`, `refs/convert/parquet`, a tag) live in
`<root>/_revisions/<type>s/<owner>/<name>/<revision, %-quoted>/`. A revision's commit sha is a hash of its file names, sizes
and mtimes; file digests (ETags) are computed once per file version, or all at once by `warm()`; a revision is
asked for by name or by its sha (older commits are not kept). Files are streamed, and `Range` requests (the client's resume)
are answered with 206. Which files are LFS is decided by a rule like the Hub's default `.gitattributes` (binary
suffixes, NUL bytes, 10 MB and over), the same rule on upload and download. The real Hub redirects LFS downloads
to a CDN; this server answers them directly.

Faults, for tests of what a visitor sees when the Hub misbehaves: `hub.inject(file_suffix, kind, times=1)` makes
the next `times` downloads of a matching file fail: "500" (server error), "404" (file missing), "drop" (the
connection closes after half the bytes), "size" (the metadata announces a size the body does not have).
"""
from __future__ import annotations

import base64
import hashlib
import json
import re
import shutil
import threading
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qs, quote, unquote, urlparse

_URL_PREFIX = {"model": "", "dataset": "datasets/", "space": "spaces/"}
_LFS_SUFFIXES = (
    ".safetensors", ".bin", ".pt", ".pth", ".ckpt", ".onnx", ".h5", ".msgpack", ".npy", ".npz", ".parquet",
    ".arrow", ".faiss", ".index", ".pkl", ".zip", ".gz", ".tar", ".png", ".jpg", ".jpeg", ".webp",
)
_LFS_MIN_SIZE = 10 * 1024 * 1024
_LFS_STORE = ".lfs-objects"  # uploaded LFS blobs, by sha256, under root; not a repo type folder
_REVISIONS = "_revisions"  # revisions other than main, under root
_CHUNK = 1 << 20
FAULTS = ("500", "404", "drop", "size")


@dataclass
class Fault:
    suffix: str  # a file path ending, e.g. "model.safetensors"
    kind: str  # one of FAULTS
    times: int  # downloads left to spoil


def is_lfs(path: str, head: bytes, size: int) -> bool:
    """Whether the Hub would keep this file in LFS; `head` is its first bytes (the client's preupload sample)."""
    if size == 0:
        return False  # the client always commits empty files as regular ones
    return path.lower().endswith(_LFS_SUFFIXES) or size >= _LFS_MIN_SIZE or b"\0" in head[:512]


def git_blob_sha1(data: bytes) -> str:
    """The git object id of a blob, which the Hub uses as ETag and tree oid of regular files."""
    return hashlib.sha1(b"blob %d\0" % len(data) + data).hexdigest()


def lfs_pointer(data: bytes) -> bytes:
    return b"version https://git-lfs.github.com/spec/v1\noid sha256:%s\nsize %d\n" % (
        hashlib.sha256(data).hexdigest().encode(), len(data),
    )


class LocalHub:
    """The server and the repos on disk. `with LocalHub(root) as hub:` or `hub = LocalHub(root).start()`."""

    def __init__(self, root: Path):
        self.root = Path(root)
        self.requests: list[str] = []  # "METHOD /path" in arrival order, for tests that check what was asked
        self.errors: list[str] = []  # exceptions raised while answering; the client would retry or use its cache
        self.url: str | None = None
        self.commit_lock = threading.Lock()
        self.faults: list[Fault] = []
        self.bytes_served: dict[str, int] = {}  # "repo_type:repo/file" -> body bytes sent
        self._digests: dict[tuple, tuple[str, str]] = {}  # (path, size, mtime_ns) -> (sha256, git sha1)
        self._digest_lock = threading.Lock()
        self._server: ThreadingHTTPServer | None = None

    # ---------------------------------------------------------------- repos on disk
    def repo_dir(self, repo_type: str, repo_id: str, revision: str = "main") -> Path:
        if revision == "main":
            return self.root / f"{repo_type}s" / repo_id
        return self.root / _REVISIONS / f"{repo_type}s" / repo_id / quote(revision, safe="")

    def revisions(self, repo_type: str, repo_id: str) -> list[str]:
        """The repo's revisions: "main" (when it exists) and the others, by name."""
        extra = self.root / _REVISIONS / f"{repo_type}s" / repo_id
        names = [unquote(p.name) for p in sorted(extra.iterdir())] if extra.is_dir() else []
        return (["main"] if self.repo_dir(repo_type, repo_id).is_dir() else []) + names

    def add_repo(self, repo_id: str, files: dict[str, bytes] | Path, repo_type: str = "model",
                 revision: str = "main") -> str:
        """Create or update a repo revision from `{path: bytes}` or a folder's files; returns its commit sha.
        A revision other than main needs main to exist (as on the Hub, where every repo has its main branch)."""
        self.repo_dir(repo_type, repo_id).mkdir(parents=True, exist_ok=True)
        folder = self.repo_dir(repo_type, repo_id, revision)
        folder.mkdir(parents=True, exist_ok=True)
        if isinstance(files, (str, Path)):
            shutil.copytree(files, folder, dirs_exist_ok=True)
        else:
            for name, data in files.items():
                (folder / name).parent.mkdir(parents=True, exist_ok=True)
                (folder / name).write_bytes(data)
        return self.commit_sha(folder)

    def inject(self, suffix: str, kind: str, times: int = 1) -> None:
        """Spoil the next `times` downloads of files whose path ends with `suffix` (see the module's docstring)."""
        if kind not in FAULTS:
            raise ValueError(f"unknown fault {kind!r}; known: {', '.join(FAULTS)}")
        with self._digest_lock:
            self.faults.append(Fault(suffix, kind, times))

    def take_fault(self, path: str) -> str | None:
        with self._digest_lock:
            for fault in self.faults:
                if fault.times > 0 and path.endswith(fault.suffix):
                    fault.times -= 1
                    return fault.kind
        return None

    @staticmethod
    def files(folder: Path) -> list[Path]:
        return sorted(p for p in folder.rglob("*") if p.is_file())

    def digests(self, path: Path) -> tuple[str, str]:
        """(sha256, git blob sha1) of a file, computed once per (size, mtime)."""
        st = path.stat()
        key = (str(path), st.st_size, st.st_mtime_ns)
        with self._digest_lock:
            if key in self._digests:
                return self._digests[key]
        sha256, sha1 = hashlib.sha256(), hashlib.sha1(b"blob %d\0" % st.st_size)
        with path.open("rb") as f:
            while chunk := f.read(_CHUNK):
                sha256.update(chunk)
                sha1.update(chunk)
        value = (sha256.hexdigest(), sha1.hexdigest())
        with self._digest_lock:
            self._digests[key] = value
        return value

    def head(self, path: Path) -> bytes:
        with path.open("rb") as f:
            return f.read(512)

    def commit_sha(self, folder: Path) -> str:
        """A revision's commit: a hash of its file names, sizes and modification times (cheap for multi-GB repos;
        any change to a file changes it, as a new commit would on the Hub)."""
        h = hashlib.sha1()
        for p in self.files(folder):
            st = p.stat()
            h.update(b"%s\0%d\0%d\n" % (p.relative_to(folder).as_posix().encode(), st.st_size, st.st_mtime_ns))
        return h.hexdigest()

    def warm(self) -> None:
        """Hash every file now (the ETags a download asks for), so no client request waits for a multi-GB hash."""
        for p in self.files(self.root):
            if _LFS_STORE not in p.parts:
                self.digests(p)

    # ---------------------------------------------------------------- server
    def start(self) -> LocalHub:
        handler = type("Handler", (_Handler,), {"hub": self})
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
        self.url = f"http://127.0.0.1:{self._server.server_address[1]}"
        # A short poll interval keeps stop() fast (shutdown waits for the serving loop to notice).
        threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()
        return self

    def stop(self) -> None:
        """Stop serving; the port is closed, so clients get 'connection refused'. Safe to call twice."""
        if self._server:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    def __enter__(self) -> LocalHub:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()


def _route(pattern: str) -> re.Pattern:
    # {api}: /api/{type}s/owner/name; {web}: the repo's web path, /owner/name or /datasets/owner/name.
    return re.compile("^" + pattern.format(
        api=r"/api/(?P<kind>models|datasets|spaces)/(?P<repo>[^/]+/[^/]+)",
        web=r"/(?:(?P<kind>datasets|spaces)/)?(?P<repo>[^/]+/[^/]+?)",
    ) + "$")


_ROUTES = [  # (methods, path pattern, handler method)
    (("GET",), _route(r"{api}(?:/revision/(?P<rev>[^/]+))?"), "repo_info"),
    (("GET",), _route(r"{api}/tree/(?P<rev>[^/]+)(?:/(?P<sub>.+))?"), "tree"),
    (("GET", "HEAD"), _route(r"{web}/resolve/(?P<rev>[^/]+)/(?P<file>.+)"), "resolve"),
    (("POST",), _route(r"/api/repos/create"), "create_repo"),
    (("POST",), _route(r"{api}/preupload/(?P<rev>[^/]+)"), "preupload"),
    (("POST",), _route(r"{web}\.git/info/lfs/objects/batch"), "lfs_batch"),
    (("PUT",), _route(r"/_lfs/(?P<oid>[0-9a-f]{{64}})"), "lfs_put"),
    (("POST",), _route(r"{api}/commit/(?P<rev>[^/]+)"), "commit"),
]


class _Handler(BaseHTTPRequestHandler):
    hub: LocalHub

    def log_message(self, *args) -> None:  # keep test output clean
        pass

    def do_GET(self) -> None:
        self._dispatch()

    do_HEAD = do_POST = do_PUT = do_GET

    def _dispatch(self) -> None:
        url = urlparse(self.path)
        self.hub.requests.append(f"{self.command} {url.path}")
        self.query = parse_qs(url.query)
        for methods, pattern, name in _ROUTES:
            if self.command in methods and (m := pattern.match(url.path)):
                args = {k: unquote(v) for k, v in m.groupdict().items() if v is not None}
                if "kind" in m.groupdict():
                    args["repo_type"] = (args.pop("kind", None) or "models")[:-1]  # model web paths have no prefix
                try:
                    return getattr(self, name)(**args)
                except ConnectionError:  # the client hung up (a cancelled or timed-out download): not a server bug
                    self.close_connection = True
                    return None
                except Exception as e:  # a server bug: fail the test (see `errors`), not just drop the connection
                    self.hub.errors.append(f"{self.command} {url.path}: {e.__class__.__name__}: {e}")
                    return self._error(500, "InternalError", f"{e.__class__.__name__}: {e}")
        self._error(404, "EntryNotFound", f"no route for {self.command} {url.path}")

    # ---------------------------------------------------------------- replies
    def _send(self, status: int, body: bytes = b"", headers: dict[str, str] | None = None) -> None:
        self.send_response(status)
        headers = {"Content-Length": str(len(body)), **(headers or {})}
        for k, v in headers.items():
            self.send_header(k, v)
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def _json(self, obj, status: int = 200) -> None:
        self._send(status, json.dumps(obj).encode(), {"Content-Type": "application/json"})

    def _error(self, status: int, code: str, message: str, headers: dict[str, str] | None = None) -> None:
        # The client maps X-Error-Code to RepositoryNotFoundError, RevisionNotFoundError, ...
        body = json.dumps({"error": message}).encode()
        self._send(status, body, {"Content-Type": "application/json", "X-Error-Code": code, **(headers or {})})

    def _body(self) -> bytes:
        if self.headers.get("Transfer-Encoding", "").lower() != "chunked":
            return self.rfile.read(int(self.headers.get("Content-Length") or 0))
        chunks = []
        while size := int(self.rfile.readline().split(b";")[0], 16):
            chunks.append(self.rfile.read(size))
            self.rfile.readline()  # CRLF after each chunk
        self.rfile.readline()  # CRLF after the last, empty chunk
        return b"".join(chunks)

    def _repo(self, repo_type: str, repo: str, rev: str | None = None) -> Path | None:
        """The folder of the repo's revision `rev` (a name or a commit sha; None is main), or None after answering
        404 (unknown repo, or a revision it does not have)."""
        if not self.hub.repo_dir(repo_type, repo).is_dir():
            self._error(404, "RepoNotFound", f"{repo_type} repository {repo} not found")
            return None
        for name in self.hub.revisions(repo_type, repo):
            folder = self.hub.repo_dir(repo_type, repo, name)
            if rev in (None, name) or rev == self.hub.commit_sha(folder):
                return folder
        self._error(404, "RevisionNotFound", f"revision {rev} not found in {repo}")
        return None

    # ---------------------------------------------------------------- download
    def repo_info(self, repo_type: str, repo: str, rev: str = "main") -> None:
        if (folder := self._repo(repo_type, repo, rev)) is None:
            return
        siblings = [{"rfilename": p.relative_to(folder).as_posix()} for p in self.hub.files(folder)]
        self._json({"id": repo, "sha": self.hub.commit_sha(folder), "private": False, "siblings": siblings})

    def tree(self, repo_type: str, repo: str, rev: str, sub: str = "") -> None:
        if (folder := self._repo(repo_type, repo, rev)) is None:
            return
        base = folder / sub
        if not base.is_dir():
            return self._error(404, "EntryNotFound", f"{sub} not found in {repo}")
        recursive = self.query.get("recursive", ["false"])[0].lower() in ("1", "true")
        paths = sorted(base.rglob("*") if recursive else base.iterdir())
        self._json([_tree_entry(self.hub, folder, p) for p in paths])  # one page: no Link header

    def resolve(self, repo_type: str, repo: str, rev: str, file: str) -> None:
        if (folder := self._repo(repo_type, repo, rev)) is None:
            return
        sha = self.hub.commit_sha(folder)
        target = (folder / file).resolve()
        if not target.is_relative_to(folder.resolve()) or not target.is_file():
            return self._error(404, "EntryNotFound", f"{file} not found in {repo}", {"X-Repo-Commit": sha})
        fault = self.hub.take_fault(file) if self.command == "GET" else None
        if fault == "500":
            return self._error(500, "InternalError", "the server failed (injected fault)")
        if fault == "404":
            return self._error(404, "EntryNotFound", f"{file} not found in {repo} (injected fault)",
                               {"X-Repo-Commit": sha})
        size = target.stat().st_size
        sha256, sha1 = self.hub.digests(target)
        headers = {"X-Repo-Commit": sha, "ETag": f'"{sha1}"', "Content-Type": "application/octet-stream",
                   "Accept-Ranges": "bytes"}
        if is_lfs(file, self.hub.head(target), size):
            headers.update({"ETag": f'"{sha256}"', "X-Linked-Etag": f'"{sha256}"', "X-Linked-Size": str(size)})
        start, end = 0, size  # the body is bytes [start, end)
        if (rng := re.match(r"bytes=(\d+)-(\d*)$", self.headers.get("Range", ""))) and self.command == "GET":
            start, end = int(rng[1]), min(size, int(rng[2]) + 1 if rng[2] else size)
            if start >= size:
                return self._send(416, b"", {"Content-Range": f"bytes */{size}"})
            headers["Content-Range"] = f"bytes {start}-{end - 1}/{size}"
        if fault == "size":  # a body one byte short of what the metadata announced
            end = max(start, end - 1)
        self._stream(206 if start else 200, target, start, end, headers, drop=fault == "drop",
                     key=f"{repo_type}:{repo}/{file}")

    def _stream(self, status: int, path: Path, start: int, end: int, headers: dict, drop: bool, key: str) -> None:
        self.send_response(status)
        for k, v in {"Content-Length": str(end - start), **headers}.items():
            self.send_header(k, v)
        self.end_headers()
        if self.command == "HEAD":
            return
        stop = start + (end - start) // 2 if drop else end
        sent = 0
        with path.open("rb") as f:
            f.seek(start)
            while start + sent < stop:
                chunk = f.read(min(_CHUNK, stop - start - sent))
                if not chunk:
                    break
                self.wfile.write(chunk)
                sent += len(chunk)
        with self.hub.commit_lock:
            self.hub.bytes_served[key] = self.hub.bytes_served.get(key, 0) + sent
        if drop:  # the client sees the connection close with bytes missing
            self.wfile.flush()
            self.close_connection = True
            self.connection.shutdown(2)

    # ---------------------------------------------------------------- publish
    def create_repo(self) -> None:
        payload = json.loads(self._body())
        repo_type = payload.get("type") or "model"
        repo = f"{payload.get('organization') or 'user'}/{payload['name']}"
        folder = self.hub.repo_dir(repo_type, repo)
        existed = folder.is_dir()
        folder.mkdir(parents=True, exist_ok=True)
        # 409 is what the Hub answers for an existing repo; create_repo(exist_ok=True) accepts it.
        self._json({"url": f"{self.hub.url}/{_URL_PREFIX[repo_type]}{repo}", "name": repo}, 409 if existed else 200)

    def preupload(self, repo_type: str, repo: str, rev: str) -> None:
        payload = json.loads(self._body())
        if (folder := self._repo(repo_type, repo, rev)) is None:
            return
        answers = []
        for f in payload["files"]:
            lfs = is_lfs(f["path"], base64.b64decode(f["sample"]), f["size"])
            existing = folder / f["path"]  # its oid lets the client skip files that did not change
            oid = _file_oid(existing.read_bytes(), lfs) if existing.is_file() else None
            mode = "lfs" if lfs else "regular"
            answers.append({"path": f["path"], "uploadMode": mode, "shouldIgnore": False, "oid": oid})
        self._json({"files": answers})

    def lfs_batch(self, repo_type: str, repo: str) -> None:
        payload = json.loads(self._body())
        objects = []
        for obj in payload["objects"]:
            answer = {"oid": obj["oid"], "size": obj["size"], "authenticated": True}
            if not (self.hub.root / _LFS_STORE / obj["oid"]).is_file():  # no "actions": already uploaded
                answer["actions"] = {"upload": {"href": f"{self.hub.url}/_lfs/{obj['oid']}"}}
            objects.append(answer)
        self._send(200, json.dumps({"transfer": "basic", "objects": objects}).encode(),
                   {"Content-Type": "application/vnd.git-lfs+json"})

    def lfs_put(self, oid: str) -> None:
        data = self._body()
        if hashlib.sha256(data).hexdigest() != oid:
            return self._error(400, "BadRequest", "uploaded content does not match its sha256")
        store = self.hub.root / _LFS_STORE
        store.mkdir(parents=True, exist_ok=True)
        (store / oid).write_bytes(data)
        self._send(200)

    def commit(self, repo_type: str, repo: str, rev: str) -> None:
        operations = [json.loads(line) for line in self._body().splitlines() if line.strip()]
        if (folder := self._repo(repo_type, repo, rev)) is None:
            return
        with self.hub.commit_lock:
            for op in operations:
                if (problem := self._apply(folder, op["key"], op["value"])) is not None:
                    return self._error(400, "BadRequest", problem)
            sha = self.hub.commit_sha(folder)
        url = f"{self.hub.url}/{_URL_PREFIX[repo_type]}{repo}/commit/{sha}"
        self._json({"commitUrl": url, "commitOid": sha, "success": True, "pullRequestUrl": None})

    def _apply(self, folder: Path, key: str, value: dict) -> str | None:
        """Apply one commit operation to the repo folder; returns a problem, or None when done."""
        if key == "header":
            return None
        target = (folder / value["path"]).resolve()
        if not target.is_relative_to(folder.resolve()):
            return f"path {value['path']!r} leaves the repository"
        if key in ("file", "lfsFile"):
            if key == "file":
                content = value["content"]
                data = base64.b64decode(content) if value.get("encoding") == "base64" else content.encode()
            elif (blob := self.hub.root / _LFS_STORE / value["oid"]).is_file():
                data = blob.read_bytes()
            else:
                return f"LFS object {value['oid']} was never uploaded"
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(data)
        elif key == "deletedFile":
            target.unlink(missing_ok=True)
        elif key == "deletedFolder":
            shutil.rmtree(target, ignore_errors=True)
        else:
            return f"unsupported commit operation {key!r}"
        return None


def _file_oid(data: bytes, lfs: bool) -> str:
    # What the client compares with its local file to skip unchanged uploads: sha256 for LFS, git sha1 otherwise.
    return hashlib.sha256(data).hexdigest() if lfs else git_blob_sha1(data)


def _tree_entry(hub: LocalHub, folder: Path, p: Path) -> dict:
    path = p.relative_to(folder).as_posix()
    if p.is_dir():
        return {"type": "directory", "path": path, "oid": hashlib.sha1(path.encode()).hexdigest(), "size": 0}
    size = p.stat().st_size
    sha256, sha1 = hub.digests(p)
    entry = {"type": "file", "path": path, "size": size, "oid": sha1}
    if is_lfs(path, hub.head(p), size):
        pointer = b"version https://git-lfs.github.com/spec/v1\noid sha256:%s\nsize %d\n" % (sha256.encode(), size)
        entry["oid"] = git_blob_sha1(pointer)  # on the Hub, the git blob of an LFS file is its pointer
        entry["lfs"] = {"oid": sha256, "size": size, "pointerSize": len(pointer)}
    return entry
