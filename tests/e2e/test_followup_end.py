"""The end of a PR's life (issue 11 item 5): merged → a Jira comment and the configured transition,
and no further work for the PR; closed unmerged → a comment; the PR's outcome is recorded."""

from __future__ import annotations

import pytest

from tests.e2e.conftest import IMPLEMENT
from tests.e2e.followup_kit import followup_service
from tests.fakes.anthropic_api import Rule, text, write
from tests.fakes.github_activity import Job
from tests.fakes.github_webhooks import check_suite_completed, issue_comment_created, pull_request_closed
from tests.fakes.jira_api import FakeJira

pytestmark = pytest.mark.real_cli


@pytest.mark.parametrize("merged", [True, False])
def test_a_closed_pr_tells_jira_once_and_stops_further_work(e2e, model, github, demo, merged: bool) -> None:
    model.script(Rule(prompt_contains=IMPLEMENT, turns=[write("{cwd}/greeting.txt", "hi\n"), text("Added.")]))
    with FakeJira(issues={"PROJ-9": "In Review"}).start() as jira:
        env = {
            "JIRA_BASE_URL": jira.base_url,
            "JIRA_EMAIL": jira.email,
            "JIRA_API_TOKEN": jira.token,
            "JIRA_MERGED_TRANSITION": "Done",
        }
        with followup_service(e2e, github, demo, **env) as svc:
            assert svc.run("PROJ-9")["status"] == "succeeded"
            suite = svc.red_ci(1, [Job("test", "failure", "boom")])  # red before it was merged anyway
            github.merge(1, merged=merged)
            closed = svc.hook("pull_request", pull_request_closed(github, 1)).json()
            again = svc.hook("pull_request", pull_request_closed(github, 1)).json()
            late_ci = svc.hook("check_suite", check_suite_completed(github, suite, pr_number=1)).json()
            github.activity.collaborators["carol"] = "write"
            comment = github.activity.add_issue_comment(1, "carol", "one more thing")
            late_talk = svc.hook("issue_comment", issue_comment_created(github, 1, comment)).json()
            kinds = [r["kind"] for r in svc.runs()]
            figures = svc.outcomes()
        notes = jira.comment_texts("PROJ-9")
        status = jira.issues["PROJ-9"]
    what = "merged" if merged else "closed without merging"
    assert closed == {"status": "ignored", "reason": f"pull request #1 {what}: follow-up work for it stopped"}
    assert again["status"] == "ignored" and "is " in again["reason"]
    closing = [n for n in notes if "was merged" in n or "closed without merging" in n]
    assert len(closing) == 1, notes  # told once
    assert ("was merged after" in closing[0]) is merged and "0 CI-fix and 0 review round(s)" in closing[0]
    assert status == ("Done" if merged else "In Review")
    for late in (late_ci, late_talk):
        assert late["status"] == "ignored" and late["reason"].startswith("pull request #1 is "), late
    assert kinds == ["ticket"]
    (pr,) = figures["pull_requests"]
    assert pr["state"] == ("merged" if merged else "closed") and pr["ci_fix_runs"] == 0
    assert (pr["hours_to_merge"] is not None) is merged and pr["cost_usd"] > 0
    assert figures["merge_rate"] == (1.0 if merged else 0.0)
    assert figures["cost_per_merged_pr_usd"] == (pr["cost_usd"] if merged else None)
