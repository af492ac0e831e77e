"""The run engine: DBOS lifecycle, the ticket queue, and the operations intake and operators call.

- `submit(ticket)`: one durable run per delivery, `run_id = "<KEY>:<uuid>"`, deduplicated by ticket
  key while a run for it is queued or running (DBOS's unique dedup index, so it holds across restarts
  and across instances sharing PostgreSQL).
- `cancel`, `retry`, `recover_executor` for operators.
- At start: the run tables migrated to head and DBOS launched, both under the schema lock
  (migrate.py); then the reconciler (reconcile.py), once and every RECONCILE_INTERVAL_SEC.
Facts this relies on (measured with dbos 3.4, see shared/notes/dbos.md): DBOS is a process-wide
singleton; queues are registered after launch; recovery only takes runs of the same
`application_version` and `executor_id`, so both are pinned from settings.
"""

from __future__ import annotations

import asyncio
import json
import logging
import uuid
from typing import Any

from dbos import DBOS, DBOSConfig, SetEnqueueOptions, SetWorkflowID

from app.config import Settings
from app.errors import BadRequest, NotFound
from app.models import RunKind, SubmitResult, Ticket
from app.services.runner.deps import PipelineDeps
from app.services.runner.reconcile import Reconciled, reconcile_forever, reconcile_once
from app.services.runner.store_async import AsyncRunStore
from app.services.runner.workflow import TicketRunner

log = logging.getLogger(__name__)

QUEUE_NAME = "tickets"
# How often (50 ms apart) a delivery retries when the run holding its key has already ended.
FINISHING_RETRIES = 40
APP_NAME = "auto-code"

_runner: TicketRunner | None = None


def get_ticket_runner() -> TicketRunner:
    """The process's one TicketRunner (DBOS allows one registration per config name)."""
    global _runner
    if _runner is None:
        _runner = TicketRunner()
    return _runner


def dbos_config(settings: Settings) -> DBOSConfig:
    return {
        "name": APP_NAME,
        "system_database_url": settings.system_database_url,
        "application_version": settings.app_version,
        "executor_id": settings.executor_id,
        "log_level": "WARNING",
        # Faster wake-ups for events/notifications; DBOS polls at 1 s by default.
        "notification_listener_polling_interval_sec": 0.1,
        "run_migrations": True,
    }


