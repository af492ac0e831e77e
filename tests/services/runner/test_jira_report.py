"""Reporting back to Jira through the pipeline (a local fake Jira): the PR link on success, the
reason on failure, the agent's explanation on no_changes; a broken Jira never fails a run; the
service's own account (learned from /myself at start-up) is ignored at intake."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.fakes.jira_api import FakeJira
from tests.services.runner.harness import running_service, step


@pytest.fixture
def jira():
    with FakeJira(issues={f"PROJ-{n}": "To Do" for n in range(40, 46)}).start() as fake:
        yield fake


def _env(jira: FakeJira, **extra: str) -> dict[str, str]:
    return {"JIRA_BASE_URL": jira.base_url, "JIRA_EMAIL": jira.email, "JIRA_API_TOKEN": jira.token, **extra}


def test_success_comments_the_pr_links_it_and_transitions(tmp_path: Path, jira: FakeJira) -> None:
    with running_service(tmp_path, **_env(jira, JIRA_DONE_TRANSITION="Ready for Review")) as svc:
        run = svc.run("PROJ-40")
    assert run["status"] == "succeeded"
    assert step(run, "report")["status"] == "succeeded"
    (comment,) = jira.comment_texts("PROJ-40")
    assert run["pr_url"] in comment
    assert [link["object"]["url"] for link in jira.links["PROJ-40"].values()] == [run["pr_url"]]
    assert jira.issues["PROJ-40"] == "In Review"


def test_failure_and_no_changes_are_reported_with_their_reason(tmp_path: Path, jira: FakeJira) -> None:
    script = {"tickets": {
        "PROJ-41": {"errors": {"implement": "budget_exhausted"}},
        "PROJ-42": {"implement": [], "result": "Nothing to do: greet() already handles it."},
    }}
    with running_service(tmp_path, script, **_env(jira)) as svc:
        failed, unchanged = svc.run("PROJ-41"), svc.run("PROJ-42")
    assert failed["status"] == "failed" and unchanged["status"] == "no_changes"
    (why,) = jira.comment_texts("PROJ-41")
    assert "budget_exhausted" in why and failed["run_id"] in why
    (said,) = jira.comment_texts("PROJ-42")
    assert "greet() already handles it" in said


def test_a_broken_jira_never_fails_the_run(tmp_path: Path, jira: FakeJira) -> None:
    with running_service(tmp_path, **_env(jira)) as svc:
        jira.inject(400, times=50, method="POST")
        run = svc.run("PROJ-43")
    assert run["status"] == "succeeded" and run["pr_url"]
    assert step(run, "report")["status"] == "failed"


def test_events_by_the_account_learned_from_myself_are_ignored(tmp_path: Path, jira: FakeJira) -> None:
    body = {"webhookEvent": "jira:issue_created", "user": {"accountId": jira.account_id},
            "issue": {"key": "PROJ-44", "fields": {"summary": "made by the bot itself"}}}
    # An issue_created event starts work only with START_ON_ISSUE_CREATED (or the trigger on it).
    with running_service(tmp_path, **_env(jira, START_ON_ISSUE_CREATED="1")) as svc:
        ours = svc.client.post("/webhook/jira", json=body)
        body["user"] = {"accountId": "someone-else"}
        theirs = svc.client.post("/webhook/jira", json=body)
    assert ours.status_code == 202 and ours.json()["status"] == "ignored"
    assert theirs.status_code == 202 and theirs.json()["status"] == "queued"
