"""A local, in-memory Hugging Face Hub for tests: just enough of the HTTP API for the real client.

It answers what ``huggingface_hub`` (uploads), ``datasets.load_dataset`` and
``SentenceTransformer`` (downloads) ask for, with regular (non-LFS, non-Xet) uploads only:

- ``GET  /api/whoami-v2``                                   the token's user
- ``POST /api/repos/create``                                create a repo (409 when it exists)
- ``POST /api/validate-yaml``                               accepts every card
- ``GET  /api/{type}s/{repo}/revision/{rev}``               repo info with its files
- ``GET  /api/{type}s/{repo}/tree/{rev}[/{path}]``          file listing
- ``POST /api/{type}s/{repo}/paths-info/{rev}``             info on given paths
- ``POST /api/{type}s/{repo}/preupload/{rev}``              every file is ``regular``
- ``POST /api/{type}s/{repo}/commit/{rev}``                 ndjson commit, base64 file contents
- ``HEAD|GET /[datasets/]{repo}/resolve/{rev}/{path}``       file download

Tokens map to users; a user may write only to repos in their own namespace (else 403), and
reads of private repos need a valid token (else 401). ``hub.fail(...)`` queues faults (an HTTP
status, or a connection reset after reading part of the request) for matching requests.
"""

import base64
import hashlib
import json
import re
import socket
import struct
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, unquote, urlsplit

PREFIXES = {"dataset": "datasets/", "model": ""}


def _sha1(data: bytes) -> str:
    return hashlib.sha1(data).hexdigest()


@dataclass
class Commit:
    """One commit: its id, message, the full file tree after it, and the paths it uploaded."""

    oid: str
    message: str
    files: dict[str, bytes]
    uploaded: list[str] = field(default_factory=list)


@dataclass
class Repo:
    """A repo and its history (``commits[-1]`` is ``main``)."""

    repo_id: str
    repo_type: str
    private: bool
    commits: list[Commit] = field(default_factory=list)

    def files_at(self, revision: str) -> dict[str, bytes] | None:
        """The tree at ``main`` or at a commit id, or None for an unknown revision."""
        if revision == "main":
            return self.commits[-1].files
        return next((c.files for c in self.commits if c.oid == revision), None)

    def head(self, revision: str) -> str:
        """The commit id ``revision`` names."""
        return self.commits[-1].oid if revision == "main" else revision


@dataclass
class Fault:
    """Answer ``times`` requests whose "METHOD path" matches ``pattern`` with a fault.

    ``status``: answer with that HTTP status instead. ``reset``: read part of the request, then
    reset the connection. ``lose_answer``: do the work, then reset instead of answering.
    ``delay``: wait that many seconds, then answer normally (to trip client timeouts). The
    first ``after`` matching requests are served normally.
    """

    pattern: str
    status: int | None = None
    delay: float = 0.0
    reset: bool = False
    lose_answer: bool = False
    times: int = 1
    after: int = 0


class FakeHub:
    """State of the local Hub: users, repos, queued faults and a request log."""

    def __init__(self, tokens: dict[str, str]) -> None:
        self.tokens = tokens
        self.repos: dict[tuple[str, str], Repo] = {}
        self.faults: list[Fault] = []
        self.requests: list[str] = []
        self.headers_seen: list[str] = []
        self.lock = threading.Lock()
        self.url = ""

    def fail(
        self,
        pattern: str,
        *,
        status: int | None = None,
        reset: bool = False,
        lose_answer: bool = False,
        delay: float = 0.0,
        times: int = 1,
        after: int = 0,
    ) -> None:
        """Queue a fault (see :class:`Fault`) for requests matching the regex ``pattern``."""
        self.faults.append(
            Fault(pattern, status, delay, reset, lose_answer, times=times, after=after)
        )

    def repo(self, repo_id: str, repo_type: str = "dataset") -> Repo:
        """An existing repo (KeyError when missing)."""
        return self.repos[(repo_type, repo_id)]

    def commits(self, repo_id: str, repo_type: str = "dataset") -> list[Commit]:
        """Commits after the initial one."""
        return self.repo(repo_id, repo_type).commits[1:]

    def take_fault(self, request_line: str) -> Fault | None:
        """The first queued fault matching ``request_line`` (consumed), if any."""
        with self.lock:
            for fault in self.faults:
                if fault.times > 0 and re.search(fault.pattern, request_line):
                    if fault.after > 0:
                        fault.after -= 1
                        return None
                    fault.times -= 1
                    return fault
        return None