class RunEngine:
    """Owns DBOS for the process. `start()` in the lifespan before serving, `stop()` after."""

    def __init__(self, settings: Settings, deps: PipelineDeps) -> None:
        self.settings = settings
        self.deps = deps
        self.store: AsyncRunStore = deps.store
        self.runner = get_ticket_runner()
        self.queue: Any = None
        self._reconciler: asyncio.Task[None] | None = None

    async def start(self) -> None:
        self.runner.deps = self.deps
        worker = self.settings.queue_worker
        DBOS(config=dbos_config(self.settings))
        if not worker:
            # DBOS dequeues from every queue recorded in the database unless told otherwise; a
            # one-off process (`auto-code recover`) would start runs and strand them when it exits.
            DBOS.listen_queues([])
        # DBOS migrates its own tables in launch(): on PostgreSQL it runs under our schema lock too,
        # so hosts starting together on a fresh database come up one after the other.
        revision = self.store.sync.create_schema(then=DBOS.launch)
        self.queue = await DBOS.register_queue_async(
            QUEUE_NAME,
            worker_concurrency=self.settings.max_concurrent_runs,
            polling_interval_sec=self.settings.queue_poll_interval_sec,
            # The queue's limits live in the database and apply to every host; only workers set them.
            on_conflict="update_if_latest_version" if worker else "never_update",
        )
        log.info("engine_started", extra={"executor_id": self.settings.executor_id, "schema": revision,
                                          "app_version": self.settings.app_version, "queue_worker": worker})
        await self.reconcile()
        interval = self.settings.reconcile_interval_sec
        if interval > 0:
            self._reconciler = asyncio.create_task(reconcile_forever(self.store, interval))

    async def reconcile(self) -> list[Reconciled]:
        """End the records of runs DBOS has finished with (see reconcile.py)."""
        return await reconcile_once(self.store)

    def stop(self) -> None:
        self.deps.stopping = True
        if self._reconciler is not None:
            self._reconciler.cancel()
            self._reconciler = None
        DBOS.destroy(destroy_registry=False)

    async def submit(self, ticket: Ticket, *, kind: RunKind = "ticket", dedup_key: str | None = None,
                     parent_run_id: str | None = None, pr_number: int | None = None) -> SubmitResult:
        """Enqueue a run for the ticket, or name the run already queued/running for its dedup key.

        `dedup_key` defaults to the ticket key (one ticket run at a time); a follow-up run names its
        own (e.g. per PR and trigger). `kind`, `parent_run_id` and `pr_number` go on the record."""
        key = dedup_key or ticket.key
        run_id = f"{ticket.key}:{uuid.uuid4()}"
        data = ticket.model_dump()
        for attempt in range(FINISHING_RETRIES + 1):
            with SetWorkflowID(run_id), SetEnqueueOptions(
                deduplication_id=key, duplication_policy="return-existing"
            ):
                handle = await self.queue.enqueue_async(self.runner.run_ticket, data)
            existing = handle.get_workflow_id()
            if existing == run_id:
                break
            # The run holding the key may have just ended: its record is final a moment before DBOS
            # marks the workflow done and releases the key. A delivery in that window is new work.
            row = await self.store.get_run_row(existing)
            if row is None or not row.is_final or attempt == FINISHING_RETRIES:
                log.info("duplicate_delivery", extra={"ticket": ticket.key, "run_id": existing})
                return SubmitResult(status="duplicate", run_id=existing)
            await asyncio.sleep(0.05)
        # The workflow's first step also creates the record; whichever comes first wins.
        await self.store.create_run(run_id, ticket.key, json.dumps(data), kind=kind,
                                    parent_run_id=parent_run_id, pr_number=pr_number)
        log.info("run_queued", extra={"ticket": ticket.key, "run_id": run_id, "kind": kind})
        return SubmitResult(status="queued", run_id=run_id)

    async def cancel(self, run_id: str) -> None:
        row = await self.store.get_run_row(run_id)
        if row is None:
            raise NotFound(f"no run {run_id}")
        if row.is_final:
            raise BadRequest(f"run {run_id} already ended ({row.status})", code="run_finished")
        await DBOS.cancel_workflow_async(run_id)
        await self.store.update_run(run_id, status="cancelled", error="cancelled by an operator")
        await self.store.fail_running_steps(run_id, "cancelled by an operator", "cancelled")
        run = await self.store.get_run(run_id)
        steps = run.steps if run is not None else []
        prepared = [s.detail["path"] for s in steps if s.name == "prepare" and "path" in s.detail]
        hint = f"; worktree kept: git worktree remove {prepared[0]} --force" if prepared else ""
        await self.store.add_log(run_id, f"run cancelled by an operator{hint}", "warning")

    async def retry(self, run_id: str) -> SubmitResult:
        """A new run of the same ticket (the old run's record stays as it was)."""
        row = await self.store.get_run_row(run_id)
        if row is None:
            raise NotFound(f"no run {run_id}")
        if not row.is_final:
            raise BadRequest(f"run {run_id} is still {row.status}", code="run_active")
        return await self.submit(Ticket.model_validate_json(row.ticket_json))

    async def recover_executor(self, dead_executor_id: str) -> list[dict[str, str]]:
        """Finish a dead host's runs here: each run it had started (PENDING on that executor) is
        cancelled — which releases its dedup key — and its ticket re-submitted as a fresh run that
        starts from `prepare` on a live host (the dead host's worktree is gone with it). The PR
        step reuses the ticket's open PR, so a PR the dead host already opened is not doubled."""
        if dead_executor_id == self.settings.executor_id:
            raise BadRequest("refusing to recover this process's own executor id", code="own_executor")
        pending = await DBOS.list_workflows_async(status="PENDING", executor_id=dead_executor_id)
        moved: list[dict[str, str]] = []
        for wf in pending:
            if wf.queue_name != QUEUE_NAME:
                continue
            row = await self.store.get_run_row(wf.workflow_id)
            ticket_json = row.ticket_json if row else None
            if ticket_json is None and wf.input is not None:
                ticket_json = json.dumps(wf.input.get("args", [{}])[0] if isinstance(wf.input, dict) else {})
            await DBOS.cancel_workflow_async(wf.workflow_id)
            result = await self.submit(Ticket.model_validate_json(ticket_json or "{}"))
            await self.store.update_run(
                wf.workflow_id, status="cancelled",
                error=f"executor {dead_executor_id} died; continued as {result.run_id}",
            )
            moved.append({"from": wf.workflow_id, "to": result.run_id, "status": result.status})
            log.warning("run_recovered", extra={"run_id": wf.workflow_id, "new_run_id": result.run_id})
        return moved
