"""A follow-up survives `kill -9` (issue 11): a real service process is killed while the CI-fix
run's agent round is in progress; started again with the same EXECUTOR_ID and APP_VERSION, the run
finishes with exactly one new commit on the PR's branch and one comment on the PR (the fake GitHub
answering on 127.0.0.1, the mock Claude scripted through MOCK_CLAUDE_SCRIPT)."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest

from app.demo_repo import DemoRepo
from tests.durability.conftest import EnvBuilder
from tests.durability.service_proc import Procs, is_final, run_logs, step_status
from tests.fakes.github_activity import Job
from tests.fakes.github_api import FakeGitHub
from tests.fakes.github_webhooks import check_suite_completed, deliver
from tests.gitrepos import git, remote_sha

pytestmark = pytest.mark.slow

TOKEN = "ghp_restart_token_0123456789abcdef"
SECRET = "restart-webhook-secret-0123456789"
DELAY_S = 4.0  # each agent call: long enough to kill the service inside the follow-up's round


def test_kill9_in_the_middle_of_a_followup_finishes_with_one_commit(
    tmp_path: Path, procs: Procs, service_env: EnvBuilder, demo: DemoRepo
) -> None:
    script = {"delay_s": DELAY_S, "tickets": {"PROJ-1": {
        "implement": [{"write": "greeting.txt", "content": "helo\n"}],
        "fix:ci_fix": [{"write": "greeting.txt", "content": "hello\n"}],
        "result": "Fixed greeting.txt."}}}
    with FakeGitHub(owner="acme", repo="greeter", token=TOKEN,
                    sha_of=lambda b: remote_sha(demo.remote, b) or "") as github:
        ws = tmp_path / "ws"
        env = service_env(ws, script, EXECUTOR_ID="host-f", APP_VERSION="3", GITHUB_CLIENT="api",
                          GH_TOKEN=TOKEN, GITHUB_API_URL=github.base_url, GITHUB_REPOSITORY=github.slug,
                          GITHUB_WEBHOOK_SECRET=SECRET)
        svc = procs.new("service", env, tmp_path / "proc")
        svc.start()
        opener = svc.deliver("PROJ-1", "Greet")
        opened = svc.wait_run(opener["run_id"], is_final, timeout=60, what="the PR")
        assert opened["status"] == "succeeded", opened["error"]
        first = remote_sha(demo.remote, "ticket/proj-1")
        suite = github.activity.complete_ci(first or "", [Job("test", "failure", "FAILED test_hello\n")],
                                            branch="ticket/proj-1")
        with httpx.Client(base_url=svc.url, timeout=10) as client:
            answer = deliver(client, "check_suite", check_suite_completed(github, suite, pr_number=1),
                             secret=SECRET).json()
        assert answer["status"] == "queued", answer
        run_id = answer["run_id"]
        svc.wait_run(run_id, lambda r: step_status(r, "implement") == "running", timeout=30,
                     what="the follow-up's agent round running")
        svc.kill9()
        svc.start()
        after = svc.wait_run(run_id, is_final, timeout=60, what="the follow-up finished")
        second = remote_sha(demo.remote, "ticket/proj-1")
        comments = github.activity.issue_comments.get(1, [])
        db = f"sqlite:///{ws / 'auto-code.sqlite'}"
        logs = run_logs(db, run_id)
    assert after["status"] == "succeeded", after["error"]
    assert after["kind"] == "ci_fix" and after["parent_run_id"] == opener["run_id"]
    assert second != first
    parents = git(demo.remote, "rev-list", "--parents", "-n", "1", second or "").split()[1:]
    assert parents == [first]  # exactly one new commit on top of the PR's head
    assert git(demo.remote, "show", f"{second}:greeting.txt") == "hello\n"
    assert len(comments) == 1 and "pushed a fix" in comments[0]["body"]
    assert len(github.activity.reruns) == 1  # the finished re-run step was not repeated
    assert sum(line.startswith("run_finished status=succeeded") for line in logs) == 1, logs
