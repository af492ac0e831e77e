"""A fake Jira Cloud REST v3 (the reporting subset) on 127.0.0.1 (a thread; free port).

    with FakeJira(issues={"PROJ-1": "To Do"}).start() as jira:
        settings = Settings(JIRA_BASE_URL=jira.base_url, JIRA_EMAIL=jira.email, JIRA_API_TOKEN=jira.token)
        ...
        assert "https://github..." in jira.comment_texts("PROJ-1")[0]

Serves `GET /rest/api/3/myself`, `GET|POST /rest/api/3/issue/{key}/comment` (a POST body must be
an ADF doc, else 400; it may carry `properties`; GET pages with `startAt`/`maxResults` (≤100) and
`orderBy=created|-created`, answering Jira's `{startAt, maxResults, total, comments}` page), `PUT
/rest/api/3/issue/{key}/comment/{id}` (replace the body; only the comment's author may, else 403),
`GET|POST /rest/api/3/issue/{key}/remotelink` (a POST with a known `globalId`
updates that link), `GET|POST /rest/api/3/issue/{key}/transitions` (the workflow in `workflow`:
each transition is available from any status but its target; a POST moves the issue). Basic auth
must be `email:token` (else 401 with Jira's shape); an unknown issue is 404 "Issue does not exist or
you do not have permission to see it.".

State: `issues` {key: status}, `comments` {key: [ADF body]} (current bodies, in creation order),
`comment_records` {key: [{id, author, body, properties, created}]}, `edits` {comment id: number of
PUTs}, `links` {key: {globalId: link}}, `requests` (method, path, headers, json, query).
`inject(status, times=, headers=, body=, method=, path_contains=)` fails the next matching requests
first; `lose_answers(status, times=, method=, path_contains=)` does the work of the next matching
requests and then answers `status` anyway (a 5xx after the write: a client that retries blindly
posts twice); `hang(times=, path_contains=)` leaves the next matching requests unanswered until
`release()` (or `stop()`).
"""

from __future__ import annotations

import base64
import re
import threading
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qs, urlsplit

from app.services.jira.adf import adf_text, to_adf
from tests.fakes.loopback import Fault, LoopbackHandler, LoopbackServer

_ISSUE = re.compile(r"^/rest/api/3/issue/(?P<key>[^/]+)/(?P<what>comment|remotelink|transitions)"
                    r"(?:/(?P<id>[^/]+))?/?$")
_ONE_ISSUE = re.compile(r"^/rest/api/3/issue/(?P<key>[^/]+)/?$")
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
    query: dict[str, str] | None = None


