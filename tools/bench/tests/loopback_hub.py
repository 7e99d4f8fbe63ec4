"""A Hugging Face Hub stand-in on 127.0.0.1 that speaks what the real huggingface_hub client asks of the hub:

- `GET /api/models/{repo}/revision/{rev}?blobs=True`: the repository at a revision (sha, siblings with size, blob id
  and LFS sha256); 404 `RevisionNotFound` for an unknown revision, 401 `RepoNotFound` for an unknown repository.
- `HEAD|GET /{repo}/resolve/{rev}/{path}`: small files answered directly (ETag = git blob id, X-Repo-Commit,
  Content-Length); LFS files (weights) redirected with 302 to a second server, the "CDN" on another port (another
  origin, so the client does not follow the HEAD there and drops its token), with X-Linked-Etag = sha256,
  X-Linked-Size and X-Repo-Commit; 401 `GatedRepo` for a gated repository without the accepted token, 404
  `EntryNotFound` for a missing file.
- the CDN: `GET /blobs/{sha256}` with Range requests (206 + Content-Range); a blob marked `cut_once` has its first
  response cut mid-body (the connection is closed after part of the declared length).
- plain downloads (a GitHub release asset, PyTorch's download server): `GET /plain/{name}` redirected to the CDN.

Every request is recorded (server, method, path, Range, Authorization) for the tests to check what the client did.
"""

from __future__ import annotations

import hashlib
import json
import re
import threading
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import unquote, urlparse

LFS_SUFFIXES = (".safetensors", ".bin", ".pt", ".pth", ".gz")


def git_sha1(content: bytes) -> str:
    return hashlib.sha1(b"blob %d\0" % len(content) + content).hexdigest()


def sha256(content: bytes) -> str:
    return hashlib.sha256(content).hexdigest()


@dataclass
class Repo:
    files: dict[str, bytes]
    commit: str
    gated: bool = False
    refs: tuple[str, ...] = ("main",)  # branch and tag names that resolve to the commit
    served: dict[str, bytes] = field(default_factory=dict)  # bytes served instead of the listed ones (corruption)

    def is_lfs(self, path: str) -> bool:
        return path.endswith(LFS_SUFFIXES)


@dataclass
class Request:
    server: str
    method: str
    path: str
    range: str | None
    authorization: str | None


