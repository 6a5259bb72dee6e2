"""A local Hugging Face Hub-compatible file server for tests (stdlib only, 127.0.0.1 only).

It answers what the real `huggingface_hub` client calls to download (`repo_info`, `list_repo_tree`, HEAD/GET
`resolve`) and to publish (`create_repo`, `preupload`, `commit` with regular files), serving repos from
`<root>/<type>s/<owner>/<name>/`. Each repo has one branch, `main`; its commit sha is a hash of its files.
"""
from __future__ import annotations

import base64
import hashlib
import json
import re
import shutil
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import unquote, urlparse

_PREFIX = {"models": "", "datasets": "datasets/", "spaces": "spaces/"}
_API = re.compile(r"^/api/(models|datasets|spaces)/([^/]+/[^/]+)/(revision|tree|preupload|commit)/([^/]+)(/.*)?$")
_RESOLVE = re.compile(r"^/(?:(datasets|spaces)/)?([^/]+/[^/]+)/resolve/([^/]+)/(.+)$")


class LocalHub:
    def __init__(self, root: Path):
        self.root = Path(root)
        self.requests: list[str] = []  # "METHOD path", for tests that check what was asked
        self._server: ThreadingHTTPServer | None = None

    # ------------------------------------------------------------ repos on disk
    def repo_dir(self, kind: str, repo_id: str) -> Path:
        return self.root / kind / repo_id

    def add_repo(self, repo_id: str, files: dict[str, bytes] | Path, repo_type: str = "model") -> str:
        folder = self.repo_dir(f"{repo_type}s", repo_id)
        folder.mkdir(parents=True, exist_ok=True)
        if isinstance(files, Path):
            shutil.copytree(files, folder, dirs_exist_ok=True)
        else:
            for name, data in files.items():
                (folder / name).parent.mkdir(parents=True, exist_ok=True)
                (folder / name).write_bytes(data)
        return self.sha(folder)

    @staticmethod
    def files(folder: Path) -> list[Path]:
        return sorted(p for p in folder.rglob("*") if p.is_file())

    def sha(self, folder: Path) -> str:
        h = hashlib.sha1()
        for p in self.files(folder):
            h.update(p.relative_to(folder).as_posix().encode() + hashlib.sha256(p.read_bytes()).digest())
        return h.hexdigest()

    # ------------------------------------------------------------ server
    @property
    def url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}"

    def start(self) -> LocalHub:
        hub = self

        class Handler(_Handler):
            pass

        Handler.hub = hub
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self._server.serve_forever, daemon=True).start()
        return self

    def stop(self) -> None:
        if self._server:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    def __enter__(self) -> LocalHub:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()


