"""Webhook authentication: a shared token header or an HMAC signature of the raw body.

- `X-Webhook-Token: <WEBHOOK_SECRET>` (Jira Automation "Send web request" custom header), compared
  in constant time;
- `X-Hub-Signature: sha256=<hex HMAC-SHA256 of the raw body keyed by JIRA_WEBHOOK_SECRET>` (Jira
  system webhooks with a secret).

Either secret may be configured; when both are, either valid header is enough. With neither
configured, development allows the delivery (a warning is logged at start-up) and production refuses
it (start-up already refuses such a configuration; this is the second line). Credentials are only
read from headers: a token in the query string would land in proxy and access logs, so it is never
accepted. Raises `Unauthorized`; the detail never echoes what was sent.
"""

from __future__ import annotations

import hashlib
import hmac
from typing import Literal

from pydantic import SecretStr

from app.config import Settings
from app.errors import Unauthorized

TOKEN_HEADER = "X-Webhook-Token"  # noqa: S105 - a header name, not a secret
SIGNATURE_HEADER = "X-Hub-Signature"
AuthMethod = Literal["token", "signature", "none"]


def _secret_bytes(secret: SecretStr | None) -> bytes | None:
    raw = secret.get_secret_value() if secret is not None else ""
    return raw.encode("utf-8") if raw else None


def token_matches(header_value: str, secret: bytes) -> bool:
    """Constant-time comparison. Starlette decodes header bytes as latin-1, so re-encoding with
    latin-1 recovers the exact bytes sent (a non-ASCII secret compares byte for byte)."""
    return hmac.compare_digest(header_value.encode("latin-1"), secret)


def signature_matches(header_value: str, raw_body: bytes, secret: bytes) -> bool:
    """`sha256=<hex>` over the raw body; the hex digits are compared case-insensitively."""
    scheme, sep, digest = header_value.strip().partition("=")
    if not sep or scheme.strip().lower() != "sha256":
        return False
    expected = hmac.new(secret, raw_body, hashlib.sha256).hexdigest().encode("ascii")
    return hmac.compare_digest(digest.strip().lower().encode("latin-1"), expected)


def sign(raw_body: bytes, secret: str) -> str:
    """The header value a Jira system webhook sends for `raw_body` (used by tests and the bench)."""
    return "sha256=" + hmac.new(secret.encode("utf-8"), raw_body, hashlib.sha256).hexdigest()


def authenticate(
    settings: Settings,
    *,
    token: str | None,
    signature: str | None,
    raw_body: bytes,
    has_query: bool = False,
) -> AuthMethod:
    """Return how the delivery authenticated, or raise Unauthorized."""
    token_secret = _secret_bytes(settings.webhook_secret)
    hmac_secret = _secret_bytes(settings.jira_webhook_secret)
    if token_secret is None and hmac_secret is None:
        if settings.is_production:
            raise Unauthorized("webhook authentication is not configured", code="unauthorized")
        return "none"
    if token_secret is not None and token is not None and token_matches(token, token_secret):
        return "token"
    if (
        hmac_secret is not None
        and signature is not None
        and signature_matches(signature, raw_body, hmac_secret)
    ):
        return "signature"

    expected = " or ".join(
        h for h, s in ((TOKEN_HEADER, token_secret), (SIGNATURE_HEADER, hmac_secret)) if s is not None
    )
    if token is None and signature is None:
        detail = f"missing {expected} header"
        if has_query:
            detail += " (credentials in the query string are not accepted)"
    else:
        detail = f"invalid {expected}"
    raise Unauthorized(detail, code="unauthorized")
