"""The flaky-job wait of a `ci_fix` follow-up survives `kill -9`: a real service process is killed
while the run waits for the re-run of the failed job (the fake GitHub keeps that re-run in progress
until the test lets it finish). Started again with the same EXECUTOR_ID and APP_VERSION, the run
waits for the same re-run (GitHub is not asked for a second one), and when the re-run passes the job
is reported flaky: no fix round, no commit, no comment.

When to kill and when to let the re-run finish is read from the fake's request log (markers), not
from the clock: a look at the commit's check runs after the re-run request means the re-run step is
recorded and the run is in its wait; one after the restart means the restarted run waits again.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

import httpx
import pytest

from app.demo_repo import DemoRepo
from tests.durability.conftest import EnvBuilder
from tests.durability.service_proc import Procs, ServiceProc, is_final, run_logs
from tests.fakes.github_activity import Job
from tests.fakes.github_api import FakeGitHub, RecordedRequest
from tests.fakes.github_webhooks import check_suite_completed, deliver
from tests.gitrepos import remote_sha

pytestmark = pytest.mark.slow

TOKEN = "ghp_rerun_restart_token_0123456789ab"
SECRET = "rerun-restart-webhook-secret-01234"
WAIT_S = 90.0  # an upper bound for a marker (the service polls every 10 s), never a pause


def _seen(github: FakeGitHub, after: int, match: Callable[[RecordedRequest], bool]) -> bool:
    with github.lock:
        return any(match(r) for r in github.requests[after:])


def _wait_for(github: FakeGitHub, svc: ServiceProc, after: int, what: str,
              match: Callable[[RecordedRequest], bool]) -> None:
    deadline = time.monotonic() + WAIT_S
    while not _seen(github, after, match):
        assert time.monotonic() < deadline, f"{what}: not seen in {WAIT_S}s\n{svc.log_tail()}"
        time.sleep(0.05)


def test_kill9_while_waiting_for_a_rerun_waits_for_the_same_rerun_and_reports_flaky(
    tmp_path: Path, procs: Procs, service_env: EnvBuilder, demo: DemoRepo
) -> None:
    script = {"tickets": {"PROJ-1": {
        "implement": [{"write": "greeting.txt", "content": "helo\n"}],
        "fix:ci_fix": [{"write": "greeting.txt", "content": "hello\n"}],  # must not be used
        "result": "Fixed greeting.txt."}}}
    with FakeGitHub(owner="acme", repo="greeter", token=TOKEN,
                    sha_of=lambda b: remote_sha(demo.remote, b) or "") as github:
        ws = tmp_path / "ws"
        env = service_env(ws, script, EXECUTOR_ID="host-r", APP_VERSION="3", GITHUB_CLIENT="api",
                          GH_TOKEN=TOKEN, GITHUB_API_URL=github.base_url, GITHUB_REPOSITORY=github.slug,
                          GITHUB_WEBHOOK_SECRET=SECRET)
        svc = procs.new("service", env, tmp_path / "proc")
        svc.start()
        opener = svc.deliver("PROJ-1", "Greet")
        opened = svc.wait_run(opener["run_id"], is_final, timeout=60, what="the PR")
        assert opened["status"] == "succeeded", opened["error"]
        head = remote_sha(demo.remote, "ticket/proj-1") or ""
        github.activity.hold_reruns = True  # the re-run stays in progress until finish_reruns()
        github.activity.rerun_outcome = lambda job, attempt: ("success", "passed on attempt 2\n")
        suite = github.activity.complete_ci(head, [Job("test", "failure", "connection reset by peer\n")],
                                            branch="ticket/proj-1")
        checks = f"/repos/{github.slug}/commits/{head}/check-runs"

        def look(r: RecordedRequest) -> bool:
            return r.method == "GET" and r.path == checks

        with httpx.Client(base_url=svc.url, timeout=10) as client:
            answer = deliver(client, "check_suite", check_suite_completed(github, suite, pr_number=1),
                             secret=SECRET).json()
        assert answer["status"] == "queued", answer
        run_id = answer["run_id"]
        _wait_for(github, svc, 0, "the re-run request",
                  lambda r: r.method == "POST" and r.path.endswith("/rerun"))
        with github.lock:
            asked = next(i for i, r in enumerate(github.requests) if r.path.endswith("/rerun"))
        _wait_for(github, svc, asked + 1, "a look at the checks after the re-run (the wait)", look)
        svc.kill9()
        assert github.activity.held and len(github.activity.reruns) == 1  # still in progress

        with github.lock:
            restarted = len(github.requests)
        svc.start()
        _wait_for(github, svc, restarted, "a look at the checks after the restart", look)
        waiting = svc.run(run_id)
        with github.lock:
            finished = github.activity.finish_reruns()
        after = svc.wait_run(run_id, is_final, timeout=WAIT_S, what="the follow-up finished")
        logs = run_logs(f"sqlite:///{ws / 'auto-code.sqlite'}", run_id)
        second = remote_sha(demo.remote, "ticket/proj-1")
        comments = github.activity.issue_comments.get(1, [])
        reruns = list(github.activity.reruns)
    assert waiting["status"] == "running", waiting  # the restarted run waited for the re-run
    assert finished == 1
    assert reruns == [suite_run_id(github, suite["id"])]  # one re-run request, before the kill only
    assert after["status"] == "succeeded", (after["error"], [s["name"] for s in after["steps"]])
    detail = next(s for s in after["steps"] if s["name"] == "followup")["detail"]
    assert detail["rerun"] == ["test"] and detail["flaky"] == ["test"] and detail["failing"] == []
    assert detail["nothing"].startswith("flaky: test passed on one re-run"), detail
    assert not any(s["name"] == "implement" for s in after["steps"])  # no fix round
    assert second == head and comments == []  # nothing pushed, nothing said on the PR
    assert sum(line.startswith("re-running test once") for line in logs) == 1, logs


def suite_run_id(github: FakeGitHub, suite_id: int) -> int:
    (run,) = [r for r in github.activity.runs if r["check_suite"]["id"] == suite_id]
    return int(run["id"])
