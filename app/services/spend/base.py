"""The spend interface: what the model cost, per agent call, run, ticket, project and day, and where
each spend cap stands. Read by the pipeline (caps), the dashboard and the CLI (spend pages).

Figures come from the model proxy's metering of each upstream answer (app/services/model_proxy/:
the usage the Messages API reports, cache writes and reads included, priced by pricing.py), never
from the CLI's own estimate. Days and months are UTC, of the service's clock (injectable, so tests
move it instead of sleeping).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal, Protocol

CapPeriod = Literal["day", "month"]
CapLevel = Literal["ok", "warn", "reached"]


@dataclass(frozen=True)
class TokenCounts:
    """Tokens by kind. `cache_creation`: prompt-cache writes; `cache_read`: cache hits."""

    input: int = 0
    output: int = 0
    cache_creation: int = 0
    cache_read: int = 0

    def as_dict(self) -> dict[str, int]:
        return {"input": self.input, "output": self.output, "cache_creation": self.cache_creation,
                "cache_read": self.cache_read}


@dataclass(frozen=True)
class CallSpend:
    """One agent call as metered: recorded once per (run, call_id); recording it again replaces it."""

    call_id: str
    cost_usd: float
    tokens: TokenCounts = field(default_factory=TokenCounts)
    model: str | None = None


@dataclass(frozen=True)
class SpendTotal:
    """A sum over calls."""

    cost_usd: float = 0.0
    tokens: TokenCounts = field(default_factory=TokenCounts)
    calls: int = 0


@dataclass(frozen=True)
class DaySpend:
    """One UTC day's spend (`day` = YYYY-MM-DD), for one project or (project None) all of them."""

    day: str
    project: str | None
    total: SpendTotal


@dataclass(frozen=True)
class CapStatus:
    """One cap against its period's spend. `scope`: `global` or `project:<KEY>`; `period_key`: the
    UTC day (YYYY-MM-DD) or month (YYYY-MM) the spend is summed over."""

    scope: str
    period: CapPeriod
    period_key: str
    cap_usd: float
    spent_usd: float
    warn_ratio: float = 0.8

    @property
    def ratio(self) -> float:
        return self.spent_usd / self.cap_usd if self.cap_usd > 0 else 0.0

    @property
    def level(self) -> CapLevel:
        if self.spent_usd >= self.cap_usd:
            return "reached"
        return "warn" if self.ratio >= self.warn_ratio else "ok"

    def describe(self) -> str:
        """Plain words for logs, the run's hold reason and Jira (no ticket text in it)."""
        who = "all projects" if self.scope == "global" else f"project {self.scope.split(':', 1)[1]}"
        span = "daily" if self.period == "day" else "monthly"
        return (f"{span} spend cap of ${self.cap_usd:.2f} for {who}: ${self.spent_usd:.2f} spent "
                f"({self.ratio:.0%}) in {self.period_key} (UTC)")


class SpendLedger(Protocol):
    """The recorded spend. Every method is a few milliseconds of database work done off the event
    loop; errors are the database's (SQLAlchemy), unchanged."""

    async def record(self, run_id: str, ticket: str, call: CallSpend) -> None:
        """Record one agent call of the run (at the ledger clock's time and UTC day). The same
        (run_id, call.call_id) again replaces the earlier figures: a step re-run after a crash, or a
        DBOS replay, never counts a call twice."""
        ...

    async def run_total(self, run_id: str) -> SpendTotal:
        """What the run's calls cost (zero when none were recorded)."""
        ...

    async def ticket_total(self, ticket: str) -> SpendTotal:
        """What every run of the ticket cost."""
        ...

    async def project_totals(self, since_day: str, until_day: str) -> dict[str, SpendTotal]:
        """Spend per project over the UTC days `since_day`..`until_day` (inclusive, YYYY-MM-DD)."""
        ...

    async def day_totals(self, since_day: str, until_day: str, *,
                         project: str | None = None) -> list[DaySpend]:
        """Spend per UTC day over `since_day`..`until_day` (inclusive), oldest first; only days with
        spend. `project` None: all projects together."""
        ...

    async def cap_status(self, project: str | None = None) -> list[CapStatus]:
        """Every configured cap that applies to `project` (global caps always; None: global only),
        with the spend of its current period at the ledger clock's now."""
        ...

    async def claim_notice(self, status: CapStatus, level: CapLevel, run_id: str | None) -> bool:
        """True exactly once per (scope, period_key, level), across processes and hosts: the caller
        that gets True sends the notice (log line, Jira comment)."""
        ...


__all__ = ["CallSpend", "CapLevel", "CapPeriod", "CapStatus", "DaySpend", "SpendLedger", "SpendTotal",
           "TokenCounts"]
