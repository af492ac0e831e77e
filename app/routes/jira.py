"""`POST /webhook/jira`: authenticate, validate, decide, enqueue — and answer within milliseconds.

The route never does the work: it hands a validated `Ticket` to the runner's `submit` (a durable,
deduplicated enqueue) and answers 202 `{"status": "queued"|"duplicate", "run_id"}` or 202
`{"status": "ignored", "reason"}`. Bad input raises the `app.errors` classes (400/401/413/415/422),
rendered `{"error", "detail"}` by the app's handler; never a 5xx for bad input and never 409 (Jira
retries 408/409/425/429/5xx). Order of checks: rate limit (429; before any byte of the body is read
unless a signature must be checked against it, see app/intake/rate_limit.py) → body size (413) → auth
(401) → media type (415) → JSON (400/422) → rules → key (400). Authenticated deliveries have their
own, far higher budget (RATE_LIMIT_AUTHENTICATED): a Jira bulk change is accepted in full.

`install(app, settings)` is called by `create_app`: it builds this app's `IntakeLimits` (on
`app.state.intake_limits`, keyed on the real client behind trusted proxies), its 429 handler and the
router. At request time the route gets the runner and the service's own Jira account through
app/api/dependencies.py, and reads what `install` put on `app.state` (settings, limits, rules).

Parsing (JSON decode, envelope, ticket with its ADF render) of a big body runs in a worker
process (`app.intake.parse_pool`): the C JSON decoder keeps the GIL while it runs, so a thread would
still stall every other request and the runs sharing this event loop for tens of ms on a hostile
1 MB body; small bodies (the usual ones) are parsed inline in about a millisecond.
"""

from __future__ import annotations

import logging

from fastapi import APIRouter, FastAPI, Request
from fastapi.responses import JSONResponse, Response

from app.api.dependencies import JiraAccountDep, RunnerDep
from app.config import Settings
from app.intake import (
    TrustedProxies,
    authenticate,
    check_content_type,
    make_key_func,
    read_body_limited,
    ticket_ignore_reason,
)
from app.intake.auth import SIGNATURE_HEADER, TOKEN_HEADER
from app.intake.parse_pool import IntakeRules, ParsePool
from app.intake.rate_limit import IntakeLimits, RateLimited
from app.intake.reroute import RoutingUpdate
from app.intake.ticket_text import awaiting_routing, require_ticket_text
from app.intake.trace import delivery_id, traced
from app.services.runner.engine import RunEngine

logger = logging.getLogger(__name__)

WEBHOOK_PATH = "/webhook/jira"


def install(app: FastAPI, settings: Settings) -> None:
    """Wire the webhook into `app`: rate limits + 429 handler + router. Raises ConfigError for an
    unparsable RATE_LIMIT, RATE_LIMIT_AUTHENTICATED, RATE_LIMIT_STORAGE_URL or TRUSTED_PROXIES
    (start-up fails instead of running unprotected)."""
    trusted = TrustedProxies.parse(settings.trusted_proxies)
    # Two budgets per real client address, in RATE_LIMIT_STORAGE_URL (shared by every host) or in
    # memory (app/intake/rate_limit.py); 429s carry Retry-After, which Jira's retry logic honours.
    app.state.intake_limits = IntakeLimits.from_settings(settings, make_key_func(trusted))
    app.state.parse_pool = ParsePool()  # closed by the lifespan
    app.state.intake_rules = IntakeRules.from_settings(settings)
    _warn_open_intake(settings)
    # Starlette types every handler as taking a bare Exception though it dispatches by class, so a
    # handler for one exception type never matches its signature (starlette's typing gap).
    app.add_exception_handler(RateLimited, _rate_limited)  # type: ignore[arg-type]
    app.include_router(_build_router())


def _warn_open_intake(settings: Settings) -> None:
    """Start-up warnings for intake rules that let anyone's ticket start work."""
    if "*" in settings.allowed_projects:
        logger.warning("allowed_projects_all",
                       extra={"reason": "ALLOWED_PROJECTS=*: every Jira project may start work"})
    elif not settings.allowed_projects:
        logger.warning("allowed_projects_all",
                       extra={"reason": "ALLOWED_PROJECTS unset: every Jira project may start work "
                                        "(development only; production requires it)"})


def _rate_limited(request: Request, exc: RateLimited) -> Response:
    return JSONResponse({"error": exc.code, "detail": exc.detail}, status_code=429, headers=exc.headers)


def _build_router() -> APIRouter:
    """A router per app (each test, each `create_app`); its limits are on `app.state`."""
    router = APIRouter(tags=["intake"])

    @router.post(WEBHOOK_PATH, status_code=202)
    async def jira_webhook(request: Request, runner: RunnerDep,
                           own_account: JiraAccountDep) -> JSONResponse:
        """Accept one Jira delivery (system webhook, Automation rule or custom body)."""
        return await traced(request, lambda: _handle(request, runner, own_account))  # intake/trace.py

    return router


async def _handle(request: Request, runner: RunEngine, own_account: str | None) -> JSONResponse:
    state = request.app.state
    settings: Settings = state.settings
    token, signature = request.headers.get(TOKEN_HEADER), request.headers.get(SIGNATURE_HEADER)
    limits: IntakeLimits = state.intake_limits
    async with limits.admission(request, settings, token=token, signature=signature) as admission:
        raw = await read_body_limited(request, settings.max_body_bytes)
        method = authenticate(settings, token=token, signature=signature, raw_body=raw,
                              has_query=bool(request.url.query))
        await admission.proved(method)
    check_content_type(request.headers.get("content-type"))
    envelope, decided = await state.parse_pool.parse(raw, state.intake_rules,
                                                     own_account or settings.jira_account_id)
    if isinstance(decided, str):
        return _ignored(decided, envelope.event)
    if isinstance(decided, RoutingUpdate):  # work only if its last run is waiting to be routed
        if not await awaiting_routing(runner.store, decided.ticket.key):
            return _ignored(decided.reason, envelope.event, ticket=decided.ticket.key)
        decided = decided.ticket
    ticket = decided
    require_ticket_text(ticket, jira_readable=settings.jira_reporting_enabled)  # 422 for a key alone
    if reason := ticket_ignore_reason(ticket, settings):
        return _ignored(reason, envelope.event, ticket=ticket.key)
    result = await runner.submit(ticket)
    logger.info(
        "webhook_accepted",
        extra={"ticket": ticket.key, "run_id": result.run_id, "status": result.status,
               "source": ticket.source, "webhook_event": envelope.event},
    )
    return JSONResponse({"status": result.status, "run_id": result.run_id}, status_code=202)


def _ignored(reason: str, event: str | None, *, ticket: str | None = None) -> JSONResponse:
    logger.info("webhook_ignored", extra={"ticket": ticket, "reason": reason, "webhook_event": event,
                                          "outcome": "ignored", "delivery_id": delivery_id()})
    return JSONResponse({"status": "ignored", "reason": reason}, status_code=202)
