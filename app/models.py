"""Shared data shapes: the ticket a run works on, and the runs-API views.

Jira's own payload shapes are parsed in `app.intake`; everything past intake speaks `Ticket`.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, Field, field_serializer

# `waiting`: held before it starts (a spend cap; `hold_reason` says why), still active.
# `needs_routing`: ended because no single repository matches the ticket; an update starts a new run.
RunStatus = Literal["queued", "waiting", "running", "succeeded", "failed", "no_changes", "cancelled",
                    "needs_routing"]
RunKind = Literal["ticket", "ci_fix", "review_fix"]
StepStatus = Literal["running", "succeeded", "failed", "skipped", "cancelled"]
FINAL_STATUSES: frozenset[str] = frozenset(
    {"succeeded", "failed", "no_changes", "cancelled", "needs_routing"}
)


class Ticket(BaseModel):
    """One Jira ticket, already validated. `key` matches the strict key pattern; `summary` and
    `description` are untrusted text (the prompt builder delimits and sanitizes them)."""

    key: str
    summary: str = ""
    description: str = ""
    issue_type: str | None = None
    labels: list[str] = Field(default_factory=list)
    url: str | None = None
    source: str = "custom"  # system_webhook | automation | custom
    # What routing reads (app/repositories/routing.py): component names, and custom field values as
    # text (several values joined by newlines), as the delivery or Jira's REST API had them.
    components: list[str] = Field(default_factory=list)
    fields: dict[str, str] = Field(default_factory=dict)
    # The issue's comment thread as text, oldest first (read from Jira when credentials are set):
    # context for the agent, as untrusted as the description.
    comments: list[str] = Field(default_factory=list)

    @property
    def project(self) -> str:
        return self.key.rsplit("-", 1)[0]


class SubmitResult(BaseModel):
    """What intake tells Jira: a new run, or the run already queued/running for this key."""

    status: Literal["queued", "duplicate"]
    run_id: str


class StepView(BaseModel):
    name: str
    status: StepStatus
    started_at: datetime | None = None
    finished_at: datetime | None = None
    detail: dict[str, Any] = Field(default_factory=dict)

    @field_serializer("started_at", "finished_at")
    def _iso_ms(self, value: datetime | None) -> str | None:
        return iso_ms(value)


class RunView(BaseModel):
    """GET /runs/{run_id}: the contract of DESIGN.md's runs API."""

    run_id: str
    ticket: str
    status: RunStatus
    created_at: datetime
    updated_at: datetime
    branch: str | None = None
    pr_url: str | None = None
    session_id: str | None = None
    turns: int = 0
    cost_usd: float = 0.0
    error: str | None = None
    kind: RunKind = "ticket"
    pr_number: int | None = None
    parent_run_id: str | None = None
    repository: str | None = None
    hold_reason: str | None = None
    steps: list[StepView] = Field(default_factory=list)

    @field_serializer("created_at", "updated_at")
    def _iso_ms(self, value: datetime | None) -> str | None:
        return iso_ms(value)


def iso_ms(value: datetime | None) -> str | None:
    """ISO 8601 with milliseconds, as the runs-API contract says."""
    return None if value is None else value.isoformat(timespec="milliseconds")
