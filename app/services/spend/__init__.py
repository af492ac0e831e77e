"""Spend: the model's metered usage per call, run, ticket, project and day, and the caps.

The interface other parts read is `SpendLedger` (base.py; e.g. the dashboard's spend page:
`day_totals`, `project_totals`, `cap_status`); `SqlSpendLedger` (ledger.py) is it over the run
database; `SpendGuard` (guard.py) is what the pipeline uses (record, warn, hold)."""

from app.services.spend.base import (
    CallSpend,
    CapLevel,
    CapPeriod,
    CapStatus,
    DaySpend,
    SpendLedger,
    SpendTotal,
    TokenCounts,
)
from app.services.spend.caps import CapPolicy, Clock, project_of, utc_day
from app.services.spend.guard import SpendGuard, tokens_of
from app.services.spend.ledger import SqlSpendLedger

__all__ = ["CallSpend", "CapLevel", "CapPeriod", "CapPolicy", "CapStatus", "Clock", "DaySpend", "SpendGuard",
           "SpendLedger", "SpendTotal", "SqlSpendLedger", "TokenCounts", "project_of", "tokens_of", "utc_day"]
