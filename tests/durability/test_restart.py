"""Restart recovery with a real service process: `kill -9` while a run is in its `implement` step,
start the service again with the same EXECUTOR_ID and APP_VERSION, and the run continues at its
first unfinished step (finished steps are not run again), ends `succeeded` with one PR, and a
duplicate delivered after the restart still gets the same run id. On SQLite and on PostgreSQL."""

from __future__ import annotations

import time
from datetime import datetime
from pathlib import Path

import pytest

from app.services.github.local import LocalPullRequests
from tests.durability.conftest import EnvBuilder
from tests.durability.service_proc import Procs, is_final, run_logs, step_status, workflow_executors

pytestmark = pytest.mark.slow

IMPLEMENT_DELAY_S = 4.0  # long enough to kill the service inside the step, short enough to wait for


def _ts(iso: str) -> float:
    return datetime.fromisoformat(iso.replace("Z", "+00:00")).timestamp()


def _step(run: dict, name: str) -> dict:
    return next(s for s in run["steps"] if s["name"] == name)


def test_kill9_mid_run_resumes_at_first_unfinished_step(
    tmp_path: Path, procs: Procs, service_env: EnvBuilder, database_url: str | None
) -> None:
    ws = tmp_path / "ws"
    env = service_env(ws, {"delay_s": IMPLEMENT_DELAY_S}, EXECUTOR_ID="host-r", APP_VERSION="7",
                      DATABASE_URL=database_url)
    db_url = database_url or f"sqlite:///{ws / 'auto-code.sqlite'}"
    svc = procs.new("service", env, tmp_path / "proc")
    svc.start()

    first = svc.deliver("PROJ-1", "Survive a crash")
    assert first["status"] == "queued"
    run_id = first["run_id"]
    before = svc.wait_run(run_id, lambda r: step_status(r, "implement") == "running", timeout=20,
                          what="implement running")
    assert step_status(before, "prepare") == "succeeded"
    svc.kill9()
    killed_at = time.time()

    # Nothing finished the run while the service was dead.
    assert workflow_executors(db_url)[run_id] == ("PENDING", "host-r")

    svc.start()
    dup = svc.deliver("PROJ-1", "Survive a crash")
    assert dup == {"status": "duplicate", "run_id": run_id}
    assert not is_final(svc.run(run_id)), "the duplicate must arrive while the recovered run is active"

    after = svc.wait_run(run_id, is_final, timeout=30, what="final status")
    assert after["status"] == "succeeded", after["error"]
    assert after["pr_url"]
    # Finished steps kept their one execution; the interrupted step ran again after the restart.
    assert _step(after, "prepare")["started_at"] == _step(before, "prepare")["started_at"]
    assert _step(after, "prepare")["finished_at"] == _step(before, "prepare")["finished_at"]
    assert _ts(_step(after, "implement")["started_at"]) > killed_at
    logs = run_logs(db_url, run_id)
    assert sum(line == "run_started" for line in logs) == 1, logs
    assert sum(line.startswith("worktree ready at") for line in logs) == 1, logs
    assert sum(line.startswith("mock-claude[implement]") for line in logs) == 1, logs  # first never ended
    assert sum(line.startswith("run_finished status=succeeded") for line in logs) == 1, logs

    runs = svc.runs("PROJ-1")
    assert [r["run_id"] for r in runs] == [run_id]
    prs = LocalPullRequests(ws / "pull-requests.json").records()
    assert [(p["head"], p["html_url"]) for p in prs] == [("ticket/proj-1", after["pr_url"])]
