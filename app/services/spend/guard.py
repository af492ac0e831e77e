"""`SpendGuard`: what the pipeline does with spend — record each agent call, warn once at the
warning ratio of a cap, and hold a run that would start while a cap is reached.

- `record_call` writes the call to the ledger (replacing an earlier record of the same call id, so a
  step re-run or a DBOS replay never counts twice), counts its tokens and cost in this process's
  metrics, then checks the caps of the run's project: a cap at SPEND_WARN_RATIO or more is logged
  and announced (the `announce` callback: a Jira comment on the run's ticket, in the background)
  once per cap and period, across hosts (`claim_notice`).
- `hold_reason` says why a run must not start now (every reached cap, in plain words), or None.
  The pipeline asks it before the run's first real step and again every SPEND_CHECK_INTERVAL_SEC
  while the run waits; a new UTC day or month, or a raised cap (a new `policy`), lets it start.
- `set_hold` shows the hold on the run record: status `waiting` with `hold_reason`, or back to
  `running` with the reason cleared. It changes only a run that is still active.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Mapping
from typing import Any

import sqlalchemy as sa

from app.services.metrics import ServiceMetrics
from app.services.runner.tables import runs
from app.services.spend.base import CallSpend, CapStatus, SpendLedger, TokenCounts
from app.services.spend.caps import project_of

log = logging.getLogger(__name__)

Announce = Callable[[str, str, CapStatus], None]  # (run_id, ticket key, cap) -> schedules a notice


def tokens_of(usage: Mapping[str, Any] | None) -> TokenCounts:
    """Token counts of an agent call's usage (the model proxy's `_usage_of` keys)."""
    u = usage or {}

    def n(name: str) -> int:
        value = u.get(name)
        return value if isinstance(value, int) and not isinstance(value, bool) and value > 0 else 0

    return TokenCounts(input=n("input_tokens"), output=n("output_tokens"),
                       cache_creation=n("cache_creation_input_tokens"),
                       cache_read=n("cache_read_input_tokens"))


class SpendGuard:
    def __init__(self, ledger: SpendLedger, engine: sa.Engine, *, metrics: ServiceMetrics | None = None,
                 announce: Announce | None = None) -> None:
        self.ledger = ledger
        self.engine = engine
        self.metrics = metrics
        self.announce = announce

    async def record_call(self, run_id: str, ticket: str, call_id: str, cost_usd: float,
                          usage: Mapping[str, Any] | None = None) -> None:
        call = CallSpend(call_id=call_id, cost_usd=max(0.0, float(cost_usd)), tokens=tokens_of(usage),
                         model=str(usage.get("model"))[:100] if usage and usage.get("model") else None)
        await self.ledger.record(run_id, ticket, call)
        if self.metrics is not None:
            self.metrics.model_usage(call.tokens.as_dict(), call.cost_usd)
        await self.check_warnings(run_id, ticket)

    async def check_warnings(self, run_id: str, ticket: str) -> list[CapStatus]:
        """Announce every cap of the ticket's project now at the warning ratio or past it, once per
        cap and period; the caps announced by this call."""
        sent: list[CapStatus] = []
        for cap in await self.ledger.cap_status(project_of(ticket)):
            if cap.level == "ok" or not await self.ledger.claim_notice(cap, "warn", run_id):
                continue
            log.warning("spend_cap_warning", extra={
                "run_id": run_id, "scope": cap.scope, "period": cap.period_key,
                "spent_usd": round(cap.spent_usd, 4), "cap_usd": cap.cap_usd, "detail": cap.describe()})
            if self.announce is not None:
                self.announce(run_id, ticket, cap)
            sent.append(cap)
        return sent

    async def hold_reason(self, ticket: str) -> str | None:
        reached = [c for c in await self.ledger.cap_status(project_of(ticket)) if c.level == "reached"]
        if not reached:
            return None
        return "; ".join(c.describe() for c in reached) + (
            ". The run starts when a new UTC day or month begins or the cap is raised.")

    async def set_hold(self, run_id: str, reason: str | None) -> None:
        def write() -> None:
            values: dict[str, Any] = ({"status": "waiting", "hold_reason": reason} if reason is not None
                                      else {"status": "running", "hold_reason": None})
            with self.engine.begin() as conn:
                conn.execute(runs.update().where(runs.c.run_id == run_id,
                                                 runs.c.status.in_(("queued", "waiting", "running")))
                             .values(updated_at=time.time(), **values))  # the record's clock

        await asyncio.to_thread(write)


__all__ = ["Announce", "SpendGuard", "tokens_of"]
