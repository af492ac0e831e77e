"""The durable accept (issue 10): a 202 means the run record is written, and the record alone is
enough for the run to happen exactly once - whatever dies when. Real service processes, `kill -9`,
on SQLite and on PostgreSQL.

The dispatcher hands records to the DBOS queue after the 202. The test-only hook
AUTO_CODE_TEST_DISPATCH_HOLD (app/services/runner/dispatch.py) stops it for good at a chosen point
and creates a marker file, so each test kills the process exactly there:
- `before`: the record is written, nothing is on the DBOS queue yet;
- `after_enqueue`: the workflow is on the queue, the record not yet marked handed off (so the
  restarted dispatcher hands it off a second time, which must start nothing new).
In the first life the process takes nothing from the queue (QUEUE_WORKER=false: it accepts and hands
off, like any host), so nothing starts before the kill: what runs after the restart is the whole
run, once.
"""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest

from app.services.github.local import LocalPullRequests
from tests.durability.conftest import EnvBuilder
from tests.durability.service_proc import Procs, ServiceProc, db_rows, is_final, run_logs, workflow_executors
from tests.procs import wait_until

pytestmark = pytest.mark.slow


def _held_service(tmp_path: Path, procs: Procs, service_env: EnvBuilder, database_url: str | None,
                  point: str) -> tuple[ServiceProc, Path, str, dict[str, str]]:
    ws = tmp_path / "ws"
    marker = tmp_path / f"held-{point}"
    env = service_env(ws, {"delay_s": 0.2}, EXECUTOR_ID="host-k", APP_VERSION="3", DATABASE_URL=database_url)
    held = {**env, "AUTO_CODE_TEST_DISPATCH_HOLD": f"{point}:{marker}", "QUEUE_WORKER": "false"}
    svc = procs.new("service", held, tmp_path / "proc")
    db_url = database_url or f"sqlite:///{ws / 'auto-code.sqlite'}"
    return svc, marker, db_url, env


def _record(db_url: str, run_id: str) -> dict[str, object]:
    rows = db_rows(db_url, "select status, enqueued_at, dedup_key from ac_runs where run_id = :r", r=run_id)
    assert len(rows) == 1, rows
    return rows[0]


def _runs_once(svc: ServiceProc, db_url: str, run_id: str, key: str) -> None:
    """After the restart: a duplicate still names the run, which ends succeeded, started once, one PR."""
    assert svc.deliver(key) == {"status": "duplicate", "run_id": run_id}
    done = svc.wait_run(run_id, is_final, timeout=40, what="final status")
    assert done["status"] == "succeeded", done["error"]
    assert [r["run_id"] for r in svc.runs(key)] == [run_id]
    logs = run_logs(db_url, run_id)
    assert sum(line == "run_started" for line in logs) == 1, logs
    assert sum(line.startswith("run_finished") for line in logs) == 1, logs
    assert workflow_executors(db_url)[run_id] == ("SUCCESS", "host-k")
    prs = LocalPullRequests(svc.workspace / "pull-requests.json").records()
    assert [p["head"] for p in prs] == [f"ticket/{key.lower()}"]
    assert _record(db_url, run_id)["enqueued_at"] is not None


def test_kill9_after_the_202_before_the_handoff_runs_the_ticket_once(
    tmp_path: Path, procs: Procs, service_env: EnvBuilder, database_url: str | None
) -> None:
    svc, marker, db_url, env = _held_service(tmp_path, procs, service_env, database_url, "before")
    svc.start()
    first = svc.deliver("PROJ-1", "Accepted, then the host dies")
    assert first["status"] == "queued"
    run_id = first["run_id"]
    assert wait_until(marker.exists, within=20), svc.log_tail()
    # The 202 stood on the record alone: queued, holding its key, not on the DBOS queue.
    assert _record(db_url, run_id) == {"status": "queued", "enqueued_at": None, "dedup_key": "PROJ-1"}
    assert run_id not in workflow_executors(db_url)
    svc.kill9()

    svc.env = env  # the same host, without the hook
    svc.start()
    _runs_once(svc, db_url, run_id, "PROJ-1")


def test_kill9_during_the_handoff_runs_the_ticket_once(
    tmp_path: Path, procs: Procs, service_env: EnvBuilder, database_url: str | None
) -> None:
    svc, marker, db_url, env = _held_service(tmp_path, procs, service_env, database_url, "after_enqueue")
    svc.start()
    first = svc.deliver("PROJ-2", "Enqueued, then the host dies before marking it")
    run_id = first["run_id"]
    assert wait_until(marker.exists, within=20), svc.log_tail()
    assert _record(db_url, run_id)["enqueued_at"] is None
    assert workflow_executors(db_url)[run_id][0] == "ENQUEUED"
    svc.kill9()

    svc.env = env
    svc.start()  # its dispatcher hands the record off again: the same workflow id, nothing new
    _runs_once(svc, db_url, run_id, "PROJ-2")
    assert list(workflow_executors(db_url)) == [run_id]


def test_a_run_cancelled_before_its_handoff_never_starts(
    tmp_path: Path, procs: Procs, service_env: EnvBuilder, database_url: str | None
) -> None:
    svc, marker, db_url, env = _held_service(tmp_path, procs, service_env, database_url, "before")
    svc.start()
    run_id = svc.deliver("PROJ-3")["run_id"]
    assert wait_until(marker.exists, within=20), svc.log_tail()
    assert httpx.post(f"{svc.url}/runs/{run_id}/cancel", timeout=10).status_code == 202
    # The key is free at once: a new delivery is a new run.
    again = svc.deliver("PROJ-3")
    assert again["status"] == "queued" and again["run_id"] != run_id
    svc.kill9()

    svc.env = env
    svc.start()  # hands off the new run only (the cancelled record is final)
    done = svc.wait_run(again["run_id"], is_final, timeout=40, what="final status")
    assert done["status"] == "succeeded", done["error"]
    cancelled = svc.run(run_id)
    assert cancelled["status"] == "cancelled" and cancelled["steps"] == []
    assert "run_started" not in run_logs(db_url, run_id)
    assert run_id not in workflow_executors(db_url)
