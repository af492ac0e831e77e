"""The reconciler against real DBOS workflows forced into each ending, and replay idempotency of the
run store's usage (a step re-run after a crash does not count its agent call twice).

Each ending is produced by DBOS itself: a workflow that raises (ERROR), `DBOS.cancel_workflow_async`
(CANCELLED), a workflow that returns without closing its record (SUCCESS), and a workflow whose
process "crashes" (DBOS destroyed mid-step, relaunched) more often than its `max_recovery_attempts`
(MAX_RECOVERY_ATTEMPTS_EXCEEDED, dead-lettered by DBOS's own recovery).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from dbos import DBOS, SetWorkflowID

from app.services.runner.reconcile import MISSING_WORKFLOW_GRACE_SEC, reconcile_once
from app.services.runner.store import SqlRunStore, make_engine
from app.services.runner.store_async import AsyncRunStore
from tests.services.runner.dbos_env import DbosEnv
from tests.services.runner.harness import running_service

# What the test workflows need from the test (module-level: recovered workflows run on DBOS's loop).
STATE: dict[str, Any] = {"env": None, "block": True}


@DBOS.step()
async def hang_step() -> str:
    await asyncio.sleep(3600)
    return "never"


@DBOS.workflow()
async def wf_raises() -> str:
    raise RuntimeError("boom outside the handler")


@DBOS.workflow()
async def wf_returns() -> str:
    return "succeeded"


@DBOS.workflow()
async def wf_waits() -> str:
    return await hang_step()


@DBOS.workflow(max_recovery_attempts=1)
async def wf_crash_loop() -> str:
    return await hang_step()


@DBOS.step()
async def charge_step(run_id: str) -> int:
    """One agent call's usage, recorded without a call id; the first execution then 'crashes'."""
    await STATE["env"].store.add_usage(run_id, turns=3, cost_usd=0.25, session_id="sess-1")
    while STATE["block"]:
        await asyncio.sleep(0.05)
    return 3


@DBOS.workflow()
async def wf_charges(run_id: str) -> int:
    first = await charge_step(run_id)
    await STATE["env"].store.add_usage(run_id, turns=1, cost_usd=0.5, session_id=None, call_id="review:0")
    return first


@pytest.fixture
async def env(tmp_path: Path) -> AsyncIterator[DbosEnv]:
    dbos_env = DbosEnv(f"sqlite:///{tmp_path / 'db.sqlite'}")
    dbos_env.launch()
    STATE.update(env=dbos_env, block=True)
    try:
        yield dbos_env
    finally:
        STATE["block"] = False
        dbos_env.destroy()


async def _status(wid: str, until: set[str], timeout: float = 30) -> str:
    deadline = time.monotonic() + timeout
    status = "?"
    while time.monotonic() < deadline:
        wf = await DBOS.get_workflow_status_async(wid)
        status = wf.status if wf else "MISSING"
        if status in until:
            return status
        await asyncio.sleep(0.05)
    raise AssertionError(f"{wid} still {status}, expected one of {until}")


async def _start(store: AsyncRunStore, run_id: str, fn: Any, *args: Any) -> None:
    await store.create_run(run_id, run_id.split(":")[0], "{}", "running")
    with SetWorkflowID(run_id):
        await DBOS.start_workflow_async(fn, *args)