class Handler(BaseHTTPRequestHandler):
    """Routes one request to the fake Hub."""

    server: "HubServer"
    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: object) -> None:  # silence stderr
        pass

    # --- plumbing -----------------------------------------------------------------------------
    @property
    def hub(self) -> FakeHub:
        return self.server.hub

    def _body(self) -> bytes:
        return self.rfile.read(int(self.headers.get("Content-Length") or 0))

    def _send(
        self, status: int, payload: object = None, *, headers: dict | None = None, raw=None
    ) -> None:
        if getattr(self, "lose_answer", False):
            self._drop_connection()
            return
        body = raw if raw is not None else json.dumps(payload).encode()
        self.send_response(status)
        for key, value in (headers or {}).items():
            self.send_header(key, value)
        self.send_header("Content-Type", "application/json" if raw is None else "text/plain")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def _error(self, status: int, message: str, code: str | None = None) -> None:
        headers = {"X-Error-Message": message}
        if code:
            headers["X-Error-Code"] = code
        self._send(status, {"error": message}, headers=headers)

    def _reset(self) -> None:
        """Read part of the request, then drop the connection with a TCP reset."""
        length = int(self.headers.get("Content-Length") or 0)
        self.rfile.read(min(length, 16))
        self._drop_connection()

    def _drop_connection(self) -> None:
        self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        self.connection.close()
        self.close_connection = True

    def _user(self) -> str | None:
        auth = self.headers.get("Authorization", "")
        self.hub.headers_seen.append(auth)
        return self.hub.tokens.get(auth.removeprefix("Bearer ").strip())

    def _dispatch(self) -> None:
        path = urlsplit(self.path).path
        line = f"{self.command} {path}"
        self.hub.requests.append(line)
        fault = self.hub.take_fault(line)
        self.lose_answer = fault is not None and fault.lose_answer
        if fault is not None and fault.delay:
            time.sleep(fault.delay)
        elif fault is not None and not fault.lose_answer:
            if fault.reset:
                self._reset()
                return
            self._body()
            self._error(fault.status or 500, f"injected fault {fault.status}")
            return
        for pattern, method in ROUTES:
            match = re.fullmatch(pattern, line)
            if match:
                method(self, **match.groupdict())
                return
        self._body()
        self._error(404, f"no route for {line}")

    do_GET = do_POST = do_HEAD = _dispatch

    # --- repo access --------------------------------------------------------------------------
    def _repo(self, kind: str, repo_id: str, *, write: bool = False) -> Repo | None:
        """The repo when the caller may use it; else an error is sent and None returned."""
        user = self._user()
        repo = self.hub.repos.get((kind, unquote(repo_id)))
        if write and user is None:
            self._error(401, "Invalid credentials in Authorization header")
            return None
        if repo is None or (repo.private and user is None):
            self._error(404, "Repository not found", "RepoNotFound")
            return None
        if write and repo_id.split("/", maxsplit=1)[0] != user:
            self._error(403, f"You don't have the rights to write to {repo_id}")
            return None
        return repo

    # --- routes -------------------------------------------------------------------------------
    def whoami(self) -> None:
        user = self._user()
        if user is None:
            self._error(401, "Invalid credentials in Authorization header")
            return
        self._send(200, {"type": "user", "name": user, "auth": {"type": "access_token"}})

    def create_repo(self) -> None:
        payload = json.loads(self._body())
        user = self._user()
        if user is None:
            self._error(401, "Invalid credentials in Authorization header")
            return
        namespace = payload.get("organization") or user
        if namespace != user:
            self._error(403, f"You don't have the rights to create a repo under {namespace}")
            return
        kind = payload.get("type") or "model"
        repo_id = f"{namespace}/{payload['name']}"
        url = f"{self.hub.url}/{PREFIXES[kind]}{repo_id}"
        if (kind, repo_id) in self.hub.repos:
            message = "You already created this repo"
            self._send(409, {"error": message, "url": url}, headers={"X-Error-Message": message})
            return
        repo = Repo(repo_id, kind, private=payload.get("visibility", "public") != "public")
        repo.commits.append(Commit(_sha1(repo_id.encode()), "initial commit", {}))
        self.hub.repos[(kind, repo_id)] = repo
        self._send(200, {"url": url, "name": repo_id})

    def validate_yaml(self) -> None:
        self._body()
        self._send(200, {"errors": [], "warnings": []})

    def repo_info(self, kind: str, repo_id: str, rev: str = "main") -> None:
        repo = self._repo(kind, repo_id)
        if repo is None:
            return
        files = repo.files_at(unquote(rev))
        if files is None:
            self._error(404, "Revision not found", "RevisionNotFound")
            return
        self._send(
            200,
            {
                "id": repo.repo_id,
                "sha": repo.head(unquote(rev)),
                "private": repo.private,
                "siblings": [{"rfilename": name} for name in sorted(files)],
                "tags": [],
                "downloads": 0,
                "likes": 0,
            },
        )

    def tree(self, kind: str, repo_id: str, rev: str, path: str | None = None) -> None:
        repo = self._repo(kind, repo_id)
        if repo is None:
            return
        files = repo.files_at(unquote(rev)) or {}
        query = parse_qs(urlsplit(self.path).query)
        recursive = query.get("recursive", ["False"])[0].lower() == "true"
        prefix = unquote(path or "").strip("/")
        prefix = f"{prefix}/" if prefix else ""
        entries: dict[str, dict] = {}
        for name, content in sorted(files.items()):
            if not name.startswith(prefix):
                continue
            rest = name[len(prefix) :].split("/")
            for depth in range(1, len(rest)):  # folders on the way
                folder = prefix + "/".join(rest[:depth])
                if recursive or depth == 1:
                    entries[folder] = {"type": "directory", "path": folder, "oid": _sha1(b"d")}
            if recursive or len(rest) == 1:
                entries[name] = _file_entry(name, content)
        self._send(200, list(entries.values()))

    def paths_info(self, kind: str, repo_id: str, rev: str) -> None:
        body = self._body()
        repo = self._repo(kind, repo_id)
        if repo is None:
            return
        files = repo.files_at(unquote(rev)) or {}
        form = parse_qs(body.decode())
        paths = form.get("paths", []) + form.get("paths[]", [])
        out = []
        for wanted in paths:
            if wanted in files:
                out.append(_file_entry(wanted, files[wanted]))
            elif any(name.startswith(wanted.rstrip("/") + "/") for name in files):
                out.append({"type": "directory", "path": wanted, "oid": _sha1(b"d")})
        self._send(200, out)

    def preupload(self, kind: str, repo_id: str, rev: str) -> None:
        payload = json.loads(self._body())
        if self._repo(kind, repo_id, write=True) is None:
            return
        files = [
            {"path": f["path"], "uploadMode": "regular", "shouldIgnore": False, "oid": None}
            for f in payload["files"]
        ]
        self._send(200, {"files": files})

    def commit(self, kind: str, repo_id: str, rev: str) -> None:
        lines = [json.loads(line) for line in self._body().splitlines() if line.strip()]
        repo = self._repo(kind, repo_id, write=True)
        if repo is None:
            return
        files = dict(repo.commits[-1].files)
        uploaded = []
        message = ""
        for item in lines:
            value = item["value"]
            if item["key"] == "header":
                message = value.get("summary", "")
            elif item["key"] == "file":
                files[value["path"]] = base64.b64decode(value["content"])
                uploaded.append(value["path"])
            elif item["key"] == "deletedFile":
                files.pop(value["path"], None)
            else:
                self._error(400, f"unsupported commit operation {item['key']}")
                return
        oid = _sha1(f"{len(repo.commits)}{message}{sorted(files)}".encode())
        repo.commits.append(Commit(oid, message, files, sorted(uploaded)))
        url = f"{self.hub.url}/{PREFIXES[kind]}{repo.repo_id}/commit/{oid}"
        self._send(200, {"commitUrl": url, "commitOid": oid, "success": True})

    def resolve(self, prefix: str, repo_id: str, rev: str, path: str) -> None:
        kind = "dataset" if prefix else "model"
        repo = self._repo(kind, repo_id)
        if repo is None:
            return
        files = repo.files_at(unquote(rev))
        if files is None:
            self._error(404, "Revision not found", "RevisionNotFound")
            return
        name = unquote(path)
        if name not in files:
            self._error(404, "Entry not found", "EntryNotFound")
            return
        content = files[name]
        headers = {
            "X-Repo-Commit": repo.head(unquote(rev)),
            "ETag": f'"{_sha1(content)}"',
        }
        self._send(200, headers=headers, raw=content)


