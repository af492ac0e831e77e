"""`SqlSpendLedger`: the `SpendLedger` over the run database (tables `ac_spend`, `ac_spend_notices`,
migration 0005), on SQLite or PostgreSQL like the run store. Work is done in a worker thread."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite

from app.services.runner.tables import spend, spend_notices
from app.services.spend.base import CallSpend, CapLevel, CapStatus, DaySpend, SpendTotal, TokenCounts
from app.services.spend.caps import CapPolicy, Clock, project_of, utc_day

_TOKEN_COLUMNS = (("input", spend.c.input_tokens), ("output", spend.c.output_tokens),
                  ("cache_creation", spend.c.cache_creation_input_tokens),
                  ("cache_read", spend.c.cache_read_input_tokens))


def _sums() -> list[Any]:
    return [sa.func.coalesce(sa.func.sum(spend.c.cost_usd), 0.0).label("cost"),
            *(sa.func.coalesce(sa.func.sum(col), 0).label(name) for name, col in _TOKEN_COLUMNS),
            sa.func.count().label("calls")]


def _total(row: Any) -> SpendTotal:
    return SpendTotal(cost_usd=float(row.cost), calls=int(row.calls),
                      tokens=TokenCounts(**{name: int(getattr(row, name)) for name, _ in _TOKEN_COLUMNS}))


class SqlSpendLedger:
    """`policy` is read at every `cap_status` (swap it to raise a cap); `clock` dates new records
    and decides the current day and month."""

    def __init__(self, engine: sa.Engine, policy: CapPolicy | None = None, *,
                 clock: Clock = time.time) -> None:
        self.engine = engine
        self.policy = policy or CapPolicy()
        self.clock = clock

    def _insert(self, table: sa.Table) -> Any:
        return (sqlite if self.engine.dialect.name == "sqlite" else postgresql).insert(table)

    # ----- writing -----
    async def record(self, run_id: str, ticket: str, call: CallSpend) -> None:
        await asyncio.to_thread(self._record, run_id, ticket, call)

    def _record(self, run_id: str, ticket: str, call: CallSpend) -> None:
        now = self.clock()
        t = call.tokens
        figures = {"ticket": ticket, "project": project_of(ticket), "day": utc_day(now), "recorded_at": now,
                   "model": (call.model or None) and call.model[:100], "input_tokens": t.input,
                   "output_tokens": t.output, "cache_creation_input_tokens": t.cache_creation,
                   "cache_read_input_tokens": t.cache_read, "cost_usd": float(call.cost_usd)}
        stmt = self._insert(spend).values(run_id=run_id, call_id=call.call_id[:200], **figures)
        stmt = stmt.on_conflict_do_update(index_elements=[spend.c.run_id, spend.c.call_id], set_=figures)
        with self.engine.begin() as conn:
            conn.execute(stmt)

    async def claim_notice(self, status: CapStatus, level: CapLevel, run_id: str | None) -> bool:
        return await asyncio.to_thread(self._claim, status, level, run_id)

    def _claim(self, status: CapStatus, level: CapLevel, run_id: str | None) -> bool:
        stmt = self._insert(spend_notices).values(
            scope=status.scope[:120], period=status.period_key, level=level, sent_at=self.clock(),
            run_id=run_id,
        ).on_conflict_do_nothing(index_elements=[spend_notices.c.scope, spend_notices.c.period,
                                                 spend_notices.c.level])
        with self.engine.begin() as conn:  # RETURNING: psycopg reports rowcount -1 for ON CONFLICT
            return conn.execute(stmt.returning(spend_notices.c.scope)).first() is not None

    # ----- reading -----
    def _one(self, *where: Any) -> SpendTotal:
        with self.engine.connect() as conn:
            return _total(conn.execute(sa.select(*_sums()).where(*where)).one())

    async def run_total(self, run_id: str) -> SpendTotal:
        return await asyncio.to_thread(self._one, spend.c.run_id == run_id)

    async def ticket_total(self, ticket: str) -> SpendTotal:
        return await asyncio.to_thread(self._one, spend.c.ticket == ticket)

    async def project_totals(self, since_day: str, until_day: str) -> dict[str, SpendTotal]:
        def query() -> dict[str, SpendTotal]:
            stmt = (sa.select(spend.c.project, *_sums()).where(spend.c.day.between(since_day, until_day))
                    .group_by(spend.c.project).order_by(spend.c.project))
            with self.engine.connect() as conn:
                return {row.project: _total(row) for row in conn.execute(stmt)}

        return await asyncio.to_thread(query)

    async def day_totals(self, since_day: str, until_day: str, *,
                         project: str | None = None) -> list[DaySpend]:
        def query() -> list[DaySpend]:
            stmt = sa.select(spend.c.day, *_sums()).where(spend.c.day.between(since_day, until_day))
            if project is not None:
                stmt = stmt.where(spend.c.project == project)
            stmt = stmt.group_by(spend.c.day).order_by(spend.c.day)
            with self.engine.connect() as conn:
                rows = conn.execute(stmt).all()
            return [DaySpend(day=row.day, project=project, total=_total(row)) for row in rows]

        return await asyncio.to_thread(query)

    async def cap_status(self, project: str | None = None) -> list[CapStatus]:
        return await asyncio.to_thread(self._cap_status, project)

    def _cap_status(self, project: str | None) -> list[CapStatus]:
        policy, day = self.policy, utc_day(self.clock())
        month = day[:7]
        out: list[CapStatus] = []
        for scope, period, cap in policy.caps_for(project):
            where: list[Any] = [spend.c.day == day if period == "day" else spend.c.day.like(f"{month}-%")]
            if scope != "global":
                where.append(spend.c.project == scope.split(":", 1)[1])
            spent = self._one(*where).cost_usd
            out.append(CapStatus(scope=scope, period=period, period_key=day if period == "day" else month,
                                 cap_usd=cap, spent_usd=spent, warn_ratio=policy.warn_ratio))
        return out


__all__ = ["SqlSpendLedger"]