class LoopbackHub:
    def __init__(self, token: str = "hf_loopback_token"):
        self.token = token
        self.repos: dict[str, Repo] = {}
        self.blobs: dict[str, bytes] = {}
        self.plain: dict[str, str] = {}  # name -> blob sha256
        self.cut_once: dict[str, int] = {}  # blob sha256 -> bytes sent before the first response is cut
        self.requests: list[Request] = []
        self._lock = threading.Lock()
        self._servers = [ThreadingHTTPServer(("127.0.0.1", 0), self._handler(name)) for name in ("hub", "cdn")]
        for server in self._servers:
            server.daemon_threads = True

    # ---- set-up ------------------------------------------------------------------------------------------------
    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self._servers[0].server_address[1]}"

    @property
    def cdn(self) -> str:
        return f"http://127.0.0.1:{self._servers[1].server_address[1]}"

    def add_repo(
        self,
        repo_id: str,
        files: dict[str, bytes],
        gated: bool = False,
        commit: str | None = None,
        refs: tuple[str, ...] = ("main",),
    ) -> str:
        commit = commit or hashlib.sha1(repo_id.encode() + b"".join(sorted(files.values()))).hexdigest()
        self.repos[repo_id] = Repo(dict(files), commit, gated, refs)
        for content in files.values():
            self.blobs[sha256(content)] = content
        return commit

    def corrupt(self, repo_id: str, path: str) -> None:
        """Serve other bytes of the same length than the listing's digest says."""
        repo = self.repos[repo_id]
        bad = bytes(b ^ 0xFF for b in repo.files[path])
        repo.served[path] = bad
        self.blobs[sha256(bad)] = bad

    def add_plain(self, name: str, content: bytes) -> str:
        self.plain[name] = sha256(content)
        self.blobs[sha256(content)] = content
        return f"{self.endpoint}/plain/{name}"

    def requests_for(self, server: str, method: str | None = None) -> list[Request]:
        with self._lock:
            return [r for r in self.requests if r.server == server and method in (None, r.method)]

    def __enter__(self) -> LoopbackHub:
        for server in self._servers:
            threading.Thread(target=server.serve_forever, daemon=True).start()
        return self

    def __exit__(self, *exc) -> None:
        for server in self._servers:
            server.shutdown()
            server.server_close()

    # ---- serving -----------------------------------------------------------------------------------------------
    def _handler(self, server_name: str):
        hub = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args) -> None:  # quiet
                pass

            def _record(self) -> None:
                with hub._lock:
                    hub.requests.append(
                        Request(
                            server_name,
                            self.command,
                            self.path,
                            self.headers.get("Range"),
                            self.headers.get("Authorization"),
                        )
                    )

            def do_HEAD(self) -> None:
                self._record()
                hub._serve(self, server_name, body=False)

            def do_GET(self) -> None:
                self._record()
                hub._serve(self, server_name, body=True)

        return Handler

    def _reply(self, handler, status: int, headers: dict[str, str], body: bytes = b"", send_body: bool = True):
        handler.send_response(status)
        for key, value in {"Content-Length": str(len(body)), **headers}.items():
            handler.send_header(key, value)
        handler.end_headers()
        if send_body and body:
            handler.wfile.write(body)

    def _error(self, handler, status: int, code: str, message: str, send_body: bool, extra=None):
        body = json.dumps({"error": message}).encode()
        headers = {"X-Error-Code": code, "X-Error-Message": message, "Content-Type": "application/json"}
        self._reply(handler, status, {**headers, **(extra or {})}, body, send_body)

    def _serve(self, handler, server_name: str, body: bool) -> None:
        path = unquote(urlparse(handler.path).path)
        if server_name == "cdn":
            match = re.fullmatch(r"/blobs/([0-9a-f]{64})", path)
            if match and match[1] in self.blobs:
                return self._blob(handler, match[1], body)
            return self._reply(handler, 404, {}, b"not found", body)
        if match := re.fullmatch(r"/plain/([^/]+)", path):
            if match[1] in self.plain:
                return self._reply(handler, 302, {"Location": f"{self.cdn}/blobs/{self.plain[match[1]]}"}, b"", body)
            return self._reply(handler, 404, {}, b"not found", body)
        if match := re.fullmatch(r"/api/models/([^/]+/[^/]+)/revision/(.+)", path):
            return self._info(handler, match[1], match[2], body)
        if match := re.fullmatch(r"/([^/]+/[^/]+)/resolve/([^/]+)/(.+)", path):
            return self._resolve(handler, match[1], match[2], match[3], body)
        return self._reply(handler, 404, {}, b"not found", body)

    def _repo_at(self, handler, repo_id: str, revision: str, body: bool) -> Repo | None:
        repo = self.repos.get(repo_id)
        if repo is None:
            self._error(handler, 401, "RepoNotFound", "Repository not found", body)
        elif revision not in (*repo.refs, repo.commit):
            self._error(handler, 404, "RevisionNotFound", f"Invalid rev id: {revision}", body)
        else:
            return repo
        return None

    def _info(self, handler, repo_id: str, revision: str, body: bool) -> None:
        repo = self._repo_at(handler, repo_id, revision, body)
        if repo is None:
            return
        siblings = []
        for path, content in sorted(repo.files.items()):
            sibling = {"rfilename": path, "size": len(content), "blobId": git_sha1(content)}
            if repo.is_lfs(path):
                sibling["lfs"] = {"size": len(content), "sha256": sha256(content), "pointerSize": 134}
            siblings.append(sibling)
        info = {"id": repo_id, "sha": repo.commit, "gated": "manual" if repo.gated else False, "siblings": siblings}
        self._reply(handler, 200, {"Content-Type": "application/json"}, json.dumps(info).encode(), body)

    def _resolve(self, handler, repo_id: str, revision: str, path: str, body: bool) -> None:
        repo = self._repo_at(handler, repo_id, revision, body)
        if repo is None:
            return
        if repo.gated and handler.headers.get("Authorization") != f"Bearer {self.token}":
            message = (
                f"Access to model {repo_id} is restricted. You must have access to it and be authenticated to "
                "access it. Please log in."
            )
            return self._error(handler, 401, "GatedRepo", message, body)
        if path not in repo.files:
            return self._error(handler, 404, "EntryNotFound", f"{path} does not exist", body,
                               {"X-Repo-Commit": repo.commit})  # fmt: skip
        listed = repo.files[path]
        served = repo.served.get(path, listed)
        common = {"X-Repo-Commit": repo.commit}
        if repo.is_lfs(path):
            headers = {
                **common,
                "Location": f"{self.cdn}/blobs/{sha256(served)}",
                "X-Linked-Etag": f'"{sha256(listed)}"',
                "X-Linked-Size": str(len(listed)),
                "ETag": f'"{git_sha1(listed)}"',
            }
            return self._reply(handler, 302, headers, b"", body)
        self._reply(handler, 200, {**common, "ETag": f'"{git_sha1(listed)}"'}, served, body)

    def _blob(self, handler, digest: str, body: bool) -> None:
        content = self.blobs[digest]
        requested = handler.headers.get("Range")
        start = int(re.fullmatch(r"bytes=(\d+)-", requested)[1]) if requested else 0
        if start >= len(content) and requested:
            return self._reply(handler, 416, {"Content-Range": f"bytes */{len(content)}"}, b"", body)
        part = content[start:]
        headers = {"Content-Length": str(len(part)), "Accept-Ranges": "bytes"}
        if requested:
            headers["Content-Range"] = f"bytes {start}-{len(content) - 1}/{len(content)}"
        with self._lock:
            cut = self.cut_once.pop(digest, None) if body else None
        handler.send_response(206 if requested else 200)
        for key, value in headers.items():
            handler.send_header(key, value)
        handler.end_headers()
        if not body:
            return
        if cut is None:
            handler.wfile.write(part)
            return
        handler.wfile.write(part[:cut])  # then the connection drops mid-body
        handler.wfile.flush()
        handler.close_connection = True
        handler.connection.shutdown(2)
