"""Shared set-up of the follow-up tests (issue 11): the real service with the real CLI against the
scripted model (tests/e2e/conftest.py's `e2e`), the fake GitHub answering for the bare remote's
branches, and the GitHub webhook route delivering signed payloads.

    with followup_service(e2e, github, demo) as svc:
        run = svc.run("PROJ-1")                       # the ticket run opens PR #1
        suite = svc.red_ci(1, [Job("test", "failure", LOG)])
        answer = svc.hook("check_suite", check_suite_completed(github, suite, pr_number=1))
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from typing import Any

from app.demo_repo import DemoRepo
from tests.e2e.conftest import E2EService
from tests.fakes.github_activity import Job
from tests.fakes.github_api import FakeGitHub
from tests.fakes.github_webhooks import deliver
from tests.gitrepos import git, remote_sha

SECRET = "gh-webhook-secret-0123456789abcdef"  # a test credential
BOT = "auto-code-bot"  # the fake's token account
FOLLOWUP_CI = "[auto-code follow-up: ci_fix]"
FOLLOWUP_REVIEW = "[auto-code follow-up: review_fix]"


class FollowupService:
    def __init__(self, svc: E2EService, github: FakeGitHub, demo: DemoRepo) -> None:
        self.svc, self.github, self.demo = svc, github, demo

    def __getattr__(self, name: str) -> Any:
        return getattr(self.svc, name)

    def head(self, branch: str) -> str:
        sha = remote_sha(self.demo.remote, branch)
        assert sha, f"{branch} is not on the remote"
        return sha

    def parents(self, sha: str) -> list[str]:
        return git(self.demo.remote, "rev-list", "--parents", "-n", "1", sha).split()[1:]

    def files_at(self, sha: str) -> list[str]:
        return git(self.demo.remote, "ls-tree", "-r", "--name-only", sha).split()

    def red_ci(self, number: int, jobs: list[Job]) -> dict[str, Any]:
        pr = self.github.pr(number)
        return self.github.activity.complete_ci(pr["head"]["sha"], jobs, branch=pr["head"]["ref"])

    def hook(self, event: str, payload: dict[str, Any] | bytes, **kw: Any) -> Any:
        kw.setdefault("secret", SECRET)
        return deliver(self.svc.client, event, payload, **kw)

    def queued(self, event: str, payload: dict[str, Any], **kw: Any) -> str:
        resp = self.hook(event, payload, **kw)
        assert resp.status_code == 202 and resp.json()["status"] == "queued", resp.text
        return str(resp.json()["run_id"])

    def outcomes(self) -> dict[str, Any]:
        resp = self.svc.client.get("/pull-requests", headers=self.svc.headers)
        assert resp.status_code == 200, resp.text
        return dict(resp.json())

    def runs(self) -> list[dict[str, Any]]:
        return list(self.svc.client.get("/runs", headers=self.svc.headers).json())


@contextlib.contextmanager
def followup_service(
    e2e: Callable[..., Any], github: FakeGitHub, demo: DemoRepo, **env: Any
) -> Iterator[FollowupService]:
    github.sha_of = lambda branch: remote_sha(demo.remote, branch) or ""
    with e2e(GITHUB_WEBHOOK_SECRET=SECRET, **env) as svc:
        yield FollowupService(svc, github, demo)
