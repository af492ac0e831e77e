"""Rows to views, and the SQLAlchemy engine the run store uses (split out of store.py).

Timestamps are stored as epoch seconds (ms precision) and shown as aware UTC datetimes.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any, cast, overload

import sqlalchemy as sa

from app.models import RunKind, RunStatus, RunView, StepView
from app.services.runner.store_base import RunRow


@overload
def dt(epoch: float) -> datetime: ...
@overload
def dt(epoch: float | None) -> datetime | None: ...
def dt(epoch: float | None) -> datetime | None:
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


def run_row(m: sa.RowMapping) -> RunRow:
    # The status column holds only RunStatus values: every write of it takes a RunStatus.
    return RunRow(
        run_id=m["run_id"], ticket=m["ticket"], status=cast(RunStatus, m["status"]),
        created_at=m["created_at"], updated_at=m["updated_at"], branch=m["branch"], pr_url=m["pr_url"],
        session_id=m["session_id"], turns=m["turns"] or 0, cost_usd=m["cost_usd"] or 0.0,
        error=m["error"], ticket_json=m["ticket_json"], kind=cast(RunKind, m["kind"] or "ticket"),
        pr_number=m["pr_number"], parent_run_id=m["parent_run_id"], repository=m["repository"],
        hold_reason=m["hold_reason"], dedup_key=m["dedup_key"], enqueued_at=m["enqueued_at"],
    )


def run_view(row: RunRow, step_rows: Sequence[sa.RowMapping]) -> RunView:
    return RunView(
        run_id=row.run_id,
        ticket=row.ticket,
        status=row.status,
        created_at=dt(row.created_at),
        updated_at=dt(row.updated_at),
        branch=row.branch,
        pr_url=row.pr_url,
        session_id=row.session_id,
        turns=row.turns,
        cost_usd=round(row.cost_usd, 6),
        error=row.error,
        kind=row.kind,
        pr_number=row.pr_number,
        parent_run_id=row.parent_run_id,
        repository=row.repository,
        hold_reason=row.hold_reason,
        steps=[
            StepView(
                name=s["name"],
                status=s["status"],
                started_at=dt(s["started_at"]),
                finished_at=dt(s["finished_at"]),
                detail=json.loads(s["detail_json"] or "{}"),
            )
            for s in step_rows
        ],
    )
