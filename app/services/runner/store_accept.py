"""The run store's intake and handoff queries (a mixin of `SqlRunStore`, split out of store.py).

`accept_run` is the durable accept of issue 10: one INSERT whose dedup is the database's (the partial
unique index `ux_ac_runs_active_dedup_key` over the active statuses, migration 0004); `accept_runs`
does several in one transaction for the async store's group commit (store_async.py). The
dispatcher (dispatch.py) then finds records not yet handed to DBOS (`undispatched`, over the partial
index `ix_ac_runs_undispatched`) and marks them (`mark_enqueued`); the workflow's first step moves
the record to `running` (`start_run`).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import sqlalchemy as sa

from app.services.runner.store_base import ACTIVE_STATUSES, NewRun, RunRow
from app.services.runner.store_rows import run_row
from app.services.runner.tables import runs

# How often `accept_run` tries again when the run holding the key ended between its INSERT and its
# SELECT (each try is a new insert that usually succeeds; losing 5 races in a row needs 5 new runs
# of the same key to start and end within milliseconds).
ACCEPT_TRIES = 5


class AcceptQueries:
    """Needs the `SqlRunStore` attributes below."""

    engine: sa.Engine
    redact: Callable[[str], str]

    def _insert(self, table: sa.Table) -> Any:  # pragma: no cover - SqlRunStore's
        raise NotImplementedError

    def accept_run(self, new: NewRun) -> str:
        return self.accept_runs([new])[0]

    def accept_runs(self, news: list[NewRun]) -> list[str]:
        """`accept_run` for several runs in ONE transaction (one commit, one fsync: the group commit
        of `AcceptBatcher`); the holder's run id for each, in order. Inserted in dedup-key order, so
        two hosts' batches take the index's row locks in the same order and cannot deadlock."""
        holders: dict[int, str] = {}
        with self.engine.begin() as conn:
            for i in sorted(range(len(news)), key=lambda n: news[n].dedup_key):
                holders[i] = self._accept_one(conn, news[i])
        return [holders[i] for i in range(len(news))]

    def _accept_one(self, conn: sa.Connection, new: NewRun) -> str:
        values = {
            "run_id": new.run_id, "ticket": new.ticket, "status": "queued", "turns": 0, "cost_usd": 0.0,
            "ticket_json": self.redact(new.ticket_json), "dedup_key": new.dedup_key, "kind": new.kind,
            "parent_run_id": new.parent_run_id, "pr_number": new.pr_number,
        }
        holder = sa.select(runs.c.run_id).where(runs.c.dedup_key == new.dedup_key,
                                                runs.c.status.in_(ACTIVE_STATUSES))
        for _ in range(ACCEPT_TRIES):
            now = time.time()
            # No conflict target: the only constraint a fresh uuid run id can meet is the dedup index.
            stmt = (self._insert(runs).values(created_at=now, updated_at=now, **values)
                    .on_conflict_do_nothing().returning(runs.c.run_id))
            if conn.execute(stmt).first() is not None:
                return new.run_id
            # Read committed (PostgreSQL): the holder may have ended since; then the insert is retried.
            existing = conn.execute(holder).scalar()
            if existing is not None:
                return str(existing)
        raise RuntimeError(f"dedup key {new.dedup_key!r}: {ACCEPT_TRIES} runs held and released it "
                           "between an insert and the look-up")

    def start_run(self, run_id: str) -> bool:
        with self.engine.begin() as conn:
            done = conn.execute(
                runs.update().where(runs.c.run_id == run_id, runs.c.status.in_(ACTIVE_STATUSES))
                .values(status="running", updated_at=time.time())
            )
        return done.rowcount == 1

    def undispatched(self, *, limit: int, created_before: float | None = None) -> list[RunRow]:
        # The WHERE is the partial index's own predicate, so the planner can use it.
        stmt = (sa.select(runs).where(runs.c.enqueued_at.is_(None), runs.c.status == "queued")
                .order_by(runs.c.created_at).limit(limit))
        if created_before is not None:
            stmt = stmt.where(runs.c.created_at < created_before)
        with self.engine.connect() as conn:
            return [run_row(r) for r in conn.execute(stmt).mappings().all()]

    def mark_enqueued(self, run_ids: list[str]) -> None:
        if not run_ids:
            return
        with self.engine.begin() as conn:
            conn.execute(runs.update().where(runs.c.run_id.in_(run_ids), runs.c.enqueued_at.is_(None))
                         .values(enqueued_at=time.time()))
