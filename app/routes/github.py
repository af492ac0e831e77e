"""`POST /webhook/github`: GitHub's own webhook deliveries for the PRs the service opened.

Order of checks: body size (413, while streaming) → signature (401: `X-Hub-Signature-256`, HMAC-
SHA256 of the raw body with GITHUB_WEBHOOK_SECRET, compared in constant time; a failure counts
against the abuse limit RATE_LIMIT, 429 once spent; a signed delivery against the far higher
RATE_LIMIT_AUTHENTICATED) → headers (400: an `X-GitHub-Event` and an `X-GitHub-Delivery` GUID) →
media type (415: `application/json`, or GitHub's `application/x-www-form-urlencoded` with the JSON
in `payload`) → JSON (400 unparsable, 422 not an
object) → app/followups/intake.py decides. Answers are 202 `queued | duplicate | ignored` or 4xx
`{"error", "detail"}`; never a 5xx for bad input. Without GITHUB_WEBHOOK_SECRET, development
accepts unsigned deliveries (with a warning per delivery) and production refuses them (401).
"""

from __future__ import annotations

import json
import logging
import re
from typing import Any
from urllib.parse import parse_qs

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse

from app.api.dependencies import SettingsDep
from app.errors import BadRequest, Unauthorized, Unprocessable, UnsupportedMediaType
from app.followups.wiring import github_intake
from app.intake.auth import signature_matches
from app.intake.body import read_body_limited
from app.intake.rate_limit import IntakeLimits

log = logging.getLogger(__name__)

WEBHOOK_PATH = "/webhook/github"
SIGNATURE_HEADER = "X-Hub-Signature-256"
_DELIVERY = re.compile(r"^[A-Za-z0-9-]{1,100}\Z")
_EVENT = re.compile(r"^[a-z_]{1,60}\Z")

router = APIRouter(tags=["intake"])


@router.post(WEBHOOK_PATH, status_code=202)
async def github_webhook(request: Request, settings: SettingsDep) -> JSONResponse:
    """Accept one GitHub delivery (check_suite, check_run, workflow_run, pull_request_review,
    pull_request_review_comment, issue_comment, pull_request; others are answered `ignored`)."""
    raw = await read_body_limited(request, settings.max_body_bytes)
    # The intake's two budgets per real client (app/intake/rate_limit.py): a request that proves
    # nothing counts against the abuse limit (429 once spent), a signed delivery against the high one.
    limits: IntakeLimits | None = getattr(request.app.state, "intake_limits", None)
    signature = request.headers.get(SIGNATURE_HEADER)
    try:
        _authenticate(settings.github_webhook_secret, signature, raw, production=settings.is_production)
    except Unauthorized:
        if limits is not None:
            await limits.hit("unauthenticated", request)
        raise
    if limits is not None:
        await limits.hit("authenticated" if settings.github_webhook_secret else "unauthenticated", request)
    event = request.headers.get("x-github-event", "")
    delivery = request.headers.get("x-github-delivery", "")
    if not _EVENT.match(event):
        raise BadRequest("missing or invalid X-GitHub-Event header", code="bad_request")
    if not _DELIVERY.match(delivery):
        raise BadRequest("missing or invalid X-GitHub-Delivery header (a GUID)", code="bad_request")
    payload = _payload(request.headers.get("content-type"), raw)
    answer = await github_intake(request).handle(event, delivery, payload)
    return JSONResponse(answer, status_code=202)


def _authenticate(secret: Any, signature: str | None, raw: bytes, *, production: bool) -> None:
    key = secret.get_secret_value().encode() if secret is not None else b""
    if not key:
        if production:
            raise Unauthorized(
                "GitHub webhooks are not configured (GITHUB_WEBHOOK_SECRET)", code="unauthorized"
            )
        log.warning("github_webhook_unsigned: no GITHUB_WEBHOOK_SECRET (development only)")
        return
    if signature is None:
        raise Unauthorized(f"missing {SIGNATURE_HEADER} header", code="unauthorized")
    if not signature_matches(signature, raw, key):
        raise Unauthorized(f"invalid {SIGNATURE_HEADER}", code="unauthorized")


def _payload(content_type: str | None, raw: bytes) -> dict[str, Any]:
    media = (content_type or "").split(";", 1)[0].strip().lower()
    if media == "application/x-www-form-urlencoded":
        try:
            fields = parse_qs(raw.decode("utf-8"), strict_parsing=False)
        except UnicodeDecodeError:
            raise BadRequest("form body is not UTF-8", code="bad_request") from None
        text = (fields.get("payload") or [""])[0]
    elif media == "application/json":
        try:
            text = raw.decode("utf-8")
        except UnicodeDecodeError:
            raise BadRequest("body is not UTF-8", code="bad_request") from None
    else:
        raise UnsupportedMediaType(
            f"Content-Type must be application/json, got {(media or 'none')[:80]}",
            code="unsupported_media_type",
        )
    try:
        data = json.loads(text)
    except (ValueError, RecursionError):
        raise BadRequest("body is not valid JSON", code="bad_request") from None
    if not isinstance(data, dict):
        raise Unprocessable("the payload must be a JSON object", code="unprocessable")
    return data
