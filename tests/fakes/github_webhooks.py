"""Signed GitHub webhook deliveries in GitHub's own payload shapes (octokit/webhooks' schemas and
payload examples, e.g. `payload-examples/api.github.com/check_suite/completed.payload.json`).

    payload = check_suite_completed(gh, suite, pr_number=1)
    resp = deliver(client, "check_suite", payload, secret="...")   # POST /webhook/github

`deliver` signs the exact bytes it sends (`X-Hub-Signature-256: sha256=<hex HMAC-SHA256>`, as
GitHub's "Validating webhook deliveries" describes) and sets `X-GitHub-Event`,
`X-GitHub-Delivery` (a GUID; pass one to redeliver), `X-GitHub-Hook-ID`, `User-Agent:
GitHub-Hookshot/…`. `client` is anything with `.post(url, content=, headers=)` (a TestClient or an
httpx.Client aimed at the service).
"""

from __future__ import annotations

import hashlib
import hmac
import json
import uuid
from typing import Any

from tests.fakes.github_activity import user
from tests.fakes.github_api import FakeGitHub

PATH = "/webhook/github"


def sign(secret: str, body: bytes) -> str:
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def deliver(
    client: Any,
    event: str,
    payload: dict[str, Any] | bytes,
    *,
    secret: str | None,
    delivery: str | None = None,
    signature: str | None = None,
    path: str = PATH,
) -> Any:
    body = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
    headers = {
        "Content-Type": "application/json",
        "User-Agent": "GitHub-Hookshot/7a3b2c1",
        "X-GitHub-Event": event,
        "X-GitHub-Delivery": delivery or str(uuid.uuid4()),
        "X-GitHub-Hook-ID": "123456789",
    }
    if signature is not None:
        headers["X-Hub-Signature-256"] = signature
    elif secret is not None:
        headers["X-Hub-Signature-256"] = sign(secret, body)
    return client.post(path, content=body, headers=headers)


def repository(gh: FakeGitHub) -> dict[str, Any]:
    return {
        "id": 186853002,
        "name": gh.repo,
        "full_name": gh.slug,
        "private": True,
        "owner": user(gh.owner, "Organization"),
        "html_url": f"https://github.example/{gh.slug}",
        "default_branch": "main",
    }


def _pr_ref(gh: FakeGitHub, pr: dict[str, Any]) -> dict[str, Any]:
    """The minimal PR object of `check_suite.pull_requests` / `workflow_run.pull_requests`."""
    repo = {"id": 186853002, "url": f"https://api.github.example/repos/{gh.slug}", "name": gh.repo}
    return {
        "url": f"https://api.github.example/repos/{gh.slug}/pulls/{pr['number']}",
        "id": pr["number"] + 1000,
        "number": pr["number"],
        "head": {"ref": pr["head"]["ref"], "sha": pr["head"]["sha"], "repo": repo},
        "base": {"ref": pr["base"]["ref"], "sha": "f95f852bd8fca8fcc58a9a2d6c842781e32a215e", "repo": repo},
    }


def check_suite_completed(
    gh: FakeGitHub, suite: dict[str, Any], *, pr_number: int | None, sender: str = "github-actions[bot]"
) -> dict[str, Any]:
    prs = [_pr_ref(gh, gh.pr(pr_number))] if pr_number is not None else []
    body = {
        **suite,
        "pull_requests": prs,
        "before": None,
        "after": suite["head_sha"],
        "check_runs_url": f"{suite['url']}/check-runs",
        "head_commit": {"id": suite["head_sha"], "message": "change"},
    }
    return {
        "action": "completed",
        "check_suite": body,
        "repository": repository(gh),
        "sender": user(sender, "Bot"),
    }


def check_run_completed(gh: FakeGitHub, run: dict[str, Any], *, pr_number: int | None) -> dict[str, Any]:
    prs = [_pr_ref(gh, gh.pr(pr_number))] if pr_number is not None else []
    suite = next(s for s in gh.activity.suites if s["id"] == run["check_suite"]["id"])
    body = {
        **run,
        "pull_requests": prs,
        "check_suite": {
            "id": suite["id"],
            "head_branch": suite["head_branch"],
            "head_sha": suite["head_sha"],
            "status": "completed",
            "conclusion": suite["conclusion"],
            "pull_requests": prs,
        },
    }
    return {
        "action": "completed",
        "check_run": body,
        "repository": repository(gh),
        "sender": user("github-actions[bot]", "Bot"),
    }


def workflow_run_completed(
    gh: FakeGitHub, suite: dict[str, Any], *, pr_number: int | None, name: str = "CI"
) -> dict[str, Any]:
    prs = [_pr_ref(gh, gh.pr(pr_number))] if pr_number is not None else []
    run = {
        "id": suite["id"] + 7,
        "name": name,
        "head_branch": suite["head_branch"],
        "head_sha": suite["head_sha"],
        "event": "pull_request",
        "status": "completed",
        "conclusion": suite["conclusion"],
        "run_attempt": 1,
        "check_suite_id": suite["id"],
        "pull_requests": prs,
        "html_url": f"https://github.example/{gh.slug}/actions/runs/{suite['id'] + 7}",
    }
    return {
        "action": "completed",
        "workflow_run": run,
        "workflow": {"id": 161335, "name": name},
        "repository": repository(gh),
        "sender": user("octocat"),
    }


def _pull_request(gh: FakeGitHub, number: int) -> dict[str, Any]:
    pr = gh.pr(number)
    return {
        **pr,
        "id": number + 1000,
        "user": pr["user"],
        "head": {**pr["head"], "repo": repository(gh)},
        "base": {**pr["base"], "repo": repository(gh)},
    }


def pull_request_review_submitted(gh: FakeGitHub, number: int, review: dict[str, Any]) -> dict[str, Any]:
    body = {**review, "state": review["state"].lower(), "pull_request_url": f"https://api/pulls/{number}"}
    return {
        "action": "submitted",
        "review": body,
        "pull_request": _pull_request(gh, number),
        "repository": repository(gh),
        "sender": review["user"],
    }


def pull_request_review_comment_created(
    gh: FakeGitHub, number: int, comment: dict[str, Any]
) -> dict[str, Any]:
    return {
        "action": "created",
        "comment": comment,
        "pull_request": _pull_request(gh, number),
        "repository": repository(gh),
        "sender": comment["user"],
    }


def issue_comment_created(gh: FakeGitHub, number: int, comment: dict[str, Any]) -> dict[str, Any]:
    pr = gh.pr(number)
    issue = {
        "number": number,
        "title": pr["title"],
        "state": pr["state"],
        "user": pr["user"],
        "pull_request": {
            "url": f"https://api.github.example/repos/{gh.slug}/pulls/{number}",
            "html_url": pr["html_url"],
        },
    }
    return {
        "action": "created",
        "issue": issue,
        "comment": {**comment, "author_association": "MEMBER"},
        "repository": repository(gh),
        "sender": comment["user"],
    }


def pull_request_closed(gh: FakeGitHub, number: int, sender: str = "octocat") -> dict[str, Any]:
    return {
        "action": "closed",
        "number": number,
        "pull_request": _pull_request(gh, number),
        "repository": repository(gh),
        "sender": user(sender),
    }