def _file_entry(name: str, content: bytes) -> dict:
    return {"type": "file", "path": name, "size": len(content), "oid": _sha1(content)}


_REPO = r"(?P<repo_id>[^/]+/[^/]+)"
ROUTES = [
    (r"GET /api/whoami-v2", Handler.whoami),
    (r"POST /api/repos/create", Handler.create_repo),
    (r"POST /api/validate-yaml", Handler.validate_yaml),
    (rf"GET /api/(?P<kind>dataset|model)s/{_REPO}/revision/(?P<rev>[^/]+)", Handler.repo_info),
    (rf"GET /api/(?P<kind>dataset|model)s/{_REPO}", Handler.repo_info),  # revision main
    (
        rf"GET /api/(?P<kind>dataset|model)s/{_REPO}/tree/(?P<rev>[^/]+)(?:/(?P<path>.*))?",
        Handler.tree,
    ),
    (rf"POST /api/(?P<kind>dataset|model)s/{_REPO}/paths-info/(?P<rev>[^/]+)", Handler.paths_info),
    (rf"POST /api/(?P<kind>dataset|model)s/{_REPO}/preupload/(?P<rev>[^/]+)", Handler.preupload),
    (rf"POST /api/(?P<kind>dataset|model)s/{_REPO}/commit/(?P<rev>[^/]+)", Handler.commit),
    (
        rf"(?:GET|HEAD) /(?P<prefix>datasets/)?{_REPO}/resolve/(?P<rev>[^/]+)/(?P<path>.+)",
        Handler.resolve,
    ),
]


class HubServer(ThreadingHTTPServer):
    """The HTTP server around one :class:`FakeHub`, on 127.0.0.1 and a free port."""

    daemon_threads = True

    def __init__(self, hub: FakeHub) -> None:
        super().__init__(("127.0.0.1", 0), Handler)
        self.hub = hub
        hub.url = f"http://127.0.0.1:{self.server_address[1]}"

    def handle_error(self, request, client_address) -> None:
        """Quiet: clients that timed out or were reset are part of the tests."""

    def start(self) -> None:
        """Serve in a background thread."""
        threading.Thread(target=self.serve_forever, daemon=True).start()
