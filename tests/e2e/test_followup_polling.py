"""The polling fallback (issue 11 item 2): without webhooks, a poll of the service's open PRs finds
the red CI and starts the same follow-up a webhook would; polls that find nothing new are answered
304 Not Modified (conditional requests with the stored ETags); a merged PR found by polling ends."""

from __future__ import annotations

from typing import Any

import pytest

from app.followups.deps import followup_deps
from app.followups.poller import GitHubPoller
from app.followups.wiring import followups_of
from tests.e2e.conftest import IMPLEMENT
from tests.e2e.followup_kit import FOLLOWUP_CI, followup_service
from tests.fakes.anthropic_api import Rule, text, write
from tests.fakes.github_activity import Job

pytestmark = pytest.mark.real_cli


def _poll(svc: Any) -> list[dict[str, str]]:
    services = svc.app.state.services
    poller = GitHubPoller(followup_deps(services.deps), followups_of(svc.app).intake, interval_sec=0)
    return list(svc.svc.client.portal.call(poller.poll_once))


def test_polling_finds_red_ci_and_starts_one_followup_then_only_304s(e2e, model, github, demo) -> None:
    model.script(
        Rule(prompt_contains=IMPLEMENT, turns=[write("{cwd}/greeting.txt", "helo\n"), text("Added.")])
    )
    model.script(
        Rule(prompt_contains=FOLLOWUP_CI, turns=[write("{cwd}/greeting.txt", "hello\n"), text("Fixed.")])
    )
    with followup_service(e2e, github, demo) as svc:
        assert svc.run("PROJ-11")["status"] == "succeeded"
        quiet = _poll(svc)  # nothing failed yet: no event
        first = svc.head("ticket/proj-11")
        svc.red_ci(1, [Job("test", "failure", "FAILED test_hello")])
        found = _poll(svc)
        run = svc.wait(found[0]["run_id"], timeout=120)
        second = svc.head("ticket/proj-11")
        github.activity.complete_ci(second, [Job("test", "success")], branch="ticket/proj-11")
        green = _poll(svc)
        before = len(github.requests)
        idle = _poll(svc)
        idle_requests = github.requests[before:]
        github.merge(1)
        closed = _poll(svc)
        after_close = _poll(svc)
    assert quiet == []
    assert [a["status"] for a in found] == ["queued"]
    assert run["kind"] == "ci_fix" and run["status"] == "succeeded", run["error"]
    assert svc.parents(second) == [first]
    assert green == [] and idle == []
    # Nothing changed: every poll request was conditional and answered 304.
    assert idle_requests and all(r.headers.get("if-none-match") for r in idle_requests), [
        (r.path, r.headers.get("if-none-match")) for r in idle_requests
    ]
    paths = sorted(r.path.removeprefix("/repos/acme/greeter/") for r in idle_requests)
    assert paths == sorted(
        ["pulls/1", f"commits/{second}/check-runs", "pulls/1/comments", "issues/1/comments"]
    )
    assert closed == [
        {"status": "ignored", "reason": "pull request #1 merged: follow-up work for it stopped"}
    ]
    assert after_close == []  # a closed PR is no longer polled
