"""Group commit of intake's accepts: deliveries that arrive while one commit is in flight share the
next one.

Each `accept(new)` waits for exactly one durable write - the transaction that inserts its record - but
on a busy service that transaction carries every record that arrived meanwhile (`SqlRunStore.
accept_runs`), so a burst costs one commit (one fsync on SQLite, one WAL flush on PostgreSQL) per
batch instead of one per delivery, and inserts do not queue on SQLite's single write lock. A
delivery alone is committed at once: batches form only while a commit is under way.

On SQLite, `gate` (the store's `write_gate`, shared with the dispatcher's handoff) keeps this
process's own writers from meeting on the database's single write lock: a writer that finds it
taken sleeps in SQLite's busy handler (steps of up to 100 ms), which is most of a burst's p99.
"""

from __future__ import annotations

import asyncio
import contextlib

from app.services.runner.store import SqlRunStore
from app.services.runner.store_base import NewRun

MAX_BATCH = 256  # records per transaction


class AcceptBatcher:
    """One per process (on the event loop that intake runs on)."""

    def __init__(self, store: SqlRunStore, gate: asyncio.Lock | None = None) -> None:
        self.store = store
        self.gate = gate
        self._pending: list[tuple[NewRun, asyncio.Future[str]]] = []
        self._writer: asyncio.Task[None] | None = None

    async def accept(self, new: NewRun) -> str:
        """`RunStore.accept_run`: the id of the run holding `new.dedup_key` once committed."""
        future: asyncio.Future[str] = asyncio.get_running_loop().create_future()
        self._pending.append((new, future))
        if self._writer is None or self._writer.done():
            self._writer = asyncio.create_task(self._write())
        return await future

    async def _write(self) -> None:
        while self._pending:
            batch, self._pending = self._pending[:MAX_BATCH], self._pending[MAX_BATCH:]
            try:
                async with self.gate or contextlib.nullcontext():
                    holders = await asyncio.to_thread(self.store.accept_runs, [new for new, _ in batch])
            except Exception as exc:  # the whole transaction failed: every delivery in it gets the error
                for _, future in batch:
                    if not future.done():
                        future.set_exception(exc)
                continue
            for (_, future), holder in zip(batch, holders, strict=True):
                if not future.done():
                    future.set_result(holder)
