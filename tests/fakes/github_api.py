"""A fake GitHub REST API for pull requests on 127.0.0.1 (a thread; free port).

    with FakeGitHub(owner="acme", repo="widgets", token="ghp_x").start() as gh:
        settings = Settings(GH_TOKEN="ghp_x", GITHUB_API_URL=gh.base_url, GITHUB_REPOSITORY=gh.slug)
        ...
        assert gh.prs[0]["head"] == "ticket/proj-1"

Serves, under an optional path prefix (`prefix="/api/v3"` mimics GitHub Enterprise):
`GET /repos/{o}/{r}/pulls?head=<o>:<branch>&state=open|closed|all`, `POST /repos/{o}/{r}/pulls`,
`GET|PATCH /repos/{o}/{r}/pulls/{n}`. It answers like GitHub: 401 "Bad credentials" without the
right `Authorization: Bearer|token <token>`, 404 for another repository, 422 "Validation Failed"
for a missing field, head == base ("No commits between"), a head not in `branches` (when given), or
a second open PR for the same head ("A pull request already exists").

`prs` holds the records (number, head, base, title, body, state, html_url); `requests` every
request (method, path without the prefix, query, headers, json). `inject(status, times=, headers=,
body=, method=, path_contains=)` makes the next matching requests fail (e.g. 502 twice, or 403 with
`Retry-After: 1` and a secondary-rate-limit message) before the normal answer resumes.
"""

from __future__ import annotations

import json
import re
import threading
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

_PULLS = re.compile(r"^/repos/(?P<owner>[^/]+)/(?P<repo>[^/]+)/pulls(?:/(?P<number>\d+))?/?$")


@dataclass
class RecordedRequest:
    method: str
    path: str
    query: dict[str, str]
    headers: dict[str, str]
    json: Any


@dataclass
class Fault:
    status: int
    times: int = 1
    headers: dict[str, str] = field(default_factory=dict)
    body: Any = None
    method: str | None = None
    path_contains: str | None = None

    def fits(self, method: str, path: str) -> bool:
        return (self.method is None or self.method == method) and (
            self.path_contains is None or self.path_contains in path
        )


