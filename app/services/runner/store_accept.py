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
        of `AcceptBatcher`) and two statements: an INSERT ... ON CONFLICT DO NOTHING of every row,
        then one look-up of the holders of the keys it skipped. The holder's run id for each, in
        order. Rows go in dedup-key order (the first delivery of a key first), so two hosts' batches
        take the index's locks in the same order and cannot deadlock.

        The INSERT is one statement executed with the rows as its parameters: SQLAlchemy sends them
        as multi-row VALUES ("insertmanyvalues", in parameter order) but compiles the statement once
        and caches it. A `.values([...])` statement is compiled anew for every batch (SQLAlchemy
        does not cache multi-values), which was most of this accept's CPU."""
        if not news:
            return []
        now = time.time()
        ordered = sorted(news, key=lambda new: new.dedup_key)  # stable: arrival order within a key
        with self.engine.begin() as conn:
            stmt = self._insert(runs).on_conflict_do_nothing().returning(runs.c.run_id)
            inserted = set(conn.execute(stmt, [self._values(new, now) for new in ordered]).scalars())
            skipped = {new.dedup_key for new in news if new.run_id not in inserted}
            holders: dict[str, str] = {}
            if skipped:
                found = conn.execute(sa.select(runs.c.dedup_key, runs.c.run_id).where(
                    runs.c.dedup_key.in_(skipped), runs.c.status.in_(ACTIVE_STATUSES)))
                holders = {str(key): str(run_id) for key, run_id in found}
            out: list[str] = []
            for new in news:
                if new.run_id in inserted:
                    out.append(new.run_id)
                elif new.dedup_key in holders:
                    out.append(holders[new.dedup_key])
                else:  # its holder ended between the two statements (read committed): try it again
                    out.append(self._accept_one(conn, new))
        return out

    def _values(self, new: NewRun, now: float) -> dict[str, object]:
        return {
            "run_id": new.run_id, "ticket": new.ticket, "status": "queued", "turns": 0, "cost_usd": 0.0,
            "ticket_json": self.redact(new.ticket_json), "dedup_key": new.dedup_key, "kind": new.kind,
            "parent_run_id": new.parent_run_id, "pr_number": new.pr_number, "created_at": now,
            "updated_at": now,
        }

    def _accept_one(self, conn: sa.Connection, new: NewRun) -> str:
        holder = sa.select(runs.c.run_id).where(runs.c.dedup_key == new.dedup_key,
                                                runs.c.status.in_(ACTIVE_STATUSES))
        for _ in range(ACCEPT_TRIES):
            # No conflict target: the only constraint a fresh uuid run id can meet is the dedup index.
            stmt = (self._insert(runs).values(self._values(new, time.time()))
                    .on_conflict_do_nothing().returning(runs.c.run_id))
            if conn.execute(stmt).first() is not None:
                return new.run_id
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
