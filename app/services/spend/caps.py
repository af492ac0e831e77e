"""The spend caps as configured (SPEND_CAP_DAILY_USD, SPEND_CAP_MONTHLY_USD, the per-project
SPEND_PROJECT_DAILY_CAPS_USD / SPEND_PROJECT_MONTHLY_CAPS_USD and SPEND_WARN_RATIO), and the UTC
periods they are summed over."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime

from app.config import Settings
from app.services.spend.base import CapPeriod

Clock = Callable[[], float]  # epoch seconds (time.time); tests pass their own


def utc_day(epoch: float) -> str:
    return datetime.fromtimestamp(epoch, UTC).strftime("%Y-%m-%d")


def project_of(ticket: str) -> str:
    """A ticket key's project (`PROJ-12` -> `PROJ`); keys are validated at intake."""
    return ticket.rsplit("-", 1)[0].upper()


@dataclass(frozen=True)
class CapPolicy:
    """USD caps; None / absent = no cap. Replace the guard's policy to raise a cap at run time."""

    daily_usd: float | None = None
    monthly_usd: float | None = None
    project_daily_usd: Mapping[str, float] = field(default_factory=dict)
    project_monthly_usd: Mapping[str, float] = field(default_factory=dict)
    warn_ratio: float = 0.8

    @classmethod
    def from_settings(cls, s: Settings) -> CapPolicy:
        return cls(daily_usd=s.spend_cap_daily_usd, monthly_usd=s.spend_cap_monthly_usd,
                   project_daily_usd=dict(s.spend_project_daily_caps_usd),
                   project_monthly_usd=dict(s.spend_project_monthly_caps_usd),
                   warn_ratio=s.spend_warn_ratio)

    @property
    def any(self) -> bool:
        return bool(self.daily_usd or self.monthly_usd or self.project_daily_usd or self.project_monthly_usd)

    def caps_for(self, project: str | None) -> list[tuple[str, CapPeriod, float]]:
        """(scope, period, cap) of every cap that applies to a run of `project`."""
        caps: list[tuple[str, CapPeriod, float]] = []
        if self.daily_usd:
            caps.append(("global", "day", self.daily_usd))
        if self.monthly_usd:
            caps.append(("global", "month", self.monthly_usd))
        if project:
            if cap := self.project_daily_usd.get(project):
                caps.append((f"project:{project}", "day", cap))
            if cap := self.project_monthly_usd.get(project):
                caps.append((f"project:{project}", "month", cap))
        return caps


__all__ = ["CapPolicy", "Clock", "project_of", "utc_day"]
