"""The dispatcher: hands accepted run records to the DBOS queue, after intake has answered.

Intake's only durable write is the run record (`RunStore.accept_run`, status `queued`, enqueued_at
NULL). One dispatcher task per engine (per host) then enqueues such records on the DBOS queue, a
batch in one transaction, each under the run's own id as workflow id (a second handoff of the same
run - after a crash between enqueue and mark, or by two hosts at once - finds the workflow that
exists and starts nothing), and marks the batch `enqueued_at` in one UPDATE. Before that, outside
any write lock, `prepare` turns each record into its `Handoff`: the engine decides the run's options
there (the ticket as Jira has it, its repository: repo_steps.decide), because the repository is the
run's partition of the queue (app/repositories/fairness.py). It is
- woken at once by `accepted()` (intake in this process), and takes what accumulated meanwhile as
  one batch (a burst of deliveries becomes a few batches, not one wake-up each);
- polling every `poll_sec` for records nobody handed off: those a host left when it died (kill -9
  after the 202, before or during the handoff) or that another host's dispatcher has not taken
  within `grace_sec` (so live hosts do not race for each other's fresh records);
- at its start, handing off every record still waiting, whatever its age (this process's own, from
  before a restart).
So every accepted record reaches the queue while any host runs, and reaches it once.

Test-only hook (`HOLD_ENV`, never set in production): `"<point>:<path>"` makes the dispatcher stop
for good at `point` - `before` (a batch taken, nothing enqueued) or `after_enqueue` (enqueued, not
yet marked) - after creating the file `path`, so a durability test can kill the process at exactly
that moment without guessing with sleeps.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path

from app.models import RunKind
from app.services.runner.store_base import NewRun, RunRow, RunStore

log = logging.getLogger(__name__)

HOLD_ENV = "AUTO_CODE_TEST_DISPATCH_HOLD"
BATCH = 50  # runs per handoff: one SELECT, one DBOS transaction and one UPDATE each; small enough
# that an accept waiting behind a handoff (on SQLite they take turns) waits tens of ms, not hundreds


@dataclass(frozen=True, slots=True)
class Pending:
    """An accepted record not yet on the queue: what deciding its handoff needs."""

    run_id: str
    ticket_json: str
    parent_run_id: str | None = None
    kind: RunKind = "ticket"

    @classmethod
    def of(cls, record: NewRun | RunRow) -> Pending:
        return cls(record.run_id, record.ticket_json, record.parent_run_id, record.kind)


@dataclass(frozen=True, slots=True)
class Handoff:
    """One run as it goes on the queue: its workflow's arguments and its partition (None: the
    queue's only one)."""

    run_id: str
    args: tuple[object, ...]
    partition: str | None = None


# Prepare = fn(pending): each record's Handoff, in order (no write; it must not raise for one bad
# record: a run that cannot be decided is handed off to end visibly failed).
Prepare = Callable[[list[Pending]], Awaitable[list[Handoff]]]
# Enqueue = fn(handoffs): put the runs on the DBOS queue in one transaction, skipping any whose
# workflow exists (idempotent per run id).
Enqueue = Callable[[list[Handoff]], Awaitable[None]]


async def plain(batch: list[Pending]) -> list[Handoff]:
    """The Prepare with nothing to decide: the ticket is the workflow's one argument."""
    return [Handoff(p.run_id, (json.loads(p.ticket_json),)) for p in batch]


class Dispatcher:
    """`run()` as a task for the engine's lifetime; `accepted(new)` after each accepted record."""

    def __init__(self, store: RunStore, enqueue: Enqueue, *, poll_sec: float, grace_sec: float,
                 prepare: Prepare = plain, hold: str | None = None,
                 gate: asyncio.Lock | None = None) -> None:
        self.store = store
        self.gate = gate  # taken around each write (the store's write_gate on SQLite)
        self.prepare = prepare
        self.enqueue = enqueue
        self.poll_sec = poll_sec
        self.grace_sec = grace_sec
        self._hold = hold if hold is not None else os.environ.get(HOLD_ENV)
        self._fresh: list[Pending] = []  # accepted here, not handed off yet
        self._wake = asyncio.Event()
        self._flushing = asyncio.Lock()  # one flush at a time: a second waits for the batch in flight

    def accepted(self, new: NewRun) -> None:
        """A record `new` was just inserted by this process: hand it off at the next turn of the loop."""
        self._fresh.append(Pending.of(new))
        self._wake.set()

    async def flush(self) -> None:
        """Hand off now what this process accepted (a one-off process, before it exits). Returns
        once every record accepted here so far has been through a handoff, the one the loop may
        have in flight included (taken from `_fresh` and being decided: prepare can take seconds)."""
        async with self._flushing:
            while self._fresh:
                batch, self._fresh = self._fresh[:BATCH], self._fresh[BATCH:]
                await self._hand_off(batch)

    async def run(self) -> None:
        everything = True  # the first pass that succeeds takes every record left, whatever its age
        while True:
            try:
                await self.flush()
                await self._leftovers(created_before=None if everything else time.time() - self.grace_sec)
                everything = False
            except Exception:  # the database may be briefly away: the records wait for the next pass
                log.exception("dispatch_failed")
            try:
                await asyncio.wait_for(self._wake.wait(), timeout=self.poll_sec)
            except TimeoutError:
                pass
            self._wake.clear()  # what was accepted meanwhile is in `_fresh`, flushed next

    async def _leftovers(self, created_before: float | None) -> None:
        while True:
            rows = await self.store.undispatched(limit=BATCH, created_before=created_before)
            handed = await self._hand_off([Pending.of(r) for r in rows]) if rows else 0
            if len(rows) < BATCH or handed == 0:
                return

    async def _hand_off(self, batch: list[Pending]) -> int:
        await self._maybe_hold("before")
        try:
            handoffs = await self.prepare(batch)  # outside the write gate: it may read Jira
            async with self.gate or contextlib.nullcontext():
                await self.enqueue(handoffs)
        except Exception as exc:  # left unmarked: the poll hands them off later
            log.warning("dispatch_enqueue_failed", extra={"count": len(batch), "error": repr(exc)})
            return 0
        await self._maybe_hold("after_enqueue")
        async with self.gate or contextlib.nullcontext():
            await self.store.mark_enqueued([p.run_id for p in batch])
        log.debug("runs_dispatched", extra={"count": len(batch)})
        return len(batch)

    async def _maybe_hold(self, point: str) -> None:
        if not self._hold:
            return
        where, _, path = self._hold.partition(":")
        if where == point:
            log.warning("dispatch_held", extra={"point": point})
            await asyncio.to_thread(Path(path).touch)
            await asyncio.Event().wait()  # for good: the test kills the process here