class _Handler(BaseHTTPRequestHandler):
    hub: LocalHub

    def log_message(self, *args) -> None:  # keep test output clean
        pass

    def _send(self, status: int, body: bytes = b"", headers: dict | None = None, head: bool = False) -> None:
        self.send_response(status)
        for k, v in (headers or {}).items():
            self.send_header(k, v)
        self.send_header("Content-Length", str(len(body)) if not (headers and "Content-Length" in headers) else headers["Content-Length"])
        self.end_headers()
        if not head:
            self.wfile.write(body)

    def _json(self, obj, status: int = 200) -> None:
        self._send(status, json.dumps(obj).encode(), {"Content-Type": "application/json"})

    def _not_found(self, code: str = "RepoNotFound", head: bool = False) -> None:
        self._send(404, b'{"error": "not found"}', {"X-Error-Code": code, "Content-Type": "application/json"}, head)

    def _repo(self, kind: str, repo_id: str, rev: str | None) -> Path | None:
        folder = self.hub.repo_dir(kind, repo_id)
        if not folder.is_dir():
            self._not_found()
            return None
        if rev is not None and unquote(rev) not in ("main", self.hub.sha(folder)):
            self._not_found("RevisionNotFound")
            return None
        return folder

    # ------------------------------------------------------------ GET / HEAD
    def do_HEAD(self) -> None:
        self._get(head=True)

    def do_GET(self) -> None:
        self._get(head=False)

    def _get(self, head: bool) -> None:
        path = urlparse(self.path).path
        self.hub.requests.append(f"{self.command} {path}")
        if m := _RESOLVE.match(path):
            return self._resolve(m[1] or "models", m[2], m[3], unquote(m[4]), head)
        m = _API.match(path)
        if not m or m[3] not in ("revision", "tree"):
            return self._not_found("EntryNotFound", head)
        kind, repo_id, what, rev = m[1], m[2], m[3], m[4]
        if (folder := self._repo(kind, repo_id, rev)) is None:
            return
        sha = self.hub.sha(folder)
        entries = [
            {"type": "file", "path": p.relative_to(folder).as_posix(), "size": p.stat().st_size,
             "oid": hashlib.sha1(b"blob %d\0" % p.stat().st_size + p.read_bytes()).hexdigest()}
            for p in self.hub.files(folder)
        ]
        if what == "revision":
            return self._json({"id": repo_id, "sha": sha, "private": False,
                               "siblings": [{"rfilename": e["path"]} for e in entries]})
        return self._json(entries)

    def _resolve(self, kind: str, repo_id: str, rev: str, filename: str, head: bool) -> None:
        if (folder := self._repo(kind, repo_id, rev)) is None:
            return
        target = (folder / filename).resolve()
        if not target.is_relative_to(folder.resolve()) or not target.is_file():
            return self._not_found("EntryNotFound", head)
        data = target.read_bytes()
        headers = {
            "X-Repo-Commit": self.hub.sha(folder),
            "ETag": f'"{hashlib.sha256(data).hexdigest()}"',
            "Content-Length": str(len(data)),
            "Content-Type": "application/octet-stream",
        }
        self._send(200, data, headers, head)

    # ------------------------------------------------------------ POST
    def do_POST(self) -> None:
        path = urlparse(self.path).path
        self.hub.requests.append(f"POST {path}")
        body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        if path == "/api/repos/create":
            return self._create(json.loads(body))
        m = _API.match(path)
        if not m or m[3] not in ("preupload", "commit"):
            return self._not_found("EntryNotFound")
        kind, repo_id, what = m[1], m[2], m[3]
        if (folder := self._repo(kind, repo_id, None)) is None:
            return
        if what == "preupload":  # everything goes as a regular git blob: no LFS, no Xet
            files = json.loads(body)["files"]
            return self._json({"files": [{"path": f["path"], "uploadMode": "regular", "shouldIgnore": False} for f in files]})
        self._commit(folder, kind, repo_id, body)

    def _create(self, payload: dict) -> None:
        kind = f"{payload.get('type') or 'model'}s"
        repo_id = f"{payload.get('organization') or 'user'}/{payload['name']}"
        folder = self.hub.repo_dir(kind, repo_id)
        existed = folder.is_dir()
        folder.mkdir(parents=True, exist_ok=True)
        url = f"{self.hub.url}/{_PREFIX[kind]}{repo_id}"
        self._json({"url": url, "name": repo_id}, 409 if existed else 200)

    def _commit(self, folder: Path, kind: str, repo_id: str, body: bytes) -> None:
        for line in body.decode().splitlines():
            if not line.strip():
                continue
            op = json.loads(line)
            value = op["value"]
            if op["key"] == "file":
                target = (folder / value["path"]).resolve()
                if not target.is_relative_to(folder.resolve()):
                    return self._send(400, b"bad path")
                target.parent.mkdir(parents=True, exist_ok=True)
                content = value["content"]
                target.write_bytes(base64.b64decode(content) if value.get("encoding") == "base64" else content.encode())
            elif op["key"] == "deletedFile":
                (folder / value["path"]).unlink(missing_ok=True)
            elif op["key"] not in ("header",):
                return self._send(400, f"unsupported commit operation {op['key']}".encode())
        sha = self.hub.sha(folder)
        self._json({"commitUrl": f"{self.hub.url}/{_PREFIX[kind]}{repo_id}/commit/{sha}", "commitOid": sha,
                    "success": True})
