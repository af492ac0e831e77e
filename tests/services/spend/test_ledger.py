"""The spend ledger on SQLite and PostgreSQL: each call recorded once by (run, call id) with its
token kinds, sums per run, ticket, project and UTC day, cap status per period, and notices claimed
once."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
import sqlalchemy as sa

from app.services.runner.migrate import upgrade_schema
from app.services.runner.store import make_engine
from app.services.spend import CallSpend, CapPolicy, SqlSpendLedger, TokenCounts


class Clock:
    def __init__(self, when: str) -> None:
        self.now = datetime.fromisoformat(when).replace(tzinfo=UTC).timestamp()

    def __call__(self) -> float:
        return self.now

    def set(self, when: str) -> None:
        self.now = datetime.fromisoformat(when).replace(tzinfo=UTC).timestamp()


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def engine(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[sa.Engine]:
    url = request.getfixturevalue("pg_database") if request.param == "postgres" else (
        f"sqlite:///{tmp_path / 'runs.sqlite'}")
    eng = make_engine(url)
    upgrade_schema(eng)
    try:
        yield eng
    finally:
        eng.dispose()


def call(call_id: str, cost: float, **tokens: int) -> CallSpend:
    return CallSpend(call_id=call_id, cost_usd=cost, tokens=TokenCounts(**tokens), model="claude-sonnet-4-5")


def test_a_call_recorded_again_replaces_itself_and_kinds_are_kept(engine: sa.Engine) -> None:
    clock = Clock("2026-12-01T10:00:00")
    ledger = SqlSpendLedger(engine, clock=clock)

    async def go() -> None:
        await ledger.record("PROJ-1:a", "PROJ-1", call("implement", 0.30, input=100, output=50,
                                                       cache_creation=1000, cache_read=4000))
        # The step re-ran after a crash: the same call id, the figures of the new attempt.
        await ledger.record("PROJ-1:a", "PROJ-1", call("implement", 0.40, input=120, output=60,
                                                       cache_creation=1000, cache_read=5000))
        await ledger.record("PROJ-1:a", "PROJ-1", call("lint:fix:1", 0.10, input=10, output=5))
        await ledger.record("PROJ-1:b", "PROJ-1", call("implement", 1.00, output=7))
        await ledger.record("OPS-3:c", "OPS-3", call("implement", 2.00, input=1))
        clock.set("2026-12-02T00:00:01")
        await ledger.record("OPS-3:d", "OPS-3", call("implement", 0.5, input=2))

        run = await ledger.run_total("PROJ-1:a")
        assert run.calls == 2 and run.cost_usd == pytest.approx(0.50)
        assert run.tokens.as_dict() == {"input": 130, "output": 65, "cache_creation": 1000,
                                        "cache_read": 5000}
        assert (await ledger.ticket_total("PROJ-1")).cost_usd == pytest.approx(1.50)
        projects = await ledger.project_totals("2026-12-01", "2026-12-31")
        assert {k: round(v.cost_usd, 6) for k, v in projects.items()} == {"OPS": 2.5, "PROJ": 1.5}
        days = await ledger.day_totals("2026-11-30", "2026-12-02")
        assert [(d.day, round(d.total.cost_usd, 6)) for d in days] == [("2026-12-01", 3.5),
                                                                       ("2026-12-02", 0.5)]
        ops = await ledger.day_totals("2026-12-01", "2026-12-01", project="OPS")
        assert [(d.day, d.total.cost_usd) for d in ops] == [("2026-12-01", 2.0)]

    asyncio.run(go())


def test_cap_status_sums_the_current_period_and_notices_are_claimed_once(engine: sa.Engine) -> None:
    clock = Clock("2026-12-01T23:00:00")
    policy = CapPolicy(daily_usd=2.0, monthly_usd=10.0, project_daily_usd={"PROJ": 1.0}, warn_ratio=0.8)
    ledger = SqlSpendLedger(engine, policy, clock=clock)

    async def go() -> None:
        await ledger.record("PROJ-1:a", "PROJ-1", call("implement", 0.85))
        await ledger.record("OPS-1:a", "OPS-1", call("implement", 0.70))
        status = {(s.scope, s.period): s for s in await ledger.cap_status("PROJ")}
        assert set(status) == {("global", "day"), ("global", "month"), ("project:PROJ", "day")}
        assert status["project:PROJ", "day"].level == "warn"  # 0.85 of 1.00
        assert status["global", "day"].level == "ok"  # 1.55 of 2.00: under 80%
        assert status["global", "day"].spent_usd == pytest.approx(1.55)
        assert [s.scope for s in await ledger.cap_status("OPS")] == ["global", "global"]
        warn = status["project:PROJ", "day"]
        assert await ledger.claim_notice(warn, "warn", "PROJ-1:a") is True
        assert await ledger.claim_notice(warn, "warn", "PROJ-1:b") is False  # once per cap and day
        clock.set("2026-12-02T00:30:00")  # a new UTC day: the daily sums start again, the month goes on
        status = {(s.scope, s.period): s for s in await ledger.cap_status("PROJ")}
        assert status["project:PROJ", "day"].spent_usd == 0.0
        assert status["global", "month"].spent_usd == pytest.approx(1.55)
        assert await ledger.claim_notice(status["project:PROJ", "day"], "warn", None) is True

    asyncio.run(go())
