"""The run engine: DBOS lifecycle, the ticket queue, and the operations intake and operators call.

- `submit(ticket, ...)`: one durable run per delivery, `run_id = "<KEY>:<uuid>"`. The answer waits for
  one write, the run record (`accept_run`), deduplicated by its dedup key (the ticket key unless a
  follow-up names another) while a run for it is queued, waiting or running: the database's partial
  unique index, so it holds across restarts and across instances sharing PostgreSQL, and a final
  record releases the key at once. The dispatcher (dispatch.py) then hands the record to the DBOS
  queue, under the run id as workflow id; the workflow's `start` step moves the record to running.
- `cancel`, `retry`, `recover_executor` for operators.
- At start: the run tables migrated to head and DBOS launched, both under the schema lock
  (migrate.py); then the reconciler (reconcile.py), once and every RECONCILE_INTERVAL_SEC, and the
  dispatcher.
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

from dbos import DBOS, DBOSConfig
from dbos._core import prepare_enqueued_workflow
from dbos._dbos import _get_dbos_instance as _dbos_instance

from app.config import Settings
from app.errors import BadRequest, NotFound
from app.models import RunKind, SubmitResult, Ticket
from app.services.runner import dbos_batch
from app.services.runner.deps import PipelineDeps
from app.services.runner.dispatch import Dispatcher, Handoff, Pending
from app.services.runner.models import RunRef
from app.services.runner.reconcile import Reconciled, reconcile_forever, reconcile_once
from app.services.runner.store_async import AsyncRunStore
from app.services.runner.store_base import NewRun, RunRow
from app.services.runner.workflow import OPTIONS_KEY, TicketRunner

log = logging.getLogger(__name__)

# The runs' queue, partitioned by repository (each repository's runs are dequeued on their own, see
# app/repositories/fairness.py). "tickets" was its unpartitioned name before: a database that still
# has runs there drains them (DBOS works every queue it has recorded); an empty one is dropped.
QUEUE_NAME = "runs"
LEGACY_QUEUE_NAME = "tickets"
# The partition of runs no repository takes (needs_routing, or a ticket that could not be read):
# parentheses are never in a repository's name.
UNROUTED = "(unrouted)"
# Runs decided at once by one handoff (each may read the ticket from Jira).
DECIDE_CONCURRENCY = 8
# The dispatcher's poll for records nobody handed off (a dead host's, seconds): one indexed query.
DISPATCH_POLL_SEC = 1.0
# A record this old (seconds) that its own host has not handed off is taken by any host.
DISPATCH_GRACE_SEC = 5.0
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
        self.dispatcher = Dispatcher(self.store, self._enqueue, prepare=self._decide,
                                     poll_sec=DISPATCH_POLL_SEC, grace_sec=DISPATCH_GRACE_SEC,
                                     gate=self.store.write_gate)
        self._dispatching: asyncio.Task[None] | None = None

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
        dbos_batch.install(_dbos_instance()._sys_db)  # the handoff's batch INSERTs compiled once
        self.queue = await DBOS.register_queue_async(
            QUEUE_NAME,
            # One partition per repository, MAX_CONCURRENT_RUNS runs of each taken at once, up to
            # MAX_CONCURRENT_RUNS per repository in all: the pipeline itself holds the total and each
            # repository's share (app/repositories/fairness.py); one repository = as before.
            worker_concurrency=self.deps.queue_concurrency,
            partition_worker_concurrency=min(self.settings.max_concurrent_runs,
                                             self.deps.queue_concurrency),
            polling_interval_sec=self.settings.queue_poll_interval_sec,
            # The queue's limits live in the database and apply to every host; only workers set them.
            on_conflict="update_if_latest_version" if worker else "never_update",
        )
        if worker:
            await self._drop_legacy_queue()
        log.info("engine_started", extra={"executor_id": self.settings.executor_id, "schema": revision,
                                          "app_version": self.settings.app_version, "queue_worker": worker})
        await self.reconcile()
        # Every process hands off what it accepts (a one-off process also `flush`es before it exits);
        # only queue workers take runs from the queue.
        self._dispatching = asyncio.create_task(self.dispatcher.run())
        interval = self.settings.reconcile_interval_sec
        if interval > 0:
            self._reconciler = asyncio.create_task(reconcile_forever(
                self.store, interval, also=self._drop_legacy_queue if worker else None))

    async def reconcile(self) -> list[Reconciled]:
        """End the records of runs DBOS has finished with (see reconcile.py)."""
        return await reconcile_once(self.store)

    def stop(self) -> None:
        self.deps.stopping = True
        for task in (self._reconciler, self._dispatching):
            if task is not None:
                task.cancel()
        self._reconciler = self._dispatching = None
        DBOS.destroy(destroy_registry=False)

    async def submit(self, ticket: Ticket, *, kind: RunKind = "ticket", dedup_key: str | None = None,
                     parent_run_id: str | None = None, pr_number: int | None = None) -> SubmitResult:
        """Accept a run for the ticket, or name the run already active for its dedup key.

        The answer waits for one durable write, the run record (`accept_run`); the dispatcher hands
        it to the DBOS queue afterwards. `dedup_key` defaults to the ticket key (one ticket run at a
        time); a follow-up run names its own (e.g. per PR and trigger). `kind`, `parent_run_id` and
        `pr_number` go on the record."""
        new = NewRun(run_id=f"{ticket.key}:{uuid.uuid4()}", ticket=ticket.key,
                     ticket_json=self.store.redact(ticket.model_dump_json()),
                     dedup_key=dedup_key or ticket.key, kind=kind, parent_run_id=parent_run_id,
                     pr_number=pr_number)
        holder = await self.store.accept_run(new)
        if holder != new.run_id:
            log.info("duplicate_delivery", extra={"ticket": ticket.key, "run_id": holder})
            return SubmitResult(status="duplicate", run_id=holder)
        self.dispatcher.accepted(new)
        log.info("run_queued", extra={"ticket": ticket.key, "run_id": new.run_id, "kind": kind})
        return SubmitResult(status="queued", run_id=new.run_id)

    async def _decide(self, batch: list[Pending]) -> list[Handoff]:
        """The dispatcher's `prepare`: each run's options decided now (the ticket as Jira has it,
        its repository: repo_steps.decide, no write), so the run goes on its repository's partition
        with them as its workflow's input. A run that cannot be decided gets options that end it
        visibly failed (decide_safely): the batch is never stuck on one record."""
        room = asyncio.Semaphore(DECIDE_CONCURRENCY)

        async def one(p: Pending) -> Handoff:
            try:
                data = json.loads(p.ticket_json)
                run = RunRef(run_id=p.run_id, ticket=Ticket.model_validate(data))
            except ValueError:  # not JSON, or not a ticket (pydantic's ValidationError is one too)
                # Handed off as it is: its workflow fails reading it and the reconciler ends the run
                # failed, instead of this raising for the whole batch on every pass.
                log.warning("run_ticket_unreadable", extra={"run_id": p.run_id})
                return Handoff(p.run_id, ({"unreadable": p.run_id},), UNROUTED)
            async with room:
                opts = await self.runner.decide_safely(run, parent_run_id=p.parent_run_id, kind=p.kind)
            return Handoff(p.run_id, ({**data, OPTIONS_KEY: opts.model_dump(mode="json")},),
                           opts.routed or UNROUTED)

        return list(await asyncio.gather(*(one(p) for p in batch)))

    async def _enqueue(self, batch: list[Handoff]) -> None:
        """The dispatcher's handoff of a batch of records, in one transaction: each workflow's id is
        its run's, and a workflow that exists is skipped, so handing a run off again starts nothing
        new. This is DBOS's own batch enqueue (its Kafka consumer's: `prepare_enqueued_workflow` +
        `init_workflows`, both internal in dbos 3.4): one enqueue per run would be one write
        transaction each, queueing on SQLite's single write lock behind intake's inserts. Its INSERTs
        are compiled once per process (dbos_batch.py), not per batch."""
        dbos = _dbos_instance()

        def write() -> None:
            statuses = [prepare_enqueued_workflow(dbos, self.runner.run_ticket, h.args, {},
                                                  queue_name=QUEUE_NAME, workflow_id=h.run_id,
                                                  queue_partition_key=h.partition or UNROUTED)
                        for h in batch]
            dbos._sys_db.init_workflows(statuses)

        await asyncio.to_thread(write)

    async def _drop_legacy_queue(self) -> None:
        """The unpartitioned queue of older versions: left to drain while it holds runs (DBOS works
        every queue it has recorded), dropped once empty so no thread polls it for nothing. Runs
        found on it once it was dropped get it back: a host of the older version still serving in
        a rolling deploy hands off there (its queue thread exits with the queue's row), and nothing
        would ever take them. At the start and every reconcile round."""
        names = {q.name for q in await DBOS.list_queues_async()}
        left = await DBOS.list_workflows_async(queue_name=LEGACY_QUEUE_NAME, status=["ENQUEUED", "PENDING"],
                                               limit=1, load_input=False, load_output=False)
        if left:
            if LEGACY_QUEUE_NAME not in names:
                await DBOS.register_queue_async(
                    LEGACY_QUEUE_NAME, worker_concurrency=self.deps.queue_concurrency,
                    polling_interval_sec=self.settings.queue_poll_interval_sec,
                    on_conflict="update_if_latest_version")
                log.warning("legacy_queue_restored", extra={"queue": LEGACY_QUEUE_NAME})
            log.debug("legacy_queue_draining", extra={"queue": LEGACY_QUEUE_NAME})
        elif LEGACY_QUEUE_NAME in names:
            await DBOS.delete_queue_async(LEGACY_QUEUE_NAME)

    async def cancel(self, run_id: str) -> None:
        """End an active run `cancelled`. The record goes first: it releases the dedup key at once, and
        a run not yet handed to the queue (or handed off meanwhile) then starts no work (`start_run`)."""
        row = await self.store.get_run_row(run_id)
        if row is None:
            raise NotFound(f"no run {run_id}")
        reason = "cancelled by an operator"
        if row.is_final or not await self.store.end_run_if_active(run_id, "cancelled", reason):
            ended = row if row.is_final else await self.store.get_run_row(run_id)
            raise BadRequest(f"run {run_id} already ended ({ended.status if ended else '?'})",
                             code="run_finished")
        await DBOS.cancel_workflow_async(run_id)
        await self.store.fail_running_steps(run_id, reason, "cancelled")
        run = await self.store.get_run(run_id)
        steps = run.steps if run is not None else []
        prepared = [s.detail["path"] for s in steps if s.name == "prepare" and "path" in s.detail]
        hint = f"; worktree kept: git worktree remove {prepared[0]} --force" if prepared else ""
        await self.store.add_log(run_id, f"run cancelled by an operator{hint}", "warning")

    async def retry(self, run_id: str) -> SubmitResult:
        """A new run of the same ticket, kind and PR (the old run's record stays as it was)."""
        row = await self.store.get_run_row(run_id)
        if row is None:
            raise NotFound(f"no run {run_id}")
        if not row.is_final:
            raise BadRequest(f"run {run_id} is still {row.status}", code="run_active")
        return await self._resubmit(row, row.ticket_json)

    async def _resubmit(self, row: RunRow, ticket_json: str) -> SubmitResult:
        return await self.submit(Ticket.model_validate_json(ticket_json), kind=row.kind,
                                 dedup_key=row.dedup_key, parent_run_id=row.parent_run_id,
                                 pr_number=row.pr_number)

    async def recover_executor(self, dead_executor_id: str) -> list[dict[str, str]]:
        """Finish a dead host's runs here: each run it had started (PENDING on that executor) is
        cancelled — its record first, which releases its dedup key — and its ticket re-submitted as
        a fresh run that starts from `prepare` on a live host (the dead host's worktree is gone with
        it). The PR step reuses the ticket's open PR, so a PR the dead host already opened is not
        doubled. Runs the dead host accepted but never handed off need nothing: every host's
        dispatcher takes them. The new runs are on the queue when this returns, and each old run's Jira
        progress comment says it stopped and which run continues it (with Jira progress comments on)."""
        if dead_executor_id == self.settings.executor_id:
            raise BadRequest("refusing to recover this process's own executor id", code="own_executor")
        pending = await DBOS.list_workflows_async(status="PENDING", executor_id=dead_executor_id)
        moved: list[dict[str, str]] = []
        for wf in pending:
            if wf.queue_name not in (QUEUE_NAME, LEGACY_QUEUE_NAME):
                continue
            row = await self.store.get_run_row(wf.workflow_id)
            await DBOS.cancel_workflow_async(wf.workflow_id)
            if row is None:  # a workflow without a record: nothing to continue
                log.warning("run_recover_skipped", extra={"run_id": wf.workflow_id, "reason": "no record"})
                continue
            died = f"executor {dead_executor_id} died"
            await self.store.end_run_if_active(wf.workflow_id, "cancelled", died)
            result = await self._resubmit(row, row.ticket_json)
            await self.store.update_run(wf.workflow_id, status="cancelled",
                                        error=f"{died}; continued as {result.run_id}")
            moved.append({"from": wf.workflow_id, "to": result.run_id, "status": result.status})
            if self.deps.progress is not None:  # its Jira comment would say "working" for good
                self.deps.progress.cancelled(wf.workflow_id)
            log.warning("run_recovered", extra={"run_id": wf.workflow_id, "new_run_id": result.run_id})
        await self.dispatcher.flush()
        if self.deps.progress is not None:
            await self.deps.progress.idle()  # the comments' edits (bounded) before a one-off exits
        return moved