class TestEndings:
    async def test_error_outside_the_handler_fails_the_run(self, env: DbosEnv) -> None:
        await _start(env.store, "PROJ-1:a", wf_raises)
        assert await _status("PROJ-1:a", {"ERROR"}) == "ERROR"
        ended = await reconcile_once(env.store)
        row = await env.store.get_run_row("PROJ-1:a")
        assert [(e.run_id, e.workflow_status, e.status) for e in ended] == [("PROJ-1:a", "ERROR", "failed")]
        assert row is not None and row.status == "failed"
        assert row.error == ("workflow errored outside the pipeline's handler: "
                             "RuntimeError: boom outside the handler")
        logs = [line.message for line in await env.store.logs_after("PROJ-1:a")]
        assert logs == [f"run reconciled: failed: {row.error}"]

    async def test_cancelled_workflow_cancels_the_run_and_its_running_step(self, env: DbosEnv) -> None:
        await _start(env.store, "PROJ-2:a", wf_waits)
        await env.store.start_step("PROJ-2:a", "implement")
        await _status("PROJ-2:a", {"PENDING"})
        await DBOS.cancel_workflow_async("PROJ-2:a")
        await reconcile_once(env.store)
        run = await env.store.get_run("PROJ-2:a")
        assert run is not None and run.status == "cancelled"
        assert run.error == "the durable workflow was cancelled outside the runs API"
        assert [(s.name, s.status) for s in run.steps] == [("implement", "cancelled")]

    async def test_success_with_an_open_record_fails_the_run(self, env: DbosEnv) -> None:
        await _start(env.store, "PROJ-3:a", wf_returns)
        await _status("PROJ-3:a", {"SUCCESS"})
        await reconcile_once(env.store)
        row = await env.store.get_run_row("PROJ-3:a")
        assert row is not None and row.status == "failed"
        assert row.error is not None and "returned 'succeeded'" in row.error and "left open" in row.error

    async def test_workflow_past_its_recovery_limit_fails_the_run(self, env: DbosEnv) -> None:
        await _start(env.store, "PROJ-4:a", wf_crash_loop)
        await _status("PROJ-4:a", {"PENDING"})
        # Every "restart" recovers the workflow and it hangs again, until DBOS gives up on it.
        for _ in range(6):
            env.relaunch()
            status = await _status("PROJ-4:a", {"PENDING", "MAX_RECOVERY_ATTEMPTS_EXCEEDED"})
            if status == "MAX_RECOVERY_ATTEMPTS_EXCEEDED":
                break
            # Let the recovered execution actually start (its attempt is counted at dequeue).
            await asyncio.sleep(0.3)
        assert await _status("PROJ-4:a", {"MAX_RECOVERY_ATTEMPTS_EXCEEDED"}, timeout=10)
        wf = await DBOS.get_workflow_status_async("PROJ-4:a")
        await reconcile_once(env.store)
        row = await env.store.get_run_row("PROJ-4:a")
        assert row is not None and row.status == "failed"
        assert wf is not None
        assert row.error is not None and row.error.startswith(
            f"the durable workflow gave up after {wf.recovery_attempts} recovery attempts")

    async def test_live_final_and_young_orphan_runs_are_left_alone(self, env: DbosEnv) -> None:
        await _start(env.store, "PROJ-5:live", wf_waits)
        await _status("PROJ-5:live", {"PENDING"})
        await _start(env.store, "PROJ-5:done", wf_raises)
        await _status("PROJ-5:done", {"ERROR"})
        await env.store.update_run("PROJ-5:done", status="succeeded")  # the pipeline already ended it
        await env.store.create_run("PROJ-5:orphan", "PROJ-5", "{}")  # handed off, its workflow not seen
        await env.store.mark_enqueued(["PROJ-5:orphan"])
        await env.store.create_run("PROJ-6:waiting", "PROJ-6", "{}")  # not handed off yet: the dispatcher's
        assert await reconcile_once(env.store) == []
        assert (await env.store.get_run_row("PROJ-5:live")).status == "running"  # type: ignore[union-attr]
        assert (await env.store.get_run_row("PROJ-5:done")).status == "succeeded"  # type: ignore[union-attr]
        # An orphan past the grace period: no workflow will ever run it.
        later = time.time() + MISSING_WORKFLOW_GRACE_SEC + 1
        ended = await reconcile_once(env.store, now=later)
        assert [(e.run_id, e.workflow_status, e.status) for e in ended] == [
            ("PROJ-5:orphan", "MISSING", "failed")]
        assert (await env.store.get_run_row("PROJ-6:waiting")).status == "queued"  # type: ignore[union-attr]


