"""Two intake checks about what a delivery's ticket is worth.

- `require_ticket_text`: a delivery with no summary and no description (an Automation rule that
  sends only `{{issue.key}}`) is only workable when the run can read the issue from Jira (Jira
  credentials set: the run's `start` step reads it). Without them it is refused with a 422 saying
  so, instead of starting a run on an empty ticket.
- `awaiting_routing`: the ticket's latest run ended `needs_routing` (reroute.py).
"""

from __future__ import annotations

from typing import Protocol

from app.errors import Unprocessable
from app.models import RunView, Ticket


class _Runs(Protocol):
    async def list_runs(self, *, ticket: str | None = None, limit: int = 50) -> list[RunView]: ...


def require_ticket_text(ticket: Ticket, *, jira_readable: bool) -> None:
    if ticket.summary.strip() or ticket.description.strip() or jira_readable:
        return
    raise Unprocessable(
        f"the delivery for {ticket.key} has no summary and no description, and the service cannot "
        "read the issue from Jira (JIRA_BASE_URL, JIRA_EMAIL and JIRA_API_TOKEN are not set): send "
        "the issue's fields in the body (Automation: 'Issue data'), or set the Jira credentials",
        code="empty_ticket")


async def awaiting_routing(runs: _Runs, ticket_key: str) -> bool:
    latest = await runs.list_runs(ticket=ticket_key, limit=1)
    return bool(latest) and latest[0].status == "needs_routing"


__all__ = ["awaiting_routing", "require_ticket_text"]
