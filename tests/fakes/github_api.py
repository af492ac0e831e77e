"""A fake GitHub REST API for pull requests on 127.0.0.1 (a thread; free port).

    with FakeGitHub(owner="acme", repo="widgets", token="ghp_x").start() as gh:
        settings = Settings(GH_TOKEN="ghp_x", GITHUB_API_URL=gh.base_url, GITHUB_REPOSITORY=gh.slug)
        ...
        assert gh.prs[0]["head"] == "ticket/proj-1"

Serves, under an optional path prefix (`prefix="/api/v3"` mimics GitHub Enterprise):
`GET /repos/{o}/{r}/pulls?head=<o>:<branch>&state=open|closed|all`, `POST /repos/{o}/{r}/pulls`,
`GET|PATCH /repos/{o}/{r}/pulls/{n}` (with `merged`, `head.sha` from `sha_of`), and everything after
the PR is opened through `activity` (github_activity.py: checks, Actions jobs and logs, reviews,
comments, collaborators; signed webhooks: github_webhooks.py). It answers like GitHub: 401 "Bad
credentials" without the right `Authorization: Bearer|token <token>`, 404 for another repository,
422 "Validation Failed" for a missing field, head == base ("No commits between"), a head not in
`branches` (when given), or a second open PR for the same head ("A pull request already exists").

`prs` holds the records (number, head, base, title, body, state, html_url); `requests` every
request (method, path without the prefix, query, headers, json). `inject(status, times=, headers=,
body=, method=, path_contains=)` makes the next matching requests fail (e.g. 502 twice, or 403 with
`Retry-After: 1` and a secondary-rate-limit message) before the normal answer resumes.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qs, urlsplit

from tests.fakes.github_activity import PullActivity, _Text, conditional
from tests.fakes.loopback import LoopbackHandler, LoopbackServer

_PULLS = re.compile(r"^/repos/(?P<owner>[^/]+)/(?P<repo>[^/]+)/pulls(?:/(?P<number>\d+))?/?$")


@dataclass
class RecordedRequest:
    method: str
    path: str
    query: dict[str, str]
    headers: dict[str, str]
    json: Any


class _Handler(LoopbackHandler):
    fake: FakeGitHub
    json_content_type = "application/json; charset=utf-8"

    def _serve(self) -> None:
        parts = urlsplit(self.path)
        path = parts.path
        if self.fake.prefix and path.startswith(self.fake.prefix):
            path = path[len(self.fake.prefix):]
        elif self.fake.prefix:
            path = "/__outside_prefix__" + path  # GHE serves nothing outside /api/v3
        body = self.read_json()
        query = {k: v[-1] for k, v in parse_qs(parts.query).items()}
        req = RecordedRequest(self.command, path, query, self.lower_headers(), body)
        status, extra, payload = self.fake.handle(req)
        if isinstance(payload, _Text):
            self.send_bytes(status, payload.encode(), extra.pop("Content-Type", "text/plain"), extra)
        else:
            self.send_json(status, payload, extra)

    do_GET = do_POST = do_PATCH = _serve


class FakeGitHub(LoopbackServer):
    handler = _Handler

    def __init__(
        self,
        *,
        owner: str = "acme",
        repo: str = "widgets",
        token: str = "ghp_fake_token_0123456789",  # noqa: S107 - a test credential
        prefix: str = "",
        branches: set[str] | None = None,
        sha_of: Callable[[str], str] | None = None,
    ) -> None:
        super().__init__()
        self.owner, self.repo, self.token = owner, repo, token
        self.prefix = prefix.rstrip("/")
        self.branches = branches
        self.sha_of = sha_of  # branch → its head sha (e.g. read from the bare remote); "" when unset
        self.prs: list[dict[str, Any]] = []
        self.requests: list[RecordedRequest] = []
        self.activity = PullActivity(owner, repo, lambda: self.base_url)

    @property
    def slug(self) -> str:
        return f"{self.owner}/{self.repo}"

    # ----- scripting (and `inject`, from LoopbackServer) -----
    def add_pr(
        self, head: str, base: str = "main", title: str = "existing", body: str = "", state: str = "open"
    ) -> dict[str, Any]:
        """Seed a PR as if someone had opened it on GitHub."""
        with self.lock:
            return self._create(head, base, title, body, state)

    def requests_for(self, method: str) -> list[RecordedRequest]:
        return [r for r in self.requests if r.method == method]

    def pr(self, number: int) -> dict[str, Any]:
        """The pull request as the REST API shows it (head sha read through `sha_of`)."""
        with self.lock:
            return self._view(next(p for p in self.prs if p["number"] == number))

    def merge(self, number: int, *, merged: bool = True) -> dict[str, Any]:
        """Close the PR on GitHub, merged or not; returns its view."""
        with self.lock:
            pr = next(p for p in self.prs if p["number"] == number)
            pr["state"], pr["merged"] = "closed", merged
            pr["merged_at"] = "2026-12-01T13:00:00Z" if merged else None
            return self._view(pr)

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
        sha = self.sha_of(pr["head"]) if self.sha_of else ""
        return {
            "number": pr["number"], "html_url": pr["html_url"], "state": pr["state"],
            "title": pr["title"], "body": pr["body"], "draft": False,
            "merged": pr.get("merged", False), "merged_at": pr.get("merged_at"),
            "user": {"login": self.activity.token_login, "type": "Bot"},
            "head": {"ref": pr["head"], "sha": sha, "label": f"{self.owner}:{pr['head']}"},
            "base": {"ref": pr["base"], "label": f"{self.owner}:{pr['base']}"},
        }

    def handle(self, req: RecordedRequest) -> tuple[int, dict[str, str], Any]:
        with self.lock:
            self.requests.append(req)
            if (fault := self.take_fault(req.method, req.path)) is not None:
                return fault
            if req.path.startswith("/_logs/"):  # a pre-signed download: no Authorization
                return self.activity.handle(req.method, req.path, req.query, req.headers, req.json) or (
                    404, {}, {"message": "Not Found"})
            auth = req.headers.get("authorization", "")
            if auth not in (f"Bearer {self.token}", f"token {self.token}"):
                return 401, {}, {"message": "Bad credentials", "documentation_url": "https://docs.github.com/rest"}
            m = _PULLS.match(req.path)
            if not m and (answer := self.activity.handle(req.method, req.path, req.query, req.headers,
                                                        req.json)) is not None:
                return answer
            if not m or (m["owner"], m["repo"]) != (self.owner, self.repo):
                return 404, {}, {"message": "Not Found", "documentation_url": "https://docs.github.com/rest"}
            if m["number"]:
                return conditional(req.method, req.headers, self._one(int(m["number"]), req))
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
