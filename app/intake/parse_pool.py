"""Where a delivery's body is parsed: inline when small, in a separate process when big.

Why a process: the C JSON decoder holds the GIL for the whole decode, so a worker thread does not
free the event loop (measured: a hostile 1 MB body stalled the loop 65 ms from a thread, 73 ms
inline), and every other request and the runs sharing the loop wait. A body of at most
`INLINE_MAX_BYTES` decodes in about a millisecond, so it is parsed inline, where a process hop would
cost more than it saves; a bigger one goes to one long-lived worker process, and only the small,
capped result (the envelope and the ticket, or the reason to ignore) comes back.

The worker is started on the first big body (a fresh interpreter, `spawn`: it holds none of the
service's memory, and the secrets are already gone from the environment it inherits), and stopped
with the app. The rules it applies travel as `IntakeRules`, a plain copy of the settings they read.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import multiprocessing
import threading
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from app.intake.decide import event_ignore_reason
from app.intake.limits import FieldLimits
from app.intake.payload import Envelope, parse_json, parse_ticket, read_envelope
from app.intake.reroute import RoutingUpdate, may_reroute
from app.models import Ticket

if TYPE_CHECKING:  # the worker process needs only the IntakeRules copy, not the settings module
    from app.config import Settings

INLINE_MAX_BYTES = 32 * 1024


@dataclass(frozen=True)
class IntakeRules:
    """The settings the event rules and the ticket parse read (no secret among them)."""

    trigger_status: str | None
    trigger_label: str | None
    start_on_issue_created: bool
    allowed_projects: tuple[str, ...]
    all_projects_allowed: bool
    allowed_jira_accounts: tuple[str, ...]
    max_description_chars: int
    jira_base_url: str | None

    @classmethod
    def from_settings(cls, settings: Settings) -> IntakeRules:
        return cls(
            trigger_status=settings.trigger_status, trigger_label=settings.trigger_label,
            start_on_issue_created=settings.start_on_issue_created,
            allowed_projects=tuple(settings.allowed_projects),
            all_projects_allowed=settings.all_projects_allowed,
            allowed_jira_accounts=tuple(settings.allowed_jira_accounts),
            max_description_chars=settings.max_description_chars, jira_base_url=settings.jira_base_url,
        )


def parse_delivery(raw: bytes, rules: IntakeRules,
                   own_account: str | None) -> tuple[Envelope, Ticket | RoutingUpdate | str]:
    """JSON → envelope → event rules → ticket (capped): the envelope and the Ticket, or the reason
    to ignore the delivery, or a `RoutingUpdate` (reroute.py: work only for a ticket waiting to be
    routed). Raises the intake's 400/413/422 errors (they pickle: message only)."""
    body: dict[str, Any] = parse_json(raw)
    envelope = read_envelope(body)
    if reason := event_ignore_reason(envelope, rules, own_account):
        if not may_reroute(envelope, rules, own_account):
            return envelope, reason
        return envelope, RoutingUpdate(ticket=parse_ticket(
            body, envelope, jira_base_url=rules.jira_base_url, limits=FieldLimits.from_settings(rules)),
            reason=reason)
    ticket = parse_ticket(body, envelope, jira_base_url=rules.jira_base_url,
                          limits=FieldLimits.from_settings(rules))
    return envelope, ticket


class ParsePool:
    """One per app. `parse` never blocks the event loop for more than an inline small parse."""

    def __init__(self, inline_max_bytes: int = INLINE_MAX_BYTES) -> None:
        self.inline_max_bytes = inline_max_bytes
        self._pool: concurrent.futures.ProcessPoolExecutor | None = None
        self._lock = threading.Lock()

    def _executor(self) -> concurrent.futures.ProcessPoolExecutor:
        with self._lock:
            if self._pool is None:
                self._pool = concurrent.futures.ProcessPoolExecutor(
                    max_workers=1, mp_context=multiprocessing.get_context("spawn"))
            return self._pool

    async def parse(self, raw: bytes, rules: IntakeRules,
                    own_account: str | None) -> tuple[Envelope, Ticket | RoutingUpdate | str]:
        if len(raw) <= self.inline_max_bytes:
            return parse_delivery(raw, rules, own_account)
        loop = asyncio.get_running_loop()
        try:
            return await loop.run_in_executor(self._executor(), parse_delivery, raw, rules, own_account)
        except concurrent.futures.process.BrokenProcessPool:
            # The worker died (killed, out of memory): start a new one for the next body, and parse
            # this one where we are rather than lose the delivery.
            with self._lock:
                self._pool = None
            return await asyncio.to_thread(parse_delivery, raw, rules, own_account)

    def close(self) -> None:
        with self._lock:
            pool, self._pool = self._pool, None
        if pool is not None:
            pool.shutdown(wait=False, cancel_futures=True)
