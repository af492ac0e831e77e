"""Run records in SQL: the `RunStore` of store_base.py over SQLAlchemy Core.

The records live in the same database as DBOS (the SQLite file under WORKSPACE_DIR or the
PostgreSQL of DATABASE_URL) so every instance of a scaled-out service sees every run. Their schema
is created and migrated by `migrate.upgrade_schema` (versioned migrations under a lock).

`SqlRunStore` does the work synchronously (a few milliseconds per call); `AsyncRunStore` is the
`RunStore` async callers use: the same methods, each one worker-thread hop, so the shared DBOS
event loop never blocks.

No secret is ever stored: every text the store writes (the ticket copy, step details, log lines,
the run's error and other fields) first goes through `redact` (set by the composition root to the
outbound scanner's: app/services/outbound_scan.py). Step details are redacted string by string
before they are serialised (JSON escaping could otherwise split a value), then once more as a whole.
"""

from __future__ import annotations

import asyncio
import json
import threading
import time
import uuid
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from typing import Any, cast, overload

import sqlalchemy as sa
from dbos import DBOS
from pydantic import BaseModel
from sqlalchemy.dialects import postgresql, sqlite

from app.models import FINAL_STATUSES, RunStatus, RunView, StepStatus, StepView
from app.services.runner.migrate import upgrade_schema
from app.services.runner.store_base import (
    ACTIVE_STATUSES,
    UNSET,
    LogLine,
    RunRow,
    StepDetail,
    Unset,
)
from app.services.runner.tables import logs, runs, steps, usage

MAX_LOG_LINE = 4000  # chars; a CLI can print very long lines and the log is for humans


@overload
def _dt(epoch: float) -> datetime: ...
@overload
def _dt(epoch: float | None) -> datetime | None: ...
def _dt(epoch: float | None) -> datetime | None:
    return None if epoch is None else datetime.fromtimestamp(epoch, UTC)


def make_engine(url: str) -> sa.Engine:
    """An engine for the store: SQLite gets WAL + a busy timeout so DBOS and the store can share the
    file; PostgreSQL URLs are normalised to psycopg 3."""
    if url.startswith("sqlite"):
        engine = sa.create_engine(url, connect_args={"timeout": 30, "check_same_thread": False})

        @sa.event.listens_for(engine, "connect")
        def _pragmas(dbapi_conn: Any, _rec: Any) -> None:
            cur = dbapi_conn.cursor()
            cur.execute("PRAGMA journal_mode=WAL")
            cur.execute("PRAGMA busy_timeout=30000")
            cur.close()

        return engine
    if url.startswith("postgresql://") or url.startswith("postgres://"):
        url = "postgresql+psycopg://" + url.split("://", 1)[1]
    return sa.create_engine(url, pool_pre_ping=True, pool_size=5, max_overflow=5)


def _row(m: sa.RowMapping) -> RunRow:
    # The status column holds only RunStatus values: every write of it takes a RunStatus.
    return RunRow(
        run_id=m["run_id"], ticket=m["ticket"], status=cast(RunStatus, m["status"]),
        created_at=m["created_at"], updated_at=m["updated_at"], branch=m["branch"], pr_url=m["pr_url"],
        session_id=m["session_id"], turns=m["turns"] or 0, cost_usd=m["cost_usd"] or 0.0,
        error=m["error"], ticket_json=m["ticket_json"],
    )


def _view(row: RunRow, step_rows: Sequence[sa.RowMapping]) -> RunView:
    return RunView(
        run_id=row.run_id,
        ticket=row.ticket,
        status=row.status,
        created_at=_dt(row.created_at),
        updated_at=_dt(row.updated_at),
        branch=row.branch,
        pr_url=row.pr_url,
        session_id=row.session_id,
        turns=row.turns,
        cost_usd=round(row.cost_usd, 6),
        error=row.error,
        steps=[
            StepView(
                name=s["name"],
                status=s["status"],
                started_at=_dt(s["started_at"]),
                finished_at=_dt(s["finished_at"]),
                detail=json.loads(s["detail_json"] or "{}"),
            )
            for s in step_rows
        ],
    )