class FakeGitHub:
    def __init__(
        self,
        *,
        owner: str = "acme",
        repo: str = "widgets",
        token: str = "ghp_fake_token_0123456789",  # noqa: S107 - a test credential
        prefix: str = "",
        branches: set[str] | None = None,
    ) -> None:
        self.owner, self.repo, self.token = owner, repo, token
        self.prefix = prefix.rstrip("/")
        self.branches = branches
        self.prs: list[dict[str, Any]] = []
        self.requests: list[RecordedRequest] = []
        self.faults: list[Fault] = []
        self.lock = threading.Lock()
        self._httpd: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    # ----- lifecycle -----
    def start(self) -> FakeGitHub:
        handler = type("Handler", (_Handler,), {"fake": self})
        self._httpd = ThreadingHTTPServer(("127.0.0.1", 0), handler)
        # A short poll interval so stop() returns in ~50 ms instead of the default 0.5 s.
        self._thread = threading.Thread(
            target=self._httpd.serve_forever, args=(0.05,), daemon=True, name="fake-github"
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._httpd is not None:
            self._httpd.shutdown()
            self._httpd.server_close()
            self._httpd = None

    def __enter__(self) -> FakeGitHub:
        return self if self._httpd else self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def base_url(self) -> str:
        assert self._httpd is not None, "start() the fake first"
        return f"http://127.0.0.1:{self._httpd.server_address[1]}{self.prefix}"

    url = base_url

    @property
    def slug(self) -> str:
        return f"{self.owner}/{self.repo}"

    # ----- scripting -----
    def inject(
        self,
        status: int,
        *,
        times: int = 1,
        headers: dict[str, str] | None = None,
        body: Any = None,
        method: str | None = None,
        path_contains: str | None = None,
    ) -> None:
        """Answer the next `times` matching requests with `status` (body default: GitHub's error shape)."""
        with self.lock:
            self.faults.append(Fault(status, times, headers or {}, body, method, path_contains))

    def add_pr(
        self, head: str, base: str = "main", title: str = "existing", body: str = "", state: str = "open"
    ) -> dict[str, Any]:
        """Seed a PR as if someone had opened it on GitHub."""
        with self.lock:
            return self._create(head, base, title, body, state)

    def requests_for(self, method: str) -> list[RecordedRequest]:
        return [r for r in self.requests if r.method == method]

    # ----- behaviour (called with self.lock held) -----
    def _create(self, head: str, base: str, title: str, body: str, state: str = "open") -> dict[str, Any]:
        number = len(self.prs) + 1
        pr = {
            "number": number, "head": head, "base": base, "title": title, "body": body, "state": state,
            "html_url": f"https://github.example/{self.slug}/pull/{number}",
        }
        self.prs.append(pr)
        return pr

    def _view(self, pr: dict[str, Any]) -> dict[str, Any]:
        return {
            "number": pr["number"], "html_url": pr["html_url"], "state": pr["state"],
            "title": pr["title"], "body": pr["body"],
            "head": {"ref": pr["head"], "label": f"{self.owner}:{pr['head']}"},
            "base": {"ref": pr["base"], "label": f"{self.owner}:{pr['base']}"},
        }

    def handle(self, req: RecordedRequest) -> tuple[int, dict[str, str], Any]:
        with self.lock:
            self.requests.append(req)
            for fault in self.faults:
                if fault.times > 0 and fault.fits(req.method, req.path):
                    fault.times -= 1
                    body = fault.body if fault.body is not None else {"message": f"injected {fault.status}"}
                    return fault.status, fault.headers, body
            auth = req.headers.get("authorization", "")
            if auth not in (f"Bearer {self.token}", f"token {self.token}"):
                return 401, {}, {"message": "Bad credentials", "documentation_url": "https://docs.github.com/rest"}
            m = _PULLS.match(req.path)
            if not m or (m["owner"], m["repo"]) != (self.owner, self.repo):
                return 404, {}, {"message": "Not Found", "documentation_url": "https://docs.github.com/rest"}
            if m["number"]:
                return self._one(int(m["number"]), req)
            if req.method == "GET":
                return 200, {}, self._list(req.query)
            if req.method == "POST":
                return self._post(req.json or {})
            return 404, {}, {"message": "Not Found"}

    def _list(self, query: dict[str, str]) -> list[dict[str, Any]]:
        state = query.get("state", "open")
        head = query.get("head")
        out = []
        for pr in self.prs:
            if state != "all" and pr["state"] != state:
                continue
            if head and head != f"{self.owner}:{pr['head']}":
                continue
            out.append(self._view(pr))
        return out

    def _post(self, data: dict[str, Any]) -> tuple[int, dict[str, str], Any]:
        missing = [k for k in ("title", "head", "base") if not data.get(k)]
        if missing:
            return 422, {}, _invalid([{"resource": "PullRequest", "field": k, "code": "missing_field"}
                                      for k in missing])
        head, base = data["head"].split(":")[-1], data["base"]
        if head == base or (self.branches is not None and head not in self.branches):
            return 422, {}, _invalid([{"resource": "PullRequest", "field": "head", "code": "invalid"}])
        if self.branches is not None and base not in self.branches:
            return 422, {}, _invalid([{"resource": "PullRequest", "field": "base", "code": "invalid"}])
        if any(pr["head"] == head and pr["state"] == "open" for pr in self.prs):
            msg = f"A pull request already exists for {self.owner}:{head}."
            return 422, {}, _invalid([{"resource": "PullRequest", "code": "custom", "message": msg}])
        return 201, {}, self._view(self._create(head, base, data["title"], data.get("body") or ""))

    def _one(self, number: int, req: RecordedRequest) -> tuple[int, dict[str, str], Any]:
        pr = next((p for p in self.prs if p["number"] == number), None)
        if pr is None:
            return 404, {}, {"message": "Not Found"}
        if req.method == "PATCH":
            for key in ("title", "body", "state", "base"):
                if key in (req.json or {}):
                    pr[key] = req.json[key]
        elif req.method != "GET":
            return 404, {}, {"message": "Not Found"}
        return 200, {}, self._view(pr)


def _invalid(errors: list[dict[str, Any]]) -> dict[str, Any]:
    return {"message": "Validation Failed", "errors": errors,
            "documentation_url": "https://docs.github.com/rest/pulls/pulls#create-a-pull-request"}


class _Handler(BaseHTTPRequestHandler):
    fake: FakeGitHub
    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: Any) -> None:
        return None

    def _serve(self) -> None:
        parts = urlsplit(self.path)
        path = parts.path
        if self.fake.prefix and path.startswith(self.fake.prefix):
            path = path[len(self.fake.prefix):]
        elif self.fake.prefix:
            path = "/__outside_prefix__" + path  # GHE serves nothing outside /api/v3
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length) if length else b""
        try:
            body = json.loads(raw) if raw else None
        except ValueError:
            body = None
        query = {k: v[-1] for k, v in parse_qs(parts.query).items()}
        headers = {k.lower(): v for k, v in self.headers.items()}
        status, extra, payload = self.fake.handle(RecordedRequest(self.command, path, query, headers, body))
        data = json.dumps(payload).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json; charset=utf-8")
        self.send_header("Content-Length", str(len(data)))
        for key, value in extra.items():
            self.send_header(key, value)
        self.end_headers()
        self.wfile.write(data)

    do_GET = do_POST = do_PATCH = _serve
