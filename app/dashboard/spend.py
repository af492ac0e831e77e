"""The spend page's figures: model cost per UTC day and per project over the last SPEND_DAYS days,
and where each spend cap stands.

The source is the spend ledger (app/services/spend/: every agent call as the model proxy metered
it, cache tokens included) whenever the service has one (`deps.spend.ledger`); a service without
it (older composition) falls back to summing the run records' `cost_usd`, which are the same
proxy figures per run. Read-only: caps and their enforcement belong to the spend service.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from app.models import RunView

SPEND_DAYS = 30


@dataclass
class SpendLine:
    """One row: a day or a project. `runs` (run-record source) or `calls` + `tokens` (ledger)."""

    label: str
    cost_usd: float = 0.0
    runs: int | None = None
    calls: int | None = None
    tokens: int | None = None


@dataclass(frozen=True)
class CapLine:
    who: str  # "all projects" | "project PROJ"
    period: str  # daily | monthly
    period_key: str
    cap_usd: float
    spent_usd: float
    ratio: float
    level: str  # ok | warn | reached


@dataclass
class SpendReport:
    source: str  # "ledger" | "runs"
    since: str
    until: str
    days: list[SpendLine] = field(default_factory=list)
    projects: list[SpendLine] = field(default_factory=list)
    caps: list[CapLine] = field(default_factory=list)

    @property
    def total(self) -> float:
        return sum(line.cost_usd for line in self.days)


def window(now: datetime | None = None) -> tuple[str, str]:
    """(first, last) UTC day of the page's window, YYYY-MM-DD."""
    today = (now or datetime.now(UTC)).astimezone(UTC).date()
    return (today - timedelta(days=SPEND_DAYS - 1)).isoformat(), today.isoformat()


def project_of(ticket: str) -> str:
    return ticket.rsplit("-", 1)[0].upper()


def from_runs(runs: Iterable[RunView], now: datetime | None = None) -> SpendReport:
    """Sums of the run records (created in the window) per day of creation and per project."""
    since, until = window(now)
    report = SpendReport(source="runs", since=since, until=until)
    days: dict[str, SpendLine] = {}
    projects: dict[str, SpendLine] = {}
    for run in runs:
        day = run.created_at.astimezone(UTC).date().isoformat()
        if not since <= day <= until:
            continue
        for key, lines in ((day, days), (project_of(run.ticket), projects)):
            line = lines.setdefault(key, SpendLine(key, runs=0))
            line.cost_usd += run.cost_usd
            line.runs = (line.runs or 0) + 1
    report.days = sorted(days.values(), key=lambda line: line.label, reverse=True)
    report.projects = sorted(projects.values(), key=lambda line: (-line.cost_usd, line.label))
    return report


def _tokens(total: Any) -> int:
    t = total.tokens
    return int(t.input + t.output + t.cache_creation + t.cache_read)


def _cap(status: Any) -> CapLine:
    scope = str(status.scope)
    who = "all projects" if scope == "global" else f"project {scope.split(':', 1)[1]}"
    return CapLine(who=who, period="daily" if status.period == "day" else "monthly",
                   period_key=str(status.period_key), cap_usd=float(status.cap_usd),
                   spent_usd=float(status.spent_usd), ratio=float(status.ratio), level=str(status.level))


async def from_ledger(ledger: Any, now: datetime | None = None) -> SpendReport:
    """The ledger's day and project totals over the window, and every cap (global, and each
    project's that spent in the window) against its current period."""
    since, until = window(now)
    report = SpendReport(source="ledger", since=since, until=until)
    for day in reversed(await ledger.day_totals(since, until)):
        report.days.append(SpendLine(day.day, cost_usd=day.total.cost_usd, calls=day.total.calls,
                                     tokens=_tokens(day.total)))
    projects = await ledger.project_totals(since, until)
    for name, total in sorted(projects.items(), key=lambda kv: (-kv[1].cost_usd, kv[0])):
        report.projects.append(SpendLine(name, cost_usd=total.cost_usd, calls=total.calls,
                                         tokens=_tokens(total)))
    seen: set[tuple[str, str]] = set()
    for project in [None, *sorted(projects)]:
        for status in await ledger.cap_status(project):
            if (status.scope, status.period) not in seen:
                seen.add((status.scope, status.period))
                report.caps.append(_cap(status))
    return report


__all__ = ["SPEND_DAYS", "CapLine", "SpendLine", "SpendReport", "from_ledger", "from_runs", "project_of",
           "window"]
