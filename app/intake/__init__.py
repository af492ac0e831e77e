"""Webhook intake: turn a raw Jira delivery into a validated `Ticket` and a start/ignore decision.

Pure functions and small value types only (no FastAPI routing here): `app.routes.jira` wires them
into `POST /webhook/jira` in this order — rate limit, body size, auth, media type, JSON, envelope,
event rules, ticket (strict key), project rule, submit.
"""

from app.intake.adf import adf_to_text, is_adf
from app.intake.auth import authenticate, sign
from app.intake.body import check_content_type, read_body_limited
from app.intake.client_ip import TrustedProxies, make_key_func, real_client_ip
from app.intake.decide import event_ignore_reason, ticket_ignore_reason
from app.intake.keys import is_valid_key, validate_key
from app.intake.payload import ChangeItem, Envelope, parse_json, parse_ticket, read_envelope

__all__ = [
    "ChangeItem",
    "Envelope",
    "TrustedProxies",
    "adf_to_text",
    "authenticate",
    "check_content_type",
    "event_ignore_reason",
    "is_adf",
    "is_valid_key",
    "make_key_func",
    "parse_json",
    "parse_ticket",
    "read_body_limited",
    "read_envelope",
    "real_client_ip",
    "sign",
    "ticket_ignore_reason",
    "validate_key",
]
