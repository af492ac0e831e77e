"""What happens on a fake GitHub pull request after it is opened: CI, reviews, comments, people.

`FakeGitHub` (github_api.py) owns one `PullActivity` as `gh.activity` and routes every path that is
not a pull-request call to it. Shapes follow GitHub's REST description (github/rest-api-description,
`api.github.com.json`): the fields the service reads are present with their documented types, the
rest left out.

Serves (under the fake's prefix, for `/repos/{owner}/{repo}`):
- `GET commits/{sha}/check-suites` → `{total_count, check_suites}`; `GET commits/{sha}/check-runs`
  and `GET check-suites/{id}/check-runs` → `{total_count, check_runs}`; `GET check-runs/{id}`.
- `GET actions/jobs/{id}` (an Actions job; its id is its check run's id, as on GitHub);
  `GET actions/jobs/{id}/logs` → **302** to `/_logs/{id}` (a pre-signed download: no auth needed),
  which serves the plain-text log; `POST actions/jobs/{id}/rerun` → 201 and a new attempt whose
  outcome `rerun_outcome` decides (default: the same conclusion again). With `hold_reruns` the new
  attempt stays `in_progress` (no conclusion; left out of the completed jobs the service reads)
  until the test calls `finish_reruns()` (with the fake's `lock` held).
- `GET pulls/{n}/reviews`, `GET pulls/{n}/comments` (review comments: path, line, diff_hunk,
  in_reply_to_id), `POST pulls/{n}/comments/{id}/replies` → 201, `GET|POST issues/{n}/comments`.
- `GET collaborators/{login}/permission` → `{permission, role_name, user}`; 404 for a stranger.
- Conditional GETs: every 200 carries an `ETag`; `If-None-Match` with it → 304, empty body.

Scripting: `complete_ci(sha, jobs)` records one completed check suite (and its runs / jobs) for a
commit and returns the suite; `add_review`, `add_review_comment`, `add_issue_comment` record what a
person did; `collaborators` maps login → permission. State is readable: `suites`, `runs`, `reviews`,
`review_comments`, `issue_comments`, `reruns`.
"""

from __future__ import annotations

import hashlib
import itertools
import json
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

_ids = itertools.count(9_000_001)


@dataclass
class Job:
    """One CI job as a test scripts it: its name, conclusion and full log."""

    name: str
    conclusion: str  # success | failure | cancelled | timed_out | ...
    log: str = ""


def user(login: str, kind: str = "User") -> dict[str, Any]:
    return {
        "login": login,
        "id": abs(hash(login)) % 10_000_000,
        "type": kind,
        "html_url": f"https://github.example/{login}",
    }


