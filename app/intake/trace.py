"""Every delivery leaves a trace: one log line for each rejected or ignored delivery, and a count.

The line (`webhook_rejected` / `webhook_ignored`) carries the outcome, the reason (the error code
and, unless it could quote the body, its detail) and the delivery's own id from Jira's headers
(`X-Atlassian-Webhook-Identifier`, which Jira keeps across its retries of one delivery), so an
operator can match Jira's delivery log to ours. Never the body: ticket text is hostile and may be
large. The id is a header value, also hostile: only a short run of id characters is kept.

`traced(request, handle)` wraps the route's handler: an `AutoCodeError` is logged and counted, then
re-raised for the app's error handler to answer; an answer is counted by its `status`. The ignored
line itself is written by the route (it knows the ticket), with `delivery_id()` of this context.
"""

from __future__ import annotations

import contextvars
import json
import logging
import re
from collections.abc import Awaitable, Callable

from fastapi import Request
from fastapi.responses import JSONResponse

from app.errors import AutoCodeError

logger = logging.getLogger("app.routes.jira")

DELIVERY_HEADERS = ("x-atlassian-webhook-identifier", "x-request-id")
_ID = re.compile(r"[A-Za-z0-9._:-]{1,100}")
# Codes whose detail quotes a value from the body (validate_key shows the offending key).
_QUOTES_BODY = frozenset({"invalid_key"})

_delivery: contextvars.ContextVar[str | None] = contextvars.ContextVar("jira_delivery_id", default=None)


def read_delivery_id(request: Request) -> str | None:
    """Jira's id for this delivery (the first id-like header), or None."""
    for name in DELIVERY_HEADERS:
        value = request.headers.get(name)
        if value and (m := _ID.fullmatch(value.strip())):
            return m.group(0)
    return None


def delivery_id() -> str | None:
    """The id of the delivery this request handles (inside `traced`)."""
    return _delivery.get()


def _count(request: Request, outcome: str, code: str = "") -> None:
    metrics = getattr(request.app.state, "metrics", None)
    if metrics is not None:
        metrics.delivery(outcome, code)


def log_rejected(request: Request, exc: AutoCodeError) -> None:
    """The one line of a rejected delivery (and its count)."""
    detail = "the value is not logged" if exc.code in _QUOTES_BODY else exc.detail[:300]
    log_refusal(request, exc.code, detail, exc.status_code)


def log_refusal(request: Request, code: str, detail: str, status: int) -> None:
    logger.info("webhook_rejected", extra={
        "outcome": "rejected", "reason": code, "detail": detail, "status": status,
        "delivery_id": read_delivery_id(request)})
    _count(request, "rejected", code)


async def traced(request: Request, handle: Callable[[], Awaitable[JSONResponse]]) -> JSONResponse:
    token = _delivery.set(read_delivery_id(request))
    try:
        response = await handle()
    except AutoCodeError as exc:
        log_rejected(request, exc)
        raise
    finally:
        _delivery.reset(token)
    try:
        outcome = str(json.loads(bytes(response.body)).get("status") or "answered")
    except (ValueError, AttributeError):
        outcome = "answered"
    _count(request, outcome)
    return response


__all__ = ["DELIVERY_HEADERS", "delivery_id", "log_refusal", "log_rejected", "read_delivery_id", "traced"]