class SqlRunStore:
    """The synchronous store. One per process; `create_schema()` migrates the tables to head."""

    def __init__(self, engine: sa.Engine, redact: Callable[[str], str] | None = None) -> None:
        self.engine = engine
        # Every text written goes through this (the outbound scanner's `redact` in the service).
        self.redact: Callable[[str], str] = redact or (lambda text: text)
        # (workflow id, DBOS step id) -> agent calls recorded without a call id in this execution.
        self._calls: dict[tuple[str, int], int] = {}
        self._calls_lock = threading.Lock()

    # ----- schema / lifecycle -----
    def create_schema(self, then: Callable[[], None] | None = None) -> str:
        """Migrate the run tables to head under the schema lock (see migrate.py); the revision."""
        return upgrade_schema(self.engine, then=then)

    def dispose(self) -> None:
        self.engine.dispose()

    def _insert(self, table: sa.Table) -> Any:
        """An INSERT that can say ON CONFLICT (both dialects the store runs on have it)."""
        dialect = sqlite if self.engine.dialect.name == "sqlite" else postgresql
        return dialect.insert(table)

    # ----- redaction -----
    def _clean(self, value: Any) -> Any:
        if isinstance(value, str):
            return self.redact(value)
        if isinstance(value, dict):
            return {self._clean(k) if isinstance(k, str) else k: self._clean(v) for k, v in value.items()}
        if isinstance(value, list | tuple):
            return [self._clean(v) for v in value]
        return value

    def _detail(self, detail: StepDetail | None) -> str:
        data = detail.model_dump(mode="json") if isinstance(detail, BaseModel) else dict(detail or {})
        return self.redact(json.dumps(self._clean(data), default=lambda o: self.redact(str(o))))

    def _text(self, value: str | None) -> str | None:
        return None if value is None else self.redact(value)

    # ----- runs -----
    def create_run(self, run_id: str, ticket: str, ticket_json: str, status: RunStatus = "queued") -> bool:
        now = time.time()
        stmt = self._insert(runs).values(
            run_id=run_id, ticket=ticket, status=status, created_at=now, updated_at=now,
            turns=0, cost_usd=0.0, ticket_json=self.redact(ticket_json),
        ).on_conflict_do_nothing(index_elements=[runs.c.run_id])  # a concurrent creator won: same outcome
        with self.engine.begin() as conn:
            # RETURNING, not rowcount: psycopg reports -1 for an INSERT ... ON CONFLICT.
            return conn.execute(stmt.returning(runs.c.run_id)).first() is not None

    def update_run(
        self, run_id: str, *, status: RunStatus | Unset = UNSET, branch: str | Unset | None = UNSET,
        pr_url: str | Unset | None = UNSET, session_id: str | Unset | None = UNSET,
        error: str | Unset | None = UNSET,
    ) -> None:
        given = {"status": status, "branch": branch, "pr_url": pr_url, "session_id": session_id,
                 "error": error}
        values: dict[str, Any] = {
            k: self._text(v) for k, v in given.items() if not isinstance(v, Unset)
        }
        values["updated_at"] = time.time()
        stmt = runs.update().where(runs.c.run_id == run_id)
        if status == "running":
            stmt = stmt.where(runs.c.status.not_in(list(FINAL_STATUSES)))
        with self.engine.begin() as conn:
            conn.execute(stmt.values(**values))
        if isinstance(status, str) and status in FINAL_STATUSES:
            self._forget_calls(run_id)

    def end_run_if_active(self, run_id: str, status: RunStatus, error: str | None) -> bool:
        with self.engine.begin() as conn:
            done = conn.execute(
                runs.update()
                .where(runs.c.run_id == run_id, runs.c.status.in_(ACTIVE_STATUSES))
                .values(status=status, error=self._text(error), updated_at=time.time())
            )
        self._forget_calls(run_id)
        return done.rowcount == 1

    def add_usage(
        self, run_id: str, *, turns: int, cost_usd: float, session_id: str | None,
        call_id: str | None = None,
    ) -> None:
        call_id = call_id or self._default_call_id()
        now = time.time()
        figures = {"turns": turns, "cost_usd": cost_usd, "recorded_at": now}
        record = self._insert(usage).values(run_id=run_id, call_id=call_id, **figures).on_conflict_do_update(
            index_elements=[usage.c.run_id, usage.c.call_id], set_=figures)  # the same call again: set
        with self.engine.begin() as conn:
            conn.execute(record)
            mine = usage.c.run_id == run_id
            values: dict[str, Any] = {
                "turns": sa.select(sa.func.coalesce(sa.func.sum(usage.c.turns), 0)).where(mine)
                .scalar_subquery(),
                "cost_usd": sa.select(sa.func.coalesce(sa.func.sum(usage.c.cost_usd), 0.0)).where(mine)
                .scalar_subquery(),
                "updated_at": now,
            }
            if session_id:
                values["session_id"] = self.redact(session_id)
            conn.execute(runs.update().where(runs.c.run_id == run_id).values(**values))

    def _default_call_id(self) -> str:
        """The call's id from its place in the workflow: a DBOS step re-run after a crash makes the
        same calls in the same order, so it reproduces the ids of the execution that was cut off."""
        workflow_id, step_id = DBOS.workflow_id, DBOS.step_id
        if workflow_id is None or step_id is None:
            return f"call-{uuid.uuid4().hex}"
        with self._calls_lock:
            n = self._calls.get((workflow_id, step_id), 0) + 1
            self._calls[(workflow_id, step_id)] = n
        return f"dbos-step-{step_id}.{n}"

    def _forget_calls(self, run_id: str) -> None:
        with self._calls_lock:
            for key in [k for k in self._calls if k[0] == run_id]:
                del self._calls[key]

    def get_run_row(self, run_id: str) -> RunRow | None:
        with self.engine.connect() as conn:
            row = conn.execute(sa.select(runs).where(runs.c.run_id == run_id)).mappings().first()
        return _row(row) if row else None

    def get_run(self, run_id: str) -> RunView | None:
        row = self.get_run_row(run_id)
        if row is None:
            return None
        with self.engine.connect() as conn:
            step_rows = conn.execute(
                sa.select(steps).where(steps.c.run_id == run_id).order_by(steps.c.id)
            ).mappings().all()
        return _view(row, step_rows)

    def list_runs(
        self, *, ticket: str | None = None, status: RunStatus | None = None, limit: int = 50
    ) -> list[RunView]:
        stmt = sa.select(runs).order_by(runs.c.created_at.desc(), runs.c.run_id.desc()).limit(limit)
        if ticket:
            stmt = stmt.where(runs.c.ticket == ticket)
        if status:
            stmt = stmt.where(runs.c.status == status)
        with self.engine.connect() as conn:
            rows = conn.execute(stmt).mappings().all()
        return [_view(_row(r), []) for r in rows]

    def list_active(self, *, created_before: float | None = None) -> list[RunRow]:
        stmt = sa.select(runs).where(runs.c.status.in_(ACTIVE_STATUSES)).order_by(runs.c.created_at)
        if created_before is not None:
            stmt = stmt.where(runs.c.created_at < created_before)
        with self.engine.connect() as conn:
            return [_row(r) for r in conn.execute(stmt).mappings().all()]

    def count_by_status(self) -> dict[str, int]:
        with self.engine.connect() as conn:
            rows = conn.execute(
                sa.select(runs.c.status, sa.func.count()).group_by(runs.c.status)
            ).all()
        return {status: n for status, n in rows}

    # ----- steps -----
    def start_step(self, run_id: str, name: str, detail: StepDetail | None = None) -> None:
        values = {
            "status": "running", "started_at": time.time(), "finished_at": None,
            "detail_json": self._detail(detail),
        }
        self._write_step(run_id, name, values)

    def update_step_detail(self, run_id: str, name: str, detail: StepDetail) -> None:
        with self.engine.begin() as conn:
            conn.execute(
                steps.update()
                .where(steps.c.run_id == run_id, steps.c.name == name)
                .values(detail_json=self._detail(detail))
            )

    def finish_step(
        self, run_id: str, name: str, status: StepStatus, detail: StepDetail | None = None
    ) -> None:
        values: dict[str, Any] = {"status": status, "finished_at": time.time()}
        if detail is not None:
            values["detail_json"] = self._detail(detail)
        self._write_step(run_id, name, values)

    def _write_step(self, run_id: str, name: str, values: dict[str, Any]) -> None:
        """Set the step's row (one per run and step name), inserting it when the step never started
        (a skipped step)."""
        stmt = self._insert(steps).values(run_id=run_id, name=name, **{"detail_json": "{}", **values})
        stmt = stmt.on_conflict_do_update(index_elements=[steps.c.run_id, steps.c.name], set_=values)
        with self.engine.begin() as conn:
            conn.execute(stmt)

    def fail_running_steps(self, run_id: str, reason: str, status: StepStatus = "failed") -> None:
        with self.engine.begin() as conn:
            conn.execute(
                steps.update()
                .where(steps.c.run_id == run_id, steps.c.status == "running")
                .values(status=status, finished_at=time.time(), detail_json=self._detail({"error": reason}))
            )

    # ----- logs -----
    def add_log(self, run_id: str, message: str, level: str = "info") -> None:
        with self.engine.begin() as conn:
            conn.execute(
                logs.insert().values(
                    run_id=run_id, ts=time.time(), level=level, message=self.redact(message)[:MAX_LOG_LINE]
                )
            )

    def logs_after(self, run_id: str, after_id: int = 0, limit: int = 500) -> list[LogLine]:
        with self.engine.connect() as conn:
            rows = conn.execute(
                sa.select(logs)
                .where(logs.c.run_id == run_id, logs.c.id > after_id)
                .order_by(logs.c.id)
                .limit(limit)
            ).mappings().all()
        return [LogLine(id=r["id"], run_id=r["run_id"], ts=r["ts"], level=r["level"], message=r["message"])
                for r in rows]


