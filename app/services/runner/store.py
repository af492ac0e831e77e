"""Run records: what the runs API, the dashboard and the CLI show about each run.

DBOS keeps the durable truth (which steps finished, what they returned); this store keeps the
operator's view of it: status, branch, PR, cost, one row per pipeline step with timings and detail,
and the run's log lines. It lives in the same database as DBOS (the SQLite file under WORKSPACE_DIR
or the PostgreSQL of DATABASE_URL) so every instance of a scaled-out service sees every run.

The methods are synchronous SQLAlchemy Core calls of a few milliseconds; async callers go through
`AsyncRunStore`, which runs them in a worker thread so the shared DBOS event loop never blocks.
Every write is idempotent per (run_id, step name) so a step re-run after a crash overwrites its own
row instead of adding a second one.

No secret is ever stored: every text the store writes (the ticket copy, step details, log lines,
the run's error and other fields) first goes through `redact` (set by the lifespan to the outbound
scanner's: app/services/outbound_scan.py). Step details are redacted string by string before
they are serialised (JSON escaping could otherwise split a value), then once more as a whole.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa

from app.models import FINAL_STATUSES, RunView, StepView

_meta = sa.MetaData()

runs = sa.Table(
    "ac_runs",
    _meta,
    sa.Column("run_id", sa.String(200), primary_key=True),
    sa.Column("ticket", sa.String(100), nullable=False, index=True),
    sa.Column("status", sa.String(20), nullable=False, index=True),
    sa.Column("created_at", sa.Float, nullable=False, index=True),  # epoch seconds (ms precision)
    sa.Column("updated_at", sa.Float, nullable=False),
    sa.Column("branch", sa.String(200)),
    sa.Column("pr_url", sa.Text),
    sa.Column("session_id", sa.String(100)),
    sa.Column("turns", sa.Integer, nullable=False, default=0),
    sa.Column("cost_usd", sa.Float, nullable=False, default=0.0),
    sa.Column("error", sa.Text),
    sa.Column("ticket_json", sa.Text, nullable=False),
)

steps = sa.Table(
    "ac_run_steps",
    _meta,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("run_id", sa.String(200), nullable=False, index=True),
    sa.Column("name", sa.String(40), nullable=False),
    sa.Column("status", sa.String(20), nullable=False),
    sa.Column("started_at", sa.Float),
    sa.Column("finished_at", sa.Float),
    sa.Column("detail_json", sa.Text, nullable=False, default="{}"),
    sa.UniqueConstraint("run_id", "name", name="uq_ac_run_steps_run_name"),
)

logs = sa.Table(
    "ac_run_logs",
    _meta,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("run_id", sa.String(200), nullable=False, index=True),
    sa.Column("ts", sa.Float, nullable=False),
    sa.Column("level", sa.String(10), nullable=False),
    sa.Column("message", sa.Text, nullable=False),
)

MAX_LOG_LINE = 4000  # chars; a CLI can print very long lines and the log is for humans


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


class RunStore:
    """Synchronous run-record store. Create once per process; `create_schema()` is idempotent."""

    def __init__(self, engine: sa.Engine, redact: Callable[[str], str] | None = None) -> None:
        self.engine = engine
        # Every text written goes through this (the outbound scanner's `redact` in the service).
        self.redact: Callable[[str], str] = redact or (lambda text: text)

    def _clean(self, value: Any) -> Any:
        if isinstance(value, str):
            return self.redact(value)
        if isinstance(value, dict):
            return {self._clean(k) if isinstance(k, str) else k: self._clean(v) for k, v in value.items()}
        if isinstance(value, list | tuple):
            return [self._clean(v) for v in value]
        return value

    def _detail(self, detail: dict[str, Any] | None) -> str:
        return self.redact(json.dumps(self._clean(detail or {}), default=lambda o: self.redact(str(o))))

    def create_schema(self) -> None:
        _meta.create_all(self.engine)

    def dispose(self) -> None:
        self.engine.dispose()

    # ----- runs -----
    def create_run(self, run_id: str, ticket: str, ticket_json: str, status: str = "queued") -> bool:
        """Insert the run unless it exists; True when this call created it."""
        now = time.time()
        with self.engine.begin() as conn:
            exists = conn.execute(sa.select(runs.c.run_id).where(runs.c.run_id == run_id)).first()
            if exists:
                return False
            try:
                conn.execute(
                    runs.insert().values(
                        run_id=run_id, ticket=ticket, status=status, created_at=now, updated_at=now,
                        turns=0, cost_usd=0.0, ticket_json=self.redact(ticket_json),
                    )
                )
            except sa.exc.IntegrityError:  # a concurrent creator won; same outcome
                return False
        return True

    def fail_running_steps(self, run_id: str, reason: str, status: str = "failed") -> None:
        """Close step rows left `running` (a step that raised, or a run cancelled mid-step)."""
        with self.engine.begin() as conn:
            conn.execute(
                steps.update()
                .where(steps.c.run_id == run_id, steps.c.status == "running")
                .values(status=status, finished_at=time.time(), detail_json=self._detail({"error": reason}))
            )

    def update_run(self, run_id: str, **fields: Any) -> None:
        """Set fields on the run (status, branch, pr_url, session_id, turns, cost_usd, error).
        A final status is never overwritten by `running` (a late writer after a cancel)."""
        fields = {k: self.redact(v) if isinstance(v, str) else v for k, v in fields.items()}
        fields["updated_at"] = time.time()
        stmt = runs.update().where(runs.c.run_id == run_id)
        if fields.get("status") == "running":
            stmt = stmt.where(runs.c.status.not_in(list(FINAL_STATUSES)))
        with self.engine.begin() as conn:
            conn.execute(stmt.values(**fields))

    def add_usage(self, run_id: str, *, turns: int, cost_usd: float, session_id: str | None) -> None:
        """Accumulate one agent call's turns and cost onto the run."""
        values: dict[str, Any] = {
            "turns": runs.c.turns + turns,
            "cost_usd": runs.c.cost_usd + cost_usd,
            "updated_at": time.time(),
        }
        if session_id:
            values["session_id"] = self.redact(session_id)
        with self.engine.begin() as conn:
            conn.execute(runs.update().where(runs.c.run_id == run_id).values(**values))

    def get_run_row(self, run_id: str) -> dict[str, Any] | None:
        with self.engine.connect() as conn:
            row = conn.execute(sa.select(runs).where(runs.c.run_id == run_id)).mappings().first()
        return dict(row) if row else None

    def get_run(self, run_id: str) -> RunView | None:
        row = self.get_run_row(run_id)
        if row is None:
            return None
        with self.engine.connect() as conn:
            step_rows = conn.execute(
                sa.select(steps).where(steps.c.run_id == run_id).order_by(steps.c.id)
            ).mappings().all()
        return _view(row, [dict(s) for s in step_rows])

    def list_runs(
        self, *, ticket: str | None = None, status: str | None = None, limit: int = 50
    ) -> list[RunView]:
        """Newest first. Steps are not loaded (GET /runs/{id} has them)."""
        stmt = sa.select(runs).order_by(runs.c.created_at.desc(), runs.c.run_id.desc()).limit(limit)
        if ticket:
            stmt = stmt.where(runs.c.ticket == ticket)
        if status:
            stmt = stmt.where(runs.c.status == status)
        with self.engine.connect() as conn:
            rows = conn.execute(stmt).mappings().all()
        return [_view(dict(r), []) for r in rows]

    def count_by_status(self) -> dict[str, int]:
        with self.engine.connect() as conn:
            rows = conn.execute(
                sa.select(runs.c.status, sa.func.count()).group_by(runs.c.status)
            ).all()
        return {status: n for status, n in rows}

    # ----- steps -----
    def start_step(self, run_id: str, name: str, detail: dict[str, Any] | None = None) -> None:
        """Mark a step running (re-running a step after a crash resets its row)."""
        values = {
            "status": "running", "started_at": time.time(), "finished_at": None,
            "detail_json": self._detail(detail),
        }
        with self.engine.begin() as conn:
            done = conn.execute(
                steps.update().where(steps.c.run_id == run_id, steps.c.name == name).values(**values)
            )
            if done.rowcount == 0:
                conn.execute(steps.insert().values(run_id=run_id, name=name, **values))

    def update_step_detail(self, run_id: str, name: str, detail: dict[str, Any]) -> None:
        with self.engine.begin() as conn:
            conn.execute(
                steps.update()
                .where(steps.c.run_id == run_id, steps.c.name == name)
                .values(detail_json=self._detail(detail))
            )

    def finish_step(
        self, run_id: str, name: str, status: str, detail: dict[str, Any] | None = None
    ) -> None:
        values: dict[str, Any] = {"status": status, "finished_at": time.time()}
        if detail is not None:
            values["detail_json"] = self._detail(detail)
        with self.engine.begin() as conn:
            done = conn.execute(
                steps.update().where(steps.c.run_id == run_id, steps.c.name == name).values(**values)
            )
            if done.rowcount == 0:  # e.g. a skipped step that never started
                values.setdefault("detail_json", "{}")
                conn.execute(steps.insert().values(run_id=run_id, name=name, **values))

    # ----- logs -----
    def add_log(self, run_id: str, message: str, level: str = "info") -> None:
        with self.engine.begin() as conn:
            conn.execute(
                logs.insert().values(
                    run_id=run_id, ts=time.time(), level=level, message=self.redact(message)[:MAX_LOG_LINE]
                )
            )

    def logs_after(self, run_id: str, after_id: int = 0, limit: int = 500) -> list[dict[str, Any]]:
        with self.engine.connect() as conn:
            rows = conn.execute(
                sa.select(logs)
                .where(logs.c.run_id == run_id, logs.c.id > after_id)
                .order_by(logs.c.id)
                .limit(limit)
            ).mappings().all()
        return [dict(r) for r in rows]


def _view(row: dict[str, Any], step_rows: list[dict[str, Any]]) -> RunView:
    return RunView(
        run_id=row["run_id"],
        ticket=row["ticket"],
        status=row["status"],
        created_at=_dt(row["created_at"]),
        updated_at=_dt(row["updated_at"]),
        branch=row["branch"],
        pr_url=row["pr_url"],
        session_id=row["session_id"],
        turns=row["turns"] or 0,
        cost_usd=round(row["cost_usd"] or 0.0, 6),
        error=row["error"],
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


class AsyncRunStore:
    """The same operations, off the event loop (one worker-thread hop per call)."""

    def __init__(self, store: RunStore) -> None:
        self.sync = store

    def __getattr__(self, name: str) -> Any:
        fn = getattr(self.sync, name)

        async def call(*args: Any, **kwargs: Any) -> Any:
            return await asyncio.to_thread(fn, *args, **kwargs)

        return call
