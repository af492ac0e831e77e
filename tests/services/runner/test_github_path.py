"""The pull_request step against a local fake of the GitHub REST API: opened once, reused on a
re-run, GitHub's refusals become clear run errors, and the token never lands anywhere it can leak."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import pytest

from tests.fakes.github_api import FakeGitHub
from tests.services.runner.harness import running_service, step

TOKEN = "ghp_SECRETtoken1234567890abcdef"


@pytest.fixture
def github():
    with FakeGitHub(owner="acme", repo="greeter", token=TOKEN).start() as gh:
        yield gh


def _env(gh: FakeGitHub) -> dict[str, str]:
    return {"GITHUB_CLIENT": "api", "GH_TOKEN": TOKEN, "GITHUB_API_URL": gh.base_url,
            "GITHUB_REPOSITORY": gh.slug}


def test_pr_opened_once_and_reused_and_token_never_leaks(
    tmp_path: Path, github: FakeGitHub, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    with running_service(tmp_path, **_env(github)) as svc:
        first = svc.run("PROJ-20", "Add docs")
        second = svc.run("PROJ-20", "Add docs")
        logs = svc.logs(first["run_id"]) + svc.logs(second["run_id"])
        records = [svc.client.get(f"/runs/{r['run_id']}").text for r in (first, second)]
        listing = svc.client.get("/runs").text
    assert first["status"] == second["status"] == "succeeded", (first["error"], second["error"])
    assert len(github.prs) == 1
    assert github.prs[0]["head"] == "ticket/proj-20" and github.prs[0]["base"] == "main"
    assert first["pr_url"] == second["pr_url"] == github.prs[0]["html_url"]
    assert step(second, "pull_request")["detail"]["created"] is False
    assert len(github.requests_for("POST")) == 1  # the second run updated, not created
    # Where a token could leak: git config of the shared clone and worktrees, the remote URL,
    # the service log, the run log, the run records and the PR body.
    leaks = [p for p in (svc.workspace).rglob("config") if TOKEN in p.read_text(errors="replace")]
    assert leaks == []
    assert TOKEN not in (svc.workspace / "repo" / ".git" / "config").read_text()
    assert all(TOKEN not in line for line in logs)
    assert TOKEN not in caplog.text
    assert all(TOKEN not in text for text in records) and TOKEN not in listing
    assert TOKEN not in json.dumps(github.prs)


def test_github_refusal_is_a_clear_run_error(tmp_path: Path, github: FakeGitHub) -> None:
    github.inject(403, times=10, body={"message": "Resource not accessible by integration"}, method="POST")
    with running_service(tmp_path, **_env(github)) as svc:
        run = svc.run("PROJ-21")
    assert run["status"] == "failed"
    assert run["error"].startswith("pull_request:")
    assert "Resource not accessible by integration" in run["error"]
    assert TOKEN not in run["error"]
    assert step(run, "push")["status"] == "succeeded"  # the branch is there to open the PR by hand


def test_github_5xx_is_retried_then_succeeds(tmp_path: Path, github: FakeGitHub) -> None:
    github.inject(502, times=2, method="POST")
    with running_service(tmp_path, **_env(github)) as svc:
        run = svc.run("PROJ-22")
    assert run["status"] == "succeeded", run["error"]
    assert len(github.prs) == 1