class AsyncRunStore:
    """The `RunStore` for async callers: each method is `SqlRunStore`'s, in a worker thread (the
    DBOS context travels with it: `asyncio.to_thread` copies context variables)."""

    def __init__(self, store: SqlRunStore) -> None:
        self.sync = store

    @property
    def redact(self) -> Callable[[str], str]:
        return self.sync.redact

    @redact.setter
    def redact(self, fn: Callable[[str], str]) -> None:
        self.sync.redact = fn

    async def create_run(
        self, run_id: str, ticket: str, ticket_json: str, status: RunStatus = "queued"
    ) -> bool:
        return await asyncio.to_thread(self.sync.create_run, run_id, ticket, ticket_json, status)

    async def update_run(
        self, run_id: str, *, status: RunStatus | Unset = UNSET, branch: str | Unset | None = UNSET,
        pr_url: str | Unset | None = UNSET, session_id: str | Unset | None = UNSET,
        error: str | Unset | None = UNSET,
    ) -> None:
        await asyncio.to_thread(self.sync.update_run, run_id, status=status, branch=branch, pr_url=pr_url,
                                session_id=session_id, error=error)

    async def end_run_if_active(self, run_id: str, status: RunStatus, error: str | None) -> bool:
        return await asyncio.to_thread(self.sync.end_run_if_active, run_id, status, error)

    async def add_usage(
        self, run_id: str, *, turns: int, cost_usd: float, session_id: str | None,
        call_id: str | None = None,
    ) -> None:
        await asyncio.to_thread(self.sync.add_usage, run_id, turns=turns, cost_usd=cost_usd,
                                session_id=session_id, call_id=call_id)

    async def start_step(self, run_id: str, name: str, detail: StepDetail | None = None) -> None:
        await asyncio.to_thread(self.sync.start_step, run_id, name, detail)

    async def update_step_detail(self, run_id: str, name: str, detail: StepDetail) -> None:
        await asyncio.to_thread(self.sync.update_step_detail, run_id, name, detail)

    async def finish_step(
        self, run_id: str, name: str, status: StepStatus, detail: StepDetail | None = None
    ) -> None:
        await asyncio.to_thread(self.sync.finish_step, run_id, name, status, detail)

    async def fail_running_steps(self, run_id: str, reason: str, status: StepStatus = "failed") -> None:
        await asyncio.to_thread(self.sync.fail_running_steps, run_id, reason, status)

    async def add_log(self, run_id: str, message: str, level: str = "info") -> None:
        await asyncio.to_thread(self.sync.add_log, run_id, message, level)

    async def get_run_row(self, run_id: str) -> RunRow | None:
        return await asyncio.to_thread(self.sync.get_run_row, run_id)

    async def get_run(self, run_id: str) -> RunView | None:
        return await asyncio.to_thread(self.sync.get_run, run_id)

    async def list_runs(
        self, *, ticket: str | None = None, status: RunStatus | None = None, limit: int = 50
    ) -> list[RunView]:
        return await asyncio.to_thread(self.sync.list_runs, ticket=ticket, status=status, limit=limit)

    async def list_active(self, *, created_before: float | None = None) -> list[RunRow]:
        return await asyncio.to_thread(self.sync.list_active, created_before=created_before)

    async def count_by_status(self) -> dict[str, int]:
        return await asyncio.to_thread(self.sync.count_by_status)

    async def logs_after(self, run_id: str, after_id: int = 0, limit: int = 500) -> list[LogLine]:
        return await asyncio.to_thread(self.sync.logs_after, run_id, after_id, limit)


__all__ = ["MAX_LOG_LINE", "AsyncRunStore", "SqlRunStore", "make_engine"]
