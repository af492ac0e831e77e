"""The spend page's figures: model cost per day (UTC) and per project, summed over the run
records' `cost_usd` (the model proxy's metering of each run's calls), newest day first.

This is read-only arithmetic over the run store; caps and their enforcement belong to the spend
service, not to the dashboard.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC

from app.models import RunView


@dataclass
class SpendLine:
    label: str
    runs: int = 0
    turns: int = 0
    cost_usd: float = 0.0

    def add(self, run: RunView) -> None:
        self.runs += 1
        self.turns += run.turns
        self.cost_usd += run.cost_usd


@dataclass
class SpendReport:
    days: list[SpendLine] = field(default_factory=list)
    projects: list[SpendLine] = field(default_factory=list)
    total: SpendLine = field(default_factory=lambda: SpendLine("total"))


def project_of(ticket: str) -> str:
    return ticket.rsplit("-", 1)[0]


def spend_report(runs: Iterable[RunView]) -> SpendReport:
    days: dict[str, SpendLine] = {}
    projects: dict[str, SpendLine] = {}
    report = SpendReport()
    for run in runs:
        day = run.created_at.astimezone(UTC).date().isoformat()
        days.setdefault(day, SpendLine(day)).add(run)
        project = project_of(run.ticket)
        projects.setdefault(project, SpendLine(project)).add(run)
        report.total.add(run)
    report.days = sorted(days.values(), key=lambda line: line.label, reverse=True)
    report.projects = sorted(projects.values(), key=lambda line: (-line.cost_usd, line.label))
    return report


__all__ = ["SpendLine", "SpendReport", "project_of", "spend_report"]
