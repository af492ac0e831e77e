"""A fake Jira Cloud REST v3 (the reporting subset) on 127.0.0.1 (a thread; free port).

    with FakeJira(issues={"PROJ-1": "To Do"}).start() as jira:
        settings = Settings(JIRA_BASE_URL=jira.base_url, JIRA_EMAIL=jira.email, JIRA_API_TOKEN=jira.token)
        ...
        assert "https://github..." in jira.comment_texts("PROJ-1")[0]

Serves `GET /rest/api/3/myself`, `POST /rest/api/3/issue/{key}/comment` (the body must be an ADF
doc, else 400), `GET|POST /rest/api/3/issue/{key}/remotelink` (a POST with a known `globalId`
updates that link), `GET|POST /rest/api/3/issue/{key}/transitions` (the workflow in `workflow`:
each transition is available from any status but its target; a POST moves the issue). Basic auth
must be `email:token` (else 401 with Jira's shape); an unknown issue is 404 "Issue does not exist or
you do not have permission to see it.".

State: `issues` {key: status}, `comments` {key: [ADF body]}, `links` {key: {globalId: link}},
`requests` (method, path, headers, json). `inject(status, times=, headers=, body=, method=,
path_contains=)` fails the next matching requests first.
"""

from __future__ import annotations

import base64
import re
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from app.services.jira.adf import adf_text
from tests.fakes.loopback import LoopbackHandler, LoopbackServer

_ISSUE = re.compile(r"^/rest/api/3/issue/(?P<key>[^/]+)/(?P<what>comment|remotelink|transitions)/?$")
DEFAULT_WORKFLOW = [
    {"id": "11", "name": "Start Progress", "to": {"name": "In Progress"}},
    {"id": "21", "name": "Ready for Review", "to": {"name": "In Review"}},
    {"id": "31", "name": "Done", "to": {"name": "Done"}},
]
_NO_ISSUE = {"errorMessages": ["Issue does not exist or you do not have permission to see it."], "errors": {}}


@dataclass
class RecordedRequest:
    method: str
    path: str
    headers: dict[str, str]
    json: Any


class _Handler(LoopbackHandler):
    fake: FakeJira
    json_content_type = "application/json;charset=UTF-8"

    def _serve(self) -> None:
        body = self.read_json()
        req = RecordedRequest(self.command, urlsplit(self.path).path, self.lower_headers(), body)
        status, extra, payload = self.fake.handle(req)
        self.send_json(status, payload, extra)

    do_GET = do_POST = do_PUT = _serve


class FakeJira(LoopbackServer):
    handler = _Handler

    def __init__(
        self,
        *,
        issues: dict[str, str] | None = None,
        email: str = "bot@example.com",
        token: str = "jira-fake-api-token-0123456789",  # noqa: S107 - a test credential
        account_id: str = "5b10ac8d82e05b22cc7d4ef5",
        workflow: list[dict[str, Any]] | None = None,
    ) -> None:
        super().__init__()
        self.issues = dict(issues if issues is not None else {"PROJ-1": "To Do"})
        self.email, self.token, self.account_id = email, token, account_id
        self.workflow = workflow if workflow is not None else [dict(t) for t in DEFAULT_WORKFLOW]
        self.comments: dict[str, list[dict[str, Any]]] = {}
        self.links: dict[str, dict[str, dict[str, Any]]] = {}
        self.requests: list[RecordedRequest] = []

    def fault_body(self, status: int) -> Any:
        return {"errorMessages": ["injected"]}  # Jira's error shape

    def comment_texts(self, key: str) -> list[str]:
        """The visible text of each comment on `key` (ADF flattened)."""
        return [adf_text(c).strip() for c in self.comments.get(key, [])]

    # ----- behaviour -----
    def handle(self, req: RecordedRequest) -> tuple[int, dict[str, str], Any]:
        with self.lock:
            self.requests.append(req)
            if (fault := self.take_fault(req.method, req.path)) is not None:
                return fault
            expected = "Basic " + base64.b64encode(f"{self.email}:{self.token}".encode()).decode()
            if req.headers.get("authorization") != expected:
                return 401, {}, {"errorMessages": ["You are not authenticated. Authentication required."]}
            if req.path == "/rest/api/3/myself" and req.method == "GET":
                return 200, {}, {"accountId": self.account_id, "emailAddress": self.email, "active": True}
            m = _ISSUE.match(req.path)
            if not m:
                return 404, {}, {"errorMessages": ["null for uri"], "errors": {}}
            key = m["key"]
            if key not in self.issues:
                return 404, {}, _NO_ISSUE
            return getattr(self, f"_{m['what']}")(key, req)

    def _comment(self, key: str, req: RecordedRequest) -> tuple[int, dict[str, str], Any]:
        body = (req.json or {}).get("body") if req.method == "POST" else None
        if not (isinstance(body, dict) and body.get("type") == "doc" and body.get("version") == 1):
            return 400, {}, {"errorMessages": [], "errors": {"comment": "Comment body is not valid!"}}
        self.comments.setdefault(key, []).append(body)
        return 201, {}, {"id": str(sum(len(v) for v in self.comments.values())), "body": body}

    def _remotelink(self, key: str, req: RecordedRequest) -> tuple[int, dict[str, str], Any]:
        links = self.links.setdefault(key, {})
        if req.method == "GET":
            return 200, {}, list(links.values())
        data = req.json or {}
        obj = data.get("object") or {}
        if not obj.get("url") or not obj.get("title"):
            return 400, {}, {"errorMessages": [], "errors": {"object": "url and title are required"}}
        gid = data.get("globalId") or f"auto-{len(links) + 1}"
        status = 200 if gid in links else 201
        links[gid] = {"id": len(links) + 1, **data}
        return status, {}, {"id": links[gid]["id"], "self": f"/rest/api/3/issue/{key}/remotelink"}

    def _transitions(self, key: str, req: RecordedRequest) -> tuple[int, dict[str, str], Any]:
        here = self.issues[key]
        available = [t for t in self.workflow if t["to"]["name"] != here]
        if req.method == "GET":
            return 200, {}, {"transitions": available}
        wanted = str(((req.json or {}).get("transition") or {}).get("id"))
        chosen = next((t for t in available if t["id"] == wanted), None)
        if chosen is None:
            msg = f"Transition id '{wanted}' is not valid for this issue."
            return 400, {}, {"errorMessages": [msg], "errors": {}}
        self.issues[key] = chosen["to"]["name"]
        return 204, {}, None
