"""The update that routes a ticket: a `jira:issue_updated` that sets what routing reads starts work
again for a ticket whose last run ended `needs_routing`.

A ticket no repository (or several) took ends `needs_routing` with a Jira comment saying to set a
component or a label. The system webhook's update that follows shows the change in its changelog
(`components`, `labels`, or a custom field) but usually not the trigger (status/label) the rules
wait for, so it would be ignored. Here: when the changelog touches a routing field and nothing but
the missing trigger stops it (own account, allowed accounts and projects still apply), the parse
keeps the ticket as a `RoutingUpdate`; the route starts work only if the ticket's latest run is
`needs_routing`, else the delivery stays ignored for its original reason. Routing itself happens
when the run starts, as always.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

from app.intake.decide import UPDATED, Rules, event_ignore_reason
from app.intake.payload import ChangeItem, Envelope
from app.models import Ticket


@dataclass(frozen=True)
class RoutingUpdate:
    """An update that starts work only for a ticket waiting to be routed (pickles: module level)."""

    ticket: Ticket
    reason: str  # why it is ignored otherwise


def touches_routing(changes: tuple[ChangeItem, ...]) -> bool:
    """The changelog sets a component, a label or a custom field (by its fieldId)."""
    return any(c.field in ("components", "component", "labels") or c.field.startswith("customfield_")
               for c in changes)


def may_reroute(envelope: Envelope, rules: Rules, own_account: str | None) -> bool:
    """An update touching routing whose only reason to be ignored is the missing trigger."""
    if envelope.event != UPDATED or not touches_routing(envelope.changes):
        return False
    # The same rules as for a delivery that already chose its ticket (own account, accounts).
    return event_ignore_reason(replace(envelope, event=None), rules, own_account) is None


__all__ = ["RoutingUpdate", "may_reroute", "touches_routing"]
