"""The demo's round after the PR (issue 11): its CI fails once, a signed `check_suite` webhook in
GitHub's shape reaches `POST /webhook/github`, and a `ci_fix` follow-up run resumes the work on the
same branch, reads the failing job's log from a file, pushes a new commit and comments on the PR.

Offline, GitHub's side of the PR is `LocalPullActivity` (app/services/github/local_activity.py):
the demo plays GitHub Actions by recording the check suite itself — a scripted CI, said so in the
output — and the PR comments are kept in memory and printed.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import uuid
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import httpx

from app.proc import run_command
from app.services.github.local import LocalPullRequests
from app.services.github.local_activity import LocalPullActivity

DEMO_WEBHOOK_SECRET = "demo-github-webhook-secret-0123456789"  # noqa: S105 - the throwaway demo's own
CI_JOB = "ci / docs"
CI_LOG = (
    "Run python3 scripts/check_docs.py\n"
    "checking that every module under greeter/ has a page under docs/ ...\n"
    "greeter/greet.py      docs/greet.md      ok\n"
    "greeter/farewell.py   docs/farewell.md   MISSING\n"
    "Error: 1 module without documentation: add docs/farewell.md\n"
    "##[error]Process completed with exit code 1.\n"
)
# What the scripted editor does in the follow-up (the real Claude reads the log and decides).
CI_FIX: list[list[dict[str, str]]] = [
    [
        {
            "write": "docs/farewell.md",
            "content": ("# farewell\n\n`greeter.farewell.farewell(name)` returns `Goodbye, <name>!`.\n"),
        }
    ]
]


def local_activity(workspace: Path, remote: Path) -> LocalPullActivity:
    async def head_of(branch: str) -> str:
        res = await run_command(
            ["git", "rev-parse", "--verify", "--quiet", f"refs/heads/{branch}"],
            cwd=remote,
            env=None,
            timeout=30,
        )
        return res.output.strip()

    return LocalPullActivity(LocalPullRequests(workspace / "pull-requests.json"), head_of)


def _signed(payload: dict[str, Any], event: str) -> tuple[bytes, dict[str, str]]:
    body = json.dumps(payload).encode()
    digest = hmac.new(DEMO_WEBHOOK_SECRET.encode(), body, hashlib.sha256).hexdigest()
    return body, {
        "Content-Type": "application/json",
        "X-GitHub-Event": event,
        "X-GitHub-Delivery": str(uuid.uuid4()),
        "X-Hub-Signature-256": f"sha256={digest}",
    }


def _suite(suite_id: int, sha: str, branch: str, number: int, conclusion: str) -> dict[str, Any]:
    """A `check_suite` `completed` delivery as GitHub sends it (the fields the service reads)."""
    pr = {"number": number, "head": {"ref": branch, "sha": sha}, "base": {"ref": "main"}}
    return {
        "action": "completed",
        "check_suite": {
            "id": suite_id,
            "head_branch": branch,
            "head_sha": sha,
            "status": "completed",
            "conclusion": conclusion,
            "app": {"slug": "github-actions"},
            "pull_requests": [pr],
        },
        "sender": {"login": "github-actions[bot]", "type": "Bot"},
    }


async def ci_round(
    client: httpx.AsyncClient,
    activity: LocalPullActivity,
    branch: str,
    number: int,
    wait: Callable[[httpx.AsyncClient, str], Awaitable[dict[str, Any]]],
) -> dict[str, Any] | None:
    """Red CI on the PR's head → the follow-up run (returned, finished); then green CI is ignored."""
    head = await activity.head_of(branch)
    suite = activity.record_ci(head, [(CI_JOB, "failure", CI_LOG), ("ci / test", "success", "5 passed\n")])
    print(
        f"\nafter the PR: the demo's scripted CI fails on {head[:10]} ({CI_JOB}); "
        "GitHub's check_suite webhook:"
    )
    body, headers = _signed(_suite(suite, head, branch, number, "failure"), "check_suite")
    answer = (await client.post("/webhook/github", content=body, headers=headers)).json()
    print(f"webhook answer: {answer}")
    if "run_id" not in answer:
        return None
    run = await wait(client, answer["run_id"])
    new_head = await activity.head_of(branch)
    green = activity.record_ci(new_head, [(CI_JOB, "success", "all modules documented\n")])
    body, headers = _signed(_suite(green, new_head, branch, number, "success"), "check_suite")
    after = (await client.post("/webhook/github", content=body, headers=headers)).json()
    print(f"CI on {new_head[:10]} passes; webhook answer: {after}")
    for comment in activity.talk.get(number, []):
        text = comment.body.splitlines()[0] if comment.body else ""
        print(f"PR comment by {comment.author.login}: {text}")
    return run