class _Handler(LoopbackHandler):
    fake: FakeJira
    json_content_type = "application/json;charset=UTF-8"

    def _serve(self) -> None:
        body = self.read_json()
        url = urlsplit(self.path)
        query = {k: v[-1] for k, v in parse_qs(url.query).items()}
        req = RecordedRequest(self.command, url.path, self.lower_headers(), body, query)
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
        self.comment_records: dict[str, list[dict[str, Any]]] = {}
        self.edits: dict[str, int] = {}
        self.lost: list[Fault] = []
        self.hangs: list[Fault] = []
        self.released = threading.Event()
        self.next_comment_id = 10000
        self.links: dict[str, dict[str, dict[str, Any]]] = {}
        self.fields: dict[str, dict[str, Any]] = {}  # key → the issue's fields (set_issue)
        self.requests: list[RecordedRequest] = []

    def fault_body(self, status: int) -> Any:
        return {"errorMessages": ["injected"]}  # Jira's error shape

    def lose_answers(self, status: int, *, times: int = 1, method: str | None = None,
                     path_contains: str | None = None) -> None:
        """Do the next `times` matching requests, then answer `status` as if they had failed."""
        with self.lock:
            self.lost.append(Fault(status, times, {}, None, method, path_contains))

    def hang(self, *, times: int = 1, path_contains: str | None = None) -> None:
        """The next `times` matching requests get no answer until `release()` (then 503): a Jira
        that accepts connections and never answers."""
        with self.lock:
            self.hangs.append(Fault(503, times, {}, None, None, path_contains))

    def release(self) -> None:
        self.released.set()

    def stop(self) -> None:
        self.release()  # hung handler threads answer, so the server can stop
        super().stop()

    def add_foreign_comment(self, key: str, text: str, author: str = "someone-else") -> str:
        """A comment by another account (a person, or another bot quoting our marker)."""
        with self.lock:
            return self._store_comment(key, to_adf(text), author, [])

    # ----- the issue itself (GET /rest/api/3/issue/{key}, as Jira's REST v3 answers it) -----
    def set_issue(self, key: str, status: str = "To Do", **fields: Any) -> None:
        """Seed an issue with its fields as v3 gives them: `summary`, `description` (an ADF doc, or
        text made into one), `labels`, `components` ([{"name"}]), `issuetype`, `customfield_<n>`."""
        with self.lock:
            self.issues[key] = status
            if isinstance(fields.get("description"), str):
                fields["description"] = to_adf(fields["description"])
            self.fields[key] = fields

    def add_comment_by(self, key: str, text: str, account_id: str, display_name: str) -> None:
        """A comment someone else wrote on the issue (ADF body, like every v3 comment)."""
        with self.lock:
            self.next_comment_id += 1
            body = to_adf(text)
            self.comments.setdefault(key, []).append(body)
            self.comment_records.setdefault(key, []).append(
                {"id": str(self.next_comment_id), "body": body, "properties": [],
                 "author": {"accountId": account_id, "displayName": display_name},
                 "created": self.next_comment_id})

    def _issue(self, key: str, req: RecordedRequest) -> tuple[int, dict[str, str], Any]:
        if key not in self.issues:
            return 404, {}, _NO_ISSUE
        have = {"status": {"name": self.issues[key]}, **self.fields.get(key, {})}
        wanted = (req.query or {}).get("fields", "*all")
        names = set(wanted.split(","))
        chosen = have if "*all" in names else {k: v for k, v in have.items() if k in names}
        return 200, {}, {"id": str(10000 + len(key)), "key": key, "fields": chosen,
                         "self": f"{self.base_url}/rest/api/3/issue/{key}"}

    def comment_texts(self, key: str) -> list[str]:
        """The visible text of each comment on `key` (ADF flattened)."""
        return [adf_text(c).strip() for c in self.comments.get(key, [])]

    # ----- behaviour -----
    def handle(self, req: RecordedRequest) -> tuple[int, dict[str, str], Any]:
        with self.lock:
            hung = next((h for h in self.hangs if h.times > 0 and h.fits(req.method, req.path)), None)
            if hung is not None:
                hung.times -= 1
                self.requests.append(req)
        if hung is not None:
            self.released.wait(120)
            return 503, {}, self.fault_body(503)
        with self.lock:
            self.requests.append(req)
            if (fault := self.take_fault(req.method, req.path)) is not None:
                return fault
            expected = "Basic " + base64.b64encode(f"{self.email}:{self.token}".encode()).decode()
            if req.headers.get("authorization") != expected:
                return 401, {}, {"errorMessages": ["You are not authenticated. Authentication required."]}
            if req.path == "/rest/api/3/myself" and req.method == "GET":
                return 200, {}, {"accountId": self.account_id, "emailAddress": self.email, "active": True}
            if (one := _ONE_ISSUE.match(req.path)) and req.method == "GET":
                return self._issue(one["key"], req)
            m = _ISSUE.match(req.path)
            if not m:
                return 404, {}, {"errorMessages": ["null for uri"], "errors": {}}
            key = m["key"]
            if key not in self.issues:
                return 404, {}, _NO_ISSUE
            if m["id"] is not None and m["what"] != "comment":
                return 404, {}, {"errorMessages": ["null for uri"], "errors": {}}
            answer = getattr(self, f"_{m['what']}")(key, req, m["id"])
            for lost in self.lost:
                if lost.times > 0 and lost.fits(req.method, req.path) and answer[0] < 400:
                    lost.times -= 1
                    return lost.status, {}, self.fault_body(lost.status)
            return answer

    def _store_comment(self, key: str, body: dict[str, Any], author: str, properties: list[Any]) -> str:
        self.next_comment_id += 1
        cid = str(self.next_comment_id)
        self.comments.setdefault(key, []).append(body)
        self.comment_records.setdefault(key, []).append(
            {"id": cid, "author": {"accountId": author}, "body": body, "properties": properties,
             "created": self.next_comment_id})
        return cid

    def _comment(self, key: str, req: RecordedRequest, cid: str | None) -> tuple[int, dict[str, str], Any]:
        records = self.comment_records.setdefault(key, [])
        if req.method == "GET" and cid is None:
            q = req.query or {}
            start, size = int(q.get("startAt", 0)), min(100, int(q.get("maxResults", 50)))
            ordered = sorted(records, key=lambda r: r["created"], reverse=q.get("orderBy") == "-created")
            page = [{k: v for k, v in r.items() if k != "properties"} for r in ordered[start:start + size]]
            return 200, {}, {"startAt": start, "maxResults": size, "total": len(records), "comments": page}
        body = (req.json or {}).get("body") if req.method in ("POST", "PUT") else None
        if not (isinstance(body, dict) and body.get("type") == "doc" and body.get("version") == 1):
            return 400, {}, {"errorMessages": [], "errors": {"comment": "Comment body is not valid!"}}
        if req.method == "POST" and cid is None:
            new = self._store_comment(key, body, self.account_id, (req.json or {}).get("properties") or [])
            return 201, {}, {"id": new, "body": body}
        if req.method != "PUT" or cid is None:
            return 405, {}, {"errorMessages": ["method not allowed"], "errors": {}}
        for i, record in enumerate(records):
            if record["id"] == cid:
                if record["author"]["accountId"] != self.account_id:
                    return 403, {}, {"errorMessages": ["You do not have permission to edit this comment."],
                                     "errors": {}}
                record["body"] = body
                self.comments[key][i] = body
                self.edits[cid] = self.edits.get(cid, 0) + 1
                return 200, {}, {"id": cid, "body": body}
        return 404, {}, {"errorMessages": ["Can not find a comment for the id: " + cid + "."], "errors": {}}

    def _remotelink(self, key: str, req: RecordedRequest, _: str | None) -> tuple[int, dict[str, str], Any]:
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

    def _transitions(self, key: str, req: RecordedRequest, _: str | None) -> tuple[int, dict[str, str], Any]:
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