@dataclass
class PullActivity:
    owner: str
    repo: str
    base_url: Callable[[], str]
    suites: list[dict[str, Any]] = field(default_factory=list)
    runs: list[dict[str, Any]] = field(default_factory=list)
    logs: dict[int, str] = field(default_factory=dict)
    reviews: dict[int, list[dict[str, Any]]] = field(default_factory=dict)
    review_comments: dict[int, list[dict[str, Any]]] = field(default_factory=dict)
    issue_comments: dict[int, list[dict[str, Any]]] = field(default_factory=dict)
    collaborators: dict[str, str] = field(default_factory=dict)  # login → admin|write|read
    reruns: list[int] = field(default_factory=list)
    # (job run, attempt) → the conclusion and log of a re-run; default: the same outcome again.
    rerun_outcome: Callable[[dict[str, Any], int], tuple[str, str]] | None = None
    hold_reruns: bool = False  # True: a re-run stays in progress until finish_reruns()
    held: list[tuple[dict[str, Any], str]] = field(default_factory=list)  # (job run, conclusion before)
    token_login: str = "auto-code-bot"  # who the API token writes as

    @property
    def repo_url(self) -> str:
        return f"{self.base_url()}/repos/{self.owner}/{self.repo}"

    # ----- scripting -----
    def complete_ci(
        self,
        sha: str,
        jobs: list[Job],
        *,
        branch: str = "",
        prs: list[dict[str, Any]] | None = None,
        app_slug: str = "github-actions",
    ) -> dict[str, Any]:
        """Record a completed check suite on `sha` with one check run (= Actions job) per job."""
        suite_id = next(_ids)
        failed = [j for j in jobs if j.conclusion not in ("success", "neutral", "skipped")]
        suite = {
            "id": suite_id,
            "head_branch": branch,
            "head_sha": sha,
            "status": "completed",
            "conclusion": "failure" if failed else "success",
            "app": {"slug": app_slug, "name": app_slug},
            "pull_requests": prs or [],
            "latest_check_runs_count": len(jobs),
            "url": f"{self.repo_url}/check-suites/{suite_id}",
        }
        self.suites.append(suite)
        for job in jobs:
            run_id = next(_ids)
            self.runs.append(
                {
                    "id": run_id,
                    "name": job.name,
                    "head_sha": sha,
                    "status": "completed",
                    "conclusion": job.conclusion,
                    "check_suite": {"id": suite_id},
                    "app": {"slug": app_slug},
                    "details_url": f"https://github.example/actions/job/{run_id}",
                    "output": {"title": f"{job.name} {job.conclusion}", "summary": "", "text": None},
                    "pull_requests": prs or [],
                    "run_attempt": 1,
                }
            )
            self.logs[run_id] = job.log
        return suite

    def add_review(
        self, number: int, login: str, state: str, body: str = "", *, kind: str = "User", commit_id: str = ""
    ) -> dict[str, Any]:
        review = {
            "id": next(_ids),
            "user": user(login, kind),
            "body": body,
            "state": state.upper(),
            "commit_id": commit_id,
            "submitted_at": "2026-12-01T12:00:00Z",
            "html_url": f"https://github.example/{self.owner}/{self.repo}/pull/{number}#review",
        }
        self.reviews.setdefault(number, []).append(review)
        return review

    def add_review_comment(
        self,
        number: int,
        login: str,
        body: str,
        *,
        path: str,
        line: int,
        diff_hunk: str = "",
        review_id: int | None = None,
        in_reply_to: int | None = None,
        kind: str = "User",
        commit_id: str = "",
    ) -> dict[str, Any]:
        cid = next(_ids)
        comment = {
            "id": cid,
            "pull_request_review_id": review_id,
            "user": user(login, kind),
            "body": body,
            "path": path,
            "line": line,
            "original_line": line,
            "side": "RIGHT",
            "diff_hunk": diff_hunk,
            "commit_id": commit_id,
            "html_url": f"https://github.example/{self.owner}/{self.repo}/pull/{number}#r{cid}",
            "created_at": "2026-12-01T12:00:00Z",
        }
        if in_reply_to is not None:
            comment["in_reply_to_id"] = in_reply_to
        self.review_comments.setdefault(number, []).append(comment)
        return comment

    def add_issue_comment(self, number: int, login: str, body: str, *, kind: str = "User") -> dict[str, Any]:
        cid = next(_ids)
        comment = {
            "id": cid,
            "user": user(login, kind),
            "body": body,
            "created_at": "2026-12-01T12:00:00Z",
            "html_url": f"https://github.example/{self.owner}/{self.repo}/pull/{number}#issuecomment-{cid}",
        }
        self.issue_comments.setdefault(number, []).append(comment)
        return comment

    def finish_reruns(self) -> int:
        """Complete every re-run held in progress (`hold_reruns`) as `rerun_outcome` decides; how
        many. Call with the fake's `lock` held (the server thread reads the runs meanwhile)."""
        held, self.held = self.held, []
        for run, before in held:
            run["status"] = "completed"
            run["conclusion"] = before
            if self.rerun_outcome is not None:
                run["conclusion"], self.logs[run["id"]] = self.rerun_outcome(run, run["run_attempt"])
        return len(held)

    def replies_to(self, number: int, comment_id: int) -> list[dict[str, Any]]:
        return [c for c in self.review_comments.get(number, []) if c.get("in_reply_to_id") == comment_id]

    # ----- serving (called with the fake's lock held) -----
    def handle(
        self, method: str, path: str, query: dict[str, str], headers: dict[str, str], body: Any
    ) -> tuple[int, dict[str, str], Any] | None:
        """The answer for `path` (already stripped of prefix), or None when no route matches."""
        m = re.match(r"^/_logs/(\d+)$", path)
        if m and method == "GET":
            job_id = int(m[1])
            return (
                (200, {"Content-Type": "text/plain"}, _Text(self.logs[job_id]))
                if job_id in self.logs
                else (404, {}, {"message": "Not Found"})
            )
        if path == "/user" and method == "GET":
            return 200, {}, {**user(self.token_login, "Bot"), "login": self.token_login}
        prefix = f"/repos/{self.owner}/{self.repo}/"
        if not path.startswith(prefix):
            return None
        rest = path[len(prefix) :].rstrip("/")
        for pattern, verb, fn in self._routes():
            if verb == method and (m := re.fullmatch(pattern, rest)):
                status, extra, payload = fn(*m.groups(), body=body or {})
                return conditional(method, headers, (status, extra, payload))
        return None

    def _routes(self) -> list[tuple[str, str, Callable[..., tuple[int, dict[str, str], Any]]]]:
        return [
            (r"commits/([^/]+)/check-suites", "GET", self._suites_for),
            (r"commits/([^/]+)/check-runs", "GET", self._runs_for),
            (r"check-suites/(\d+)/check-runs", "GET", self._runs_of_suite),
            (r"check-runs/(\d+)", "GET", self._run),
            (r"actions/jobs/(\d+)", "GET", self._job),
            (r"actions/jobs/(\d+)/logs", "GET", self._job_logs),
            (r"actions/jobs/(\d+)/rerun", "POST", self._rerun),
            (r"pulls/(\d+)/reviews", "GET", lambda n, body: (200, {}, self.reviews.get(int(n), []))),
            (r"pulls/(\d+)/comments", "GET", lambda n, body: (200, {}, self.review_comments.get(int(n), []))),
            (r"pulls/(\d+)/comments/(\d+)/replies", "POST", self._reply),
            (r"issues/(\d+)/comments", "GET", lambda n, body: (200, {}, self.issue_comments.get(int(n), []))),
            (r"issues/(\d+)/comments", "POST", self._issue_comment),
            (r"collaborators/([^/]+)/permission", "GET", self._permission),
        ]

    def _suites_for(self, sha: str, body: Any) -> tuple[int, dict[str, str], Any]:
        suites = [s for s in self.suites if s["head_sha"] == sha]
        return 200, {}, {"total_count": len(suites), "check_suites": suites}

    def _runs_for(self, sha: str, body: Any) -> tuple[int, dict[str, str], Any]:
        runs = [r for r in self.runs if r["head_sha"] == sha]
        return 200, {}, {"total_count": len(runs), "check_runs": runs}

    def _runs_of_suite(self, suite_id: str, body: Any) -> tuple[int, dict[str, str], Any]:
        runs = [r for r in self.runs if r["check_suite"]["id"] == int(suite_id)]
        return 200, {}, {"total_count": len(runs), "check_runs": runs}

    def _find_run(self, run_id: str) -> dict[str, Any] | None:
        return next((r for r in self.runs if r["id"] == int(run_id)), None)

    def _run(self, run_id: str, body: Any) -> tuple[int, dict[str, str], Any]:
        run = self._find_run(run_id)
        return (200, {}, run) if run else (404, {}, {"message": "Not Found"})

    def _job(self, job_id: str, body: Any) -> tuple[int, dict[str, str], Any]:
        run = self._find_run(job_id)
        if run is None:
            return 404, {}, {"message": "Not Found"}
        return (
            200,
            {},
            {
                "id": run["id"],
                "name": run["name"],
                "head_sha": run["head_sha"],
                "status": run["status"],
                "conclusion": run["conclusion"],
                "run_attempt": run["run_attempt"],
                "check_run_url": f"{self.repo_url}/check-runs/{run['id']}",
            },
        )

    def _job_logs(self, job_id: str, body: Any) -> tuple[int, dict[str, str], Any]:
        if int(job_id) not in self.logs:
            return 404, {}, {"message": "Not Found"}
        # GitHub answers 302 with a short-lived download URL (no Authorization needed there).
        return 302, {"Location": f"{self.base_url()}/_logs/{job_id}?sig=presigned"}, None

    def _rerun(self, job_id: str, body: Any) -> tuple[int, dict[str, str], Any]:
        run = self._find_run(job_id)
        if run is None:
            return 404, {}, {"message": "Not Found"}
        self.reruns.append(run["id"])
        run["run_attempt"] += 1
        if self.hold_reruns:
            self.held.append((run, run["conclusion"]))
            run["status"], run["conclusion"] = "in_progress", None
        elif self.rerun_outcome is not None:
            run["conclusion"], self.logs[run["id"]] = self.rerun_outcome(run, run["run_attempt"])
        return 201, {}, {}

    def _reply(self, number: str, comment_id: str, body: Any) -> tuple[int, dict[str, str], Any]:
        parent = next(
            (c for c in self.review_comments.get(int(number), []) if c["id"] == int(comment_id)), None
        )
        if parent is None:
            return 404, {}, {"message": "Not Found"}
        if not isinstance(body.get("body"), str) or not body["body"]:
            return (
                422,
                {},
                {"message": "Validation Failed", "errors": [{"field": "body", "code": "missing_field"}]},
            )
        reply = self.add_review_comment(
            int(number),
            self.token_login,
            body["body"],
            path=parent["path"],
            line=parent["line"],
            in_reply_to=parent["id"],
            kind="Bot",
        )
        return 201, {}, reply

    def _issue_comment(self, number: str, body: Any) -> tuple[int, dict[str, str], Any]:
        if not isinstance(body.get("body"), str) or not body["body"]:
            return (
                422,
                {},
                {"message": "Validation Failed", "errors": [{"field": "body", "code": "missing_field"}]},
            )
        return 201, {}, self.add_issue_comment(int(number), self.token_login, body["body"], kind="Bot")

    def _permission(self, login: str, body: Any) -> tuple[int, dict[str, str], Any]:
        if login not in self.collaborators:
            return 404, {}, {"message": f"{login} is not a user", "status": "404"}
        perm = self.collaborators[login]
        return 200, {}, {"permission": perm, "role_name": perm, "user": user(login)}


def conditional(method: str, headers: dict[str, str],
                answer: tuple[int, dict[str, str], Any]) -> tuple[int, dict[str, str], Any]:
    """GitHub's conditional requests: a GET's 200 carries an ETag; `If-None-Match` with it → 304."""
    status, extra, payload = answer
    if method != "GET" or status != 200 or isinstance(payload, _Text):
        return answer
    digest = hashlib.sha256(json.dumps(payload, sort_keys=True).encode()).hexdigest()
    etag = f'"{digest}"'
    if headers.get("if-none-match") == etag:
        return 304, {"ETag": etag}, None
    return status, {**extra, "ETag": etag}, payload


class _Text(str):
    """A plain-text body (the log download), sent as is instead of as JSON."""
