"""The reconciler: a run's record must not say `queued|running` after DBOS has finished with it.

DBOS's workflow status and the run record are two sources; the pipeline keeps them in step (its
handler records every outcome it sees), but some endings happen where the pipeline cannot see them:
- DBOS gave up on the workflow (`MAX_RECOVERY_ATTEMPTS_EXCEEDED`: it crashed the process on every
  attempt) - the run is `failed`, saying so;
- the workflow raised outside the pipeline's handler (`ERROR`) - `failed`, with DBOS's error;
- the workflow was cancelled without the engine (`CANCELLED`, e.g. by DBOS's own tooling) -
  `cancelled`;
- the workflow returned (`SUCCESS`) but its record was left open - `failed`, saying so;
- no workflow exists for a record the dispatcher handed off (`enqueued_at` set) longer ago than the
  grace period - `failed`. A record not yet handed off has no workflow by design: the dispatcher's.
`PENDING`, `ENQUEUED` and `DELAYED` workflows are alive (or waiting for their host's restart) and are
left alone. Each ending is written with `end_run_if_active` (an UPDATE whose WHERE names the old
statuses), so every host may reconcile at once: one write wins, the others change nothing. Runs at
the engine's start and every RECONCILE_INTERVAL_SEC.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from dbos import DBOS

from app.models import RunStatus, StepStatus
from app.services.runner.store_base import RunStore

log = logging.getLogger(__name__)

# A handed-off record with no workflow is reconciled only once its handoff is this old (seconds):
# the dispatcher enqueues before it marks, but a listing may run between a workflow's creation in
# another host's transaction and our read of it.
MISSING_WORKFLOW_GRACE_SEC = 60.0
_BATCH = 200  # workflow ids per DBOS listing


@dataclass(frozen=True, slots=True)
class Reconciled:
    """One run this host ended: its id, the DBOS status seen, and what the record now says."""

    run_id: str
    workflow_status: str
    status: RunStatus
    error: str


def _ending(workflow_status: str, recovery_attempts: int | None, error: object,
            output: object) -> tuple[RunStatus, str] | None:
    if workflow_status == "MAX_RECOVERY_ATTEMPTS_EXCEEDED":
        n = recovery_attempts if recovery_attempts is not None else "?"
        return "failed", (f"the durable workflow gave up after {n} recovery attempts (the run crashed "
                          "its process every time it was resumed); retry the run")
    if workflow_status == "ERROR":
        detail = f"{type(error).__name__}: {error}" if isinstance(error, BaseException) else str(error)
        return "failed", f"workflow errored outside the pipeline's handler: {detail}"
    if workflow_status == "CANCELLED":
        return "cancelled", "the durable workflow was cancelled outside the runs API"
    if workflow_status == "SUCCESS":
        return "failed", (f"the durable workflow ended (returned {output!r}) but the run record was "
                          "left open; check the branch and pull request")
    return None


async def reconcile_once(store: RunStore, *, now: float | None = None) -> list[Reconciled]:
    """End every active record whose workflow DBOS has finished with; what this call ended."""
    active = await store.list_active()
    ended: list[Reconciled] = []
    now = time.time() if now is None else now
    for start in range(0, len(active), _BATCH):
        batch = active[start:start + _BATCH]
        workflows = await DBOS.list_workflows_async(
            workflow_ids=[row.run_id for row in batch], load_input=False, load_output=True)
        by_id = {wf.workflow_id: wf for wf in workflows}
        for row in batch:
            wf = by_id.get(row.run_id)
            ending: tuple[RunStatus, str] | None
            if wf is None:
                if row.enqueued_at is None or now - row.enqueued_at < MISSING_WORKFLOW_GRACE_SEC:
                    continue
                seen, ending = "MISSING", ("failed", "no durable workflow exists for this run")
            else:
                seen = wf.status
                ending = _ending(wf.status, wf.recovery_attempts, wf.error, wf.output)
            if ending is None:
                continue
            status, error = ending
            if not await store.end_run_if_active(row.run_id, status, error):
                continue  # another host (or the pipeline) ended it first
            step_status: StepStatus = "cancelled" if status == "cancelled" else "failed"
            await store.fail_running_steps(row.run_id, error, step_status)
            await store.add_log(row.run_id, f"run reconciled: {status}: {error}", "warning")
            log.warning("run_reconciled", extra={"run_id": row.run_id, "workflow_status": seen,
                                                 "status": status})
            ended.append(Reconciled(row.run_id, seen, status, error))
    return ended


async def reconcile_forever(store: RunStore, interval_sec: float,
                            also: Callable[[], Awaitable[None]] | None = None) -> None:
    """`reconcile_once` every `interval_sec` until cancelled, then `also()` (the engine's upkeep of
    its queues); a failed round is logged and retried."""
    while True:
        await asyncio.sleep(interval_sec)
        try:
            await reconcile_once(store)
            if also is not None:
                await also()
        except Exception:  # the database may be briefly away; the next round tries again
            log.exception("reconcile_failed")
