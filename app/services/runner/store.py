"""Run records in SQL: the `RunStore` of store_base.py over SQLAlchemy Core.

The records live in the same database as DBOS (the SQLite file under WORKSPACE_DIR or the
PostgreSQL of DATABASE_URL) so every instance of a scaled-out service sees every run. Their schema
is created and migrated by `migrate.upgrade_schema` (versioned migrations under a lock).

`SqlRunStore` does the work synchronously (a few milliseconds per call); `AsyncRunStore`
(store_async.py) is the `RunStore` async callers use. Rows become views in store_rows.py.

No secret is ever stored: every text the store writes (the ticket copy, step details, log lines,
the run's error and other fields) first goes through `redact` (set by the composition root to the
outbound scanner's: app/services/outbound_scan.py), once: a text `redact` already returned
(`RedactedText`, e.g. the engine's ticket copy) is not scanned again. Step details are redacted
string by string before they are serialised (JSON escaping could otherwise split a value), then
once more as a whole.
"""

from __future__ import annotations

import json
import threading
import time
import uuid
from collections.abc import Callable
from typing import Any

import sqlalchemy as sa
from dbos import DBOS
from pydantic import BaseModel
from sqlalchemy.dialects import postgresql, sqlite

from app.models import FINAL_STATUSES, RunKind, RunStatus, RunView, StepStatus
from app.services.runner.migrate import upgrade_schema
from app.services.runner.store_accept import AcceptQueries
from app.services.runner.store_base import (
    ACTIVE_STATUSES,
    UNSET,
    LogLine,
    RedactedText,
    RunDetail,
    RunRow,
    StepDetail,
    Unset,
)
from app.services.runner.store_rows import make_engine, run_row, run_view
from app.services.runner.tables import logs, runs, steps, usage

__all__ = ["SqlRunStore", "make_engine"]

MAX_LOG_LINE = 4000  # chars; a CLI can print very long lines and the log is for humans


class SqlRunStore(AcceptQueries):
    """The synchronous store. One per process; `create_schema()` migrates the tables to head."""

    def __init__(self, engine: sa.Engine, redact: Callable[[str], str] | None = None) -> None:
        self.engine = engine
        self.redact = redact or (lambda text: text)
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
    @property
    def redact(self) -> Callable[[str], str]:
        """What every text written goes through: the scanner's redaction (the outbound scanner's in
        the service), applied once. Its result is a `RedactedText`, which it hands back as it is:
        the engine's ticket copy (redacted through the store for the DBOS handoff) is stored by the
        accept without a second scan. A plain `str` is always scanned."""
        return self._redact_once

    @redact.setter
    def redact(self, scan: Callable[[str], str]) -> None:
        self._scan = scan

    def _redact_once(self, text: str) -> str:
        if type(text) is RedactedText:
            return text
        return RedactedText(self._scan(text))

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
    def create_run(self, run_id: str, ticket: str, ticket_json: str, status: RunStatus = "queued", *,
        kind: RunKind = "ticket", parent_run_id: str | None = None, pr_number: int | None = None,
    ) -> bool:
        now = time.time()
        stmt = self._insert(runs).values(
            run_id=run_id, ticket=ticket, status=status, created_at=now, updated_at=now,
            turns=0, cost_usd=0.0, ticket_json=self.redact(ticket_json), kind=kind,
            parent_run_id=parent_run_id, pr_number=pr_number,
        ).on_conflict_do_nothing(index_elements=[runs.c.run_id])  # a concurrent creator won: same outcome
        with self.engine.begin() as conn:
            # RETURNING, not rowcount: psycopg reports -1 for an INSERT ... ON CONFLICT.
            return conn.execute(stmt.returning(runs.c.run_id)).first() is not None

    def update_run(
        self, run_id: str, *, status: RunStatus | Unset = UNSET, branch: str | Unset | None = UNSET,
        pr_url: str | Unset | None = UNSET, session_id: str | Unset | None = UNSET,
        error: str | Unset | None = UNSET, repository: str | Unset | None = UNSET,
    ) -> None:
        given = {"status": status, "branch": branch, "pr_url": pr_url, "session_id": session_id,
                 "error": error, "repository": repository}
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
        return run_row(row) if row else None

    def get_run(self, run_id: str) -> RunView | None:
        row = self.get_run_row(run_id)
        return None if row is None else self._with_steps(row)

    def get_run_detail(self, run_id: str) -> RunDetail | None:
        row = self.get_run_row(run_id)
        return None if row is None else RunDetail(self._with_steps(row), row.ticket_json)

    def _with_steps(self, row: RunRow) -> RunView:
        with self.engine.connect() as conn:
            step_rows = conn.execute(
                sa.select(steps).where(steps.c.run_id == row.run_id).order_by(steps.c.id)
            ).mappings().all()
        return run_view(row, step_rows)

    def list_runs(
        self, *, ticket: str | None = None, status: RunStatus | None = None, limit: int = 50,
        repository: str | None = None,
    ) -> list[RunView]:
        stmt = sa.select(runs).order_by(runs.c.created_at.desc(), runs.c.run_id.desc()).limit(limit)
        if ticket:
            stmt = stmt.where(runs.c.ticket == ticket)
        if repository:
            stmt = stmt.where(runs.c.repository == repository)
        if status:
            stmt = stmt.where(runs.c.status == status)
        with self.engine.connect() as conn:
            rows = conn.execute(stmt).mappings().all()
        return [run_view(run_row(r), []) for r in rows]

    def list_active(self, *, created_before: float | None = None) -> list[RunRow]:
        stmt = sa.select(runs).where(runs.c.status.in_(ACTIVE_STATUSES)).order_by(runs.c.created_at)
        if created_before is not None:
            stmt = stmt.where(runs.c.created_at < created_before)
        with self.engine.connect() as conn:
            return [run_row(r) for r in conn.execute(stmt).mappings().all()]

    def count_by_status(self) -> dict[str, int]:
        with self.engine.connect() as conn:
            rows = conn.execute(
                sa.select(runs.c.status, sa.func.count()).group_by(runs.c.status)
            ).all()
        return {status: n for status, n in rows}

    def oldest_queued_at(self) -> float | None:
        with self.engine.connect() as conn:
            oldest = conn.execute(
                sa.select(sa.func.min(runs.c.created_at)).where(runs.c.status == "queued")
            ).scalar()
        return None if oldest is None else float(oldest)

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