async def _hosts_reconcile_at_once(env: DbosEnv, n_hosts: int) -> None:
    ids = [f"PROJ-{10 + i}:a" for i in range(4)]
    for rid in ids:
        await _start(env.store, rid, wf_raises)
    for rid in ids:
        await _status(rid, {"ERROR"})
    # Each "host" has its own store (own engine, own connections) on the same database.
    hosts = [AsyncRunStore(SqlRunStore(make_engine(env.url))) for _ in range(n_hosts)]
    try:
        results = await asyncio.gather(*(reconcile_once(h) for h in hosts))
    finally:
        for h in hosts:
            h.sync.dispose()
    ended = sorted(e.run_id for result in results for e in result)
    assert ended == sorted(ids)  # each run ended by exactly one host
    for rid in ids:
        logs = [line.message for line in await env.store.logs_after(rid)]
        assert len(logs) == 1 and logs[0].startswith("run reconciled: failed")


async def test_several_hosts_reconcile_at_once_each_run_ends_once(env: DbosEnv) -> None:
    await _hosts_reconcile_at_once(env, 4)


@pytest.mark.postgres
async def test_several_hosts_reconcile_at_once_on_postgres(pg_database: str) -> None:
    pg_env = DbosEnv(pg_database)
    pg_env.launch()
    try:
        await _hosts_reconcile_at_once(pg_env, 4)
    finally:
        pg_env.destroy()


async def test_step_rerun_after_a_crash_does_not_count_its_usage_twice(env: DbosEnv) -> None:
    await _start(env.store, "PROJ-20:a", wf_charges, "PROJ-20:a")
    deadline = time.monotonic() + 20
    while (row := await env.store.get_run_row("PROJ-20:a")) is None or row.turns == 0:
        assert time.monotonic() < deadline, "the step never recorded its usage"
        await asyncio.sleep(0.05)
    # The process dies after the agent call was recorded but before DBOS recorded the step.
    env.destroy()
    STATE["block"] = False
    env.launch()  # a new process: a new store; DBOS recovers the workflow and re-runs the step
    assert await _status("PROJ-20:a", {"SUCCESS"}) == "SUCCESS"
    row = await env.store.get_run_row("PROJ-20:a")
    assert row is not None
    assert (row.turns, round(row.cost_usd, 6), row.session_id) == (4, 0.75, "sess-1")
    # The explicit call id is idempotent too; calls outside a DBOS step are each new.
    await env.store.add_usage("PROJ-20:a", turns=1, cost_usd=0.5, session_id=None, call_id="review:0")
    await env.store.add_usage("PROJ-20:a", turns=2, cost_usd=0.0, session_id=None)
    await env.store.add_usage("PROJ-20:a", turns=2, cost_usd=0.0, session_id=None)
    row = await env.store.get_run_row("PROJ-20:a")
    assert row is not None and (row.turns, round(row.cost_usd, 6)) == (8, 0.75)


def test_periodic_reconciler_runs_in_the_service(tmp_path: Path) -> None:
    """Wiring: the engine reconciles every RECONCILE_INTERVAL_SEC (a cancel done behind the engine's
    back, straight through DBOS, shows up as `cancelled`)."""
    with running_service(tmp_path, {"delay_s": 30}, RECONCILE_INTERVAL_SEC="0.2") as svc:
        run_id = svc.deliver("PROJ-40")["run_id"]
        deadline = time.monotonic() + 20
        while svc.client.get(f"/runs/{run_id}").json()["status"] != "running":
            assert time.monotonic() < deadline
            time.sleep(0.05)
        DBOS.cancel_workflow(run_id)
        run = svc.wait(run_id, timeout=20)
    assert run["status"] == "cancelled"
    assert run["error"] == "the durable workflow was cancelled outside the runs API"
