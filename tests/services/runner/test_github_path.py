"""The pull_request step against a local fake of the GitHub REST API: opened once, reused on a
re-run, GitHub's refusals become clear run errors, and the token never lands anywhere it can leak —
also when git itself needs it: a run against an http remote (the local smart-HTTP server that
demands the token) pushes with it and leaves it, raw or base64-encoded, nowhere."""

from __future__ import annotations

import contextlib
import json
import logging
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.fakes.github_api import FakeGitHub
from tests.gitrepos import git, remote_sha
from tests.services.runner.harness import running_service, step
from tests.services.workspace.git_http_server import GitHttpServer, text_has_token

TOKEN = "ghp_SECRETtoken1234567890abcdef"


@pytest.fixture
def github():
    with FakeGitHub(owner="acme", repo="greeter", token=TOKEN).start() as gh:
        yield gh


@contextlib.contextmanager
def _capturing(caplog: pytest.LogCaptureFixture) -> Iterator[None]:
    """Put caplog back on the root logger at DEBUG: `create_app` → `configure_logging` replaces the
    root handlers (caplog's included) and sets LOG_LEVEL, so without this caplog sees nothing."""
    root = logging.getLogger()
    level = root.level
    caplog.handler.setLevel(logging.DEBUG)
    root.addHandler(caplog.handler)
    root.setLevel(logging.DEBUG)
    try:
        yield
    finally:
        root.removeHandler(caplog.handler)
        root.setLevel(level)


def _log_text(caplog: pytest.LogCaptureFixture) -> str:
    """Every captured record whole: message, args and the `extra` fields (caplog.text has no extras)."""
    return "\n".join(f"{r.getMessage()} {vars(r)!r}" for r in caplog.records)


def _env(gh: FakeGitHub) -> dict[str, str]:
    return {"GITHUB_CLIENT": "api", "GH_TOKEN": TOKEN, "GITHUB_API_URL": gh.base_url,
            "GITHUB_REPOSITORY": gh.slug}


def test_pr_opened_once_and_reused_and_token_never_leaks(
    tmp_path: Path, github: FakeGitHub, caplog: pytest.LogCaptureFixture
) -> None:
    with running_service(tmp_path, **_env(github)) as svc, _capturing(caplog):
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
    assert caplog.records and not text_has_token(_log_text(caplog), TOKEN)
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


def test_http_remote_gets_the_token_through_git_and_nowhere_else(
    tmp_path: Path, github: FakeGitHub, caplog: pytest.LogCaptureFixture
) -> None:
    # running_service seeds the demo remote at tmp_path/target/remote.git: the server serves it.
    with GitHttpServer(tmp_path / "target", TOKEN) as server:
        url = server.url("remote.git")
        with running_service(tmp_path, REPO_URL=url, **_env(github)) as svc, _capturing(caplog):
            assert svc.app.state.settings.repo_url == url
            run = svc.run("PROJ-30", "Add docs over http")
            logs = svc.logs(run["run_id"])
            record = svc.client.get(f"/runs/{run['run_id']}").text
            listing = svc.client.get("/runs").text
        requests = list(server.requests)
    assert run["status"] == "succeeded", run["error"]
    # The branch went over http, with the token: git asked, was refused without it, then pushed.
    sha = remote_sha(svc.remote, "ticket/proj-30")
    assert sha is not None and sha == git(svc.remote, "rev-parse", "ticket/proj-30").strip()
    assert "docs/tickets/proj-30.md" in git(svc.remote, "ls-tree", "-r", "--name-only", sha).split()
    assert any(r.authorized and r.method == "POST" and "receive-pack" in r.path for r in requests)
    assert not any(r.token_in_argv for r in requests)  # no process had it on argv, in any form
    assert any(not r.authorized for r in requests)  # git sent nothing until challenged
    assert len(github.prs) == 1 and github.prs[0]["head"] == "ticket/proj-30"
    # Nowhere it can leak, raw or base64-encoded: run record, listing, step details, run log,
    # service log, the PR, and every file the service left under WORKSPACE_DIR (DB included).
    details = json.dumps([s.get("detail") for s in run["steps"]])
    assert any(r.name.startswith("app.services.workspace") for r in caplog.records)  # it did log
    for text in (record, listing, details, "\n".join(logs), _log_text(caplog), json.dumps(github.prs)):
        assert not text_has_token(text, TOKEN)
    files = [p for p in svc.workspace.rglob("*") if p.is_file()]
    assert any(p.suffix == ".sqlite" for p in files)  # the run records are among them
    assert [p for p in files if text_has_token(p.read_bytes(), TOKEN)] == []


def test_a_redirect_from_github_fails_the_run_with_its_cause_and_jira_hears_it(
    tmp_path: Path, github: FakeGitHub
) -> None:
    # Issue 11 item 7: a 307 to the PR call used to push, open no PR, crash with KeyError: 'number'
    # ("internal error") and skip the Jira report.
    from tests.fakes.jira_api import FakeJira

    moved = {"Location": f"{github.base_url}/repositories/7/pulls"}
    github.inject(307, times=10, method="POST", headers=moved)
    with FakeJira(issues={"PROJ-23": "To Do"}).start() as jira:
        env = {**_env(github), "JIRA_BASE_URL": jira.base_url, "JIRA_EMAIL": jira.email,
               "JIRA_API_TOKEN": jira.token}
        with running_service(tmp_path, **env) as svc:
            run = svc.run("PROJ-23")
        comments = jira.comment_texts("PROJ-23")
    assert run["status"] == "failed"
    assert run["error"].startswith("pull_request: GitHub answered 307 (a redirect to")
    assert "KeyError" not in run["error"] and "internal error" not in run["error"]
    assert step(run, "report")["status"] == "succeeded"
    assert len(comments) == 1 and "GitHub answered 307" in comments[0]
    assert github.prs == []
