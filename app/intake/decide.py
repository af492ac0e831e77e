"""Trigger and ignore rules (DESIGN.md, Intake → Decide). Each function returns the reason to ignore
the delivery, or None to go on; an ignored delivery is answered 202 `{"status": "ignored", "reason"}`.

- No `webhookEvent` (Automation rule or custom body): the sender already chose the ticket → start.
- `jira:issue_created` → start only when the new issue already carries the trigger (TRIGGER_LABEL
  among its labels, or its status equal to TRIGGER_STATUS), or when START_ON_ISSUE_CREATED=true.
- `jira:issue_updated` → start only when the changelog shows the trigger: status moved to
  TRIGGER_STATUS, or label TRIGGER_LABEL added (labels are space-separated in from/toString).
- Everything else (`comment_created`, `jira:issue_deleted`, worklogs, sprints, ...) → ignore.
- The service's own Jira account as the actor → ignore (our own comment/transition must not loop).
- ALLOWED_PROJECTS limits every case (`*` = all; empty = all, development only).
- ALLOWED_JIRA_ACCOUNTS (empty = anyone) limits every case: the actor's accountId (`user.accountId`;
  an Automation/custom body's `initiator.accountId` or string `initiator`) or the issue reporter's
  (`fields.reporter.accountId`) must be on the list. A delivery naming neither is ignored.
Names are compared case-insensitively (Jira treats status names and labels that way in JQL).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

from app.intake.payload import ChangeItem, Envelope
from app.models import Ticket


class Rules(Protocol):
    """The settings the rules read: `Settings` itself, or the parse pool's `IntakeRules` copy."""

    @property
    def trigger_status(self) -> str | None: ...
    @property
    def trigger_label(self) -> str | None: ...
    @property
    def start_on_issue_created(self) -> bool: ...
    @property
    def allowed_projects(self) -> Sequence[str]: ...
    @property
    def all_projects_allowed(self) -> bool: ...
    @property
    def allowed_jira_accounts(self) -> Sequence[str]: ...

CREATED = "jira:issue_created"
UPDATED = "jira:issue_updated"


def event_ignore_reason(env: Envelope, settings: Rules, own_account_id: str | None) -> str | None:
    """Rules that need only the envelope (checked before the issue is parsed, so an ignored event
    with no or partial issue data is still answered 202)."""
    if env.event is not None and env.event not in (CREATED, UPDATED):
        return f"event {env.event[:60]} does not start work"
    if own_account_id and own_account_id in env.actor_ids:
        return "event caused by the service's own Jira account"
    if settings.allowed_jira_accounts:
        allowed = set(settings.allowed_jira_accounts)
        if not (env.actor_account_ids & allowed or env.reporter_account_id in allowed):
            return "neither the actor nor the reporter is in ALLOWED_JIRA_ACCOUNTS"
    if env.event == UPDATED:
        return _update_reason(env.changes, settings)
    if env.event == CREATED:
        return _created_reason(env, settings)
    return None


def ticket_ignore_reason(ticket: Ticket, settings: Rules) -> str | None:
    """Rules that need the validated ticket."""
    if not settings.all_projects_allowed and ticket.project not in settings.allowed_projects:
        return f"project {ticket.project} is not in ALLOWED_PROJECTS"
    return None


def _created_reason(env: Envelope, settings: Rules) -> str | None:
    if settings.start_on_issue_created:
        return None
    status, label = settings.trigger_status, settings.trigger_label
    if not status and not label:
        return ("issue creation does not start work (set TRIGGER_LABEL or TRIGGER_STATUS to start on "
                "new issues that carry it, or START_ON_ISSUE_CREATED=true to start on every new issue)")
    if status and env.issue_status is not None and _same(env.issue_status, status):
        return None
    if label and any(_same(have, label) for have in env.issue_labels):
        return None
    wanted = " or ".join(w for w in (label and f"label {label}", status and f"status {status}") if w)
    return f"created issue does not carry the trigger ({wanted})"


def _update_reason(changes: tuple[ChangeItem, ...], settings: Rules) -> str | None:
    status, label = settings.trigger_status, settings.trigger_label
    if not status and not label:
        return "issue updates do not start work (set TRIGGER_STATUS or TRIGGER_LABEL)"
    if status and any(c.field == "status" and _same(c.to_string, status) for c in changes):
        return None
    if label and any(c.field == "labels" and _label_added(c, label) for c in changes):
        return None
    wanted = " or ".join(
        w for w in (status and f"status -> {status}", label and f"label {label} added") if w
    )
    return f"update does not match the trigger ({wanted})"


def _same(a: str, b: str) -> bool:
    return a.strip().casefold() == b.strip().casefold()


def _label_added(change: ChangeItem, label: str) -> bool:
    before = {x.casefold() for x in change.from_string.split()}
    after = {x.casefold() for x in change.to_string.split()}
    want = label.strip().casefold()
    return want in after and want not in before
