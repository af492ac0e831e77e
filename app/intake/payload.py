"""Parse every real Jira delivery shape into an `Envelope` (what happened) and a `Ticket` (what to do).

Shapes (fixtures in tests/intake/fixtures/):
- system webhook: `{webhookEvent, issue_event_type_name, user, issue, changelog: {items: [...]}}`;
- Automation "Issue data (Jira format)": `{issue, user?, timestamp}` with numeric ids, epoch-ms dates;
- Automation "Issue data (Automation format)": the issue itself at top level (`{self, id, key, fields}`);
- the minimal custom body: `{"key", "summary", "description"}` or `{"issue": {"key", "fields"}}`.

`description` may be wiki text, null, missing or an ADF object (rendered by `app.intake.adf`).
Summary, description and labels are capped by `app.intake.limits` (the one truncation rule).
Cost: `parse_json` refuses (413) a body with more than MAX_JSON_CONTAINERS objects/arrays before
decoding it (counted on the raw bytes; no real delivery comes close), and everything after it is
linear with bounded output.
Errors: `BadRequest` (400) for bytes that are not JSON or a malformed key; `Unprocessable` (422) for
JSON of the wrong shape or types. Never anything else: every input maps to one of those or a result.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any, Literal
from urllib.parse import urlsplit

from app.errors import BadRequest, PayloadTooLarge, Unprocessable
from app.intake import routing_fields
from app.intake.adf import adf_to_text, is_adf
from app.intake.keys import validate_key
from app.intake.limits import FieldLimits
from app.models import Ticket

Source = Literal["system_webhook", "automation", "custom"]
# `{` and `[` bytes allowed in one body (braces inside strings count too: an upper bound). A system
# webhook carries a few hundred; a long, richly formatted ADF description a few thousand.
MAX_JSON_CONTAINERS = 100_000


@dataclass(frozen=True)
class ChangeItem:
    """One changelog entry of a `jira:issue_updated` event (`fromString`/`toString` as sent)."""

    field: str
    from_string: str
    to_string: str


@dataclass(frozen=True)
class Envelope:
    """What the delivery says happened, independent of the issue: enough to decide to ignore it."""

    source: Source
    event: str | None = None  # webhookEvent, e.g. "jira:issue_created"; None for Automation/custom
    event_type: str | None = None  # issue_event_type_name, e.g. "issue_generic"
    actor_ids: frozenset[str] = frozenset()  # accountId (Cloud), name/key (Server) of the actor
    changes: tuple[ChangeItem, ...] = field(default_factory=tuple)
    # accountIds only (ALLOWED_JIRA_ACCOUNTS): the actor (`user.accountId`, `initiator.accountId`
    # or a string `initiator`) and the issue's reporter (`fields.reporter.accountId`).
    actor_account_ids: frozenset[str] = frozenset()
    reporter_account_id: str | None = None
    # The issue as delivered, for the issue_created trigger (names as sent; compared casefolded).
    issue_status: str | None = None
    issue_labels: tuple[str, ...] = ()


def _where(exc: Exception) -> str:
    """Where the body broke, in the JSON decoder's own words (never the body's text)."""
    if isinstance(exc, json.JSONDecodeError):
        return f"{exc.msg} at line {exc.lineno} column {exc.colno} (char {exc.pos})"
    if isinstance(exc, UnicodeDecodeError):
        return f"not UTF-8 at byte {exc.start}"
    if isinstance(exc, RecursionError):
        return "nested too deeply"
    return type(exc).__name__


def parse_json(raw: bytes) -> dict[str, Any]:
    """Decode the raw body: 400 when it is not JSON, 422 when it is JSON but not an object."""
    if not raw.strip():
        raise BadRequest("empty body: expected a JSON object", code="invalid_json")
    if raw.count(b"{") + raw.count(b"[") > MAX_JSON_CONTAINERS:
        raise PayloadTooLarge(
            f"body has more than {MAX_JSON_CONTAINERS} JSON objects/arrays", code="payload_too_large"
        )
    try:
        body = json.loads(raw)
    # ValueError covers JSONDecodeError, UnicodeDecodeError and over-long int literals;
    # RecursionError is what a deeply nested array/object raises.
    except (ValueError, RecursionError) as exc:
        raise BadRequest(f"body is not valid JSON: {_where(exc)}", code="invalid_json") from None
    if not isinstance(body, dict):
        raise Unprocessable(
            f"body must be a JSON object, got {_type_name(body)}", code="invalid_payload"
        )
    return body


def read_envelope(body: dict[str, Any]) -> Envelope:
    """Classify the delivery and pull out event name, actor and changelog (tolerantly)."""
    event = _opt_str(body, "webhookEvent", "webhookEvent")
    if event is not None:
        source: Source = "system_webhook"
    elif "issue" in body:
        source = "automation" if ("user" in body or "timestamp" in body) else "custom"
    elif "fields" in body:
        source = "automation"  # Automation format: the issue object itself at top level
    else:
        source = "custom"
    initiator = body.get("initiator")
    actors = (body.get("user"), initiator)
    fields = _issue_fields(body)
    status = fields.get("status")
    labels = fields.get("labels")
    reporter = fields.get("reporter")
    return Envelope(
        source=source,
        event=event,
        event_type=_opt_str(body, "issue_event_type_name", "issue_event_type_name"),
        actor_ids=_actor_ids(body.get("user")) | _actor_ids(initiator),
        changes=_changes(body.get("changelog")) if event is not None else (),
        actor_account_ids=frozenset(a for a in map(_account_id, actors) if a),
        reporter_account_id=_account_id(reporter) if isinstance(reporter, dict) else None,
        issue_status=_name(status),
        issue_labels=tuple(v for v in labels if isinstance(v, str)) if isinstance(labels, list) else (),
    )


def parse_ticket(
    body: dict[str, Any],
    envelope: Envelope,
    *,
    jira_base_url: str | None = None,
    limits: FieldLimits | None = None,
) -> Ticket:
    """Build the Ticket from whichever shape `envelope.source` found; validates the key strictly;
    caps summary, description and labels (`limits`, default FieldLimits())."""
    limits = limits or FieldLimits()
    if "issue" in body:
        issue = body["issue"]
        if not isinstance(issue, dict):
            raise Unprocessable(f"'issue' must be an object, got {_type_name(issue)}", code="invalid_payload")
        where = "issue."
    else:
        issue, where = body, ""
    if "key" not in issue:
        raise Unprocessable(f"missing '{where}key'", code="invalid_payload")
    raw_key = issue["key"]
    if not isinstance(raw_key, str):
        raise Unprocessable(
            f"'{where}key' must be a string, got {_type_name(raw_key)}", code="invalid_payload"
        )
    key = validate_key(raw_key)

    if "fields" in issue:
        fields = issue["fields"]
        if fields is None:
            fields = {}
        if not isinstance(fields, dict):
            raise Unprocessable(f"'{where}fields' must be an object", code="invalid_payload")
        fwhere = f"{where}fields."
        issue_type = _issue_type(fields.get("issuetype"))
    else:
        fields, fwhere = issue, ""
        issue_type = _issue_type(issue.get("issuetype", issue.get("issue_type")))

    summary = _opt_str(fields, "summary", fwhere + "summary") or ""
    return Ticket(
        key=key,
        summary=limits.summary(summary.strip()),
        description=_description(fields.get("description"), fwhere + "description", limits),
        issue_type=issue_type,
        labels=limits.labels(_labels(fields.get("labels"), fwhere + "labels")),
        url=_browse_url(issue.get("self"), key, jira_base_url),
        source=envelope.source,
        components=routing_fields.components(fields),
        fields=routing_fields.custom_fields(fields),
    )


# ----- field helpers -----
def _type_name(value: object) -> str:
    return {dict: "an object", list: "an array", str: "a string", bool: "a boolean",
            type(None): "null", int: "a number", float: "a number"}.get(type(value), type(value).__name__)


def _opt_str(obj: dict[str, Any], name: str, where: str) -> str | None:
    value = obj.get(name)
    if value is None or isinstance(value, str):
        return value
    raise Unprocessable(f"'{where}' must be a string, got {_type_name(value)}", code="invalid_payload")


def _description(value: object, where: str, limits: FieldLimits) -> str:
    if value is None:
        return ""
    if isinstance(value, str):
        return limits.description(value.strip())
    if is_adf(value):
        return adf_to_text(value, limits.max_description_chars)
    raise Unprocessable(
        f"'{where}' must be text, null or an Atlassian Document Format object, got {_type_name(value)}",
        code="invalid_payload",
    )


def _labels(value: object, where: str) -> list[str]:
    if value is None:
        return []
    if isinstance(value, list) and all(isinstance(v, str) for v in value):
        return list(value)
    raise Unprocessable(f"'{where}' must be an array of strings", code="invalid_payload")


def _issue_type(value: object) -> str | None:
    # Informational only (it shapes the prompt), so a surprising type is dropped, not refused.
    if isinstance(value, dict) and isinstance(name := value.get("name"), str):
        return name
    return value if isinstance(value, str) else None


def _issue_fields(body: dict[str, Any]) -> dict[str, Any]:
    """The issue's fields in any shape (`issue.fields`, top-level `fields`, or the flat custom
    body), tolerantly: {} when absent or malformed (parse_ticket reports shape errors)."""
    issue = body.get("issue", body)
    if not isinstance(issue, dict):
        return {}
    fields = issue.get("fields", issue)
    return fields if isinstance(fields, dict) else {}


def _name(value: object) -> str | None:
    """A status as sent: `{"name": ...}` (Jira) or a plain string (custom bodies)."""
    if isinstance(value, dict):
        value = value.get("name")
    return value if isinstance(value, str) and value else None


def _account_id(user: object) -> str | None:
    """`accountId` of a user object, or the string itself (`"initiator": "{{initiator.accountId}}"`)."""
    if isinstance(user, dict):
        user = user.get("accountId")
    return user if isinstance(user, str) and user else None


def _actor_ids(user: object) -> frozenset[str]:
    if not isinstance(user, dict):
        return frozenset()
    return frozenset(v for k in ("accountId", "name", "key") if isinstance(v := user.get(k), str) and v)


def _changes(changelog: object) -> tuple[ChangeItem, ...]:
    """Changelog items of a system webhook; malformed entries are skipped (they can only fail to
    trigger, never start work)."""
    items = changelog.get("items") if isinstance(changelog, dict) else None
    if not isinstance(items, list):
        return ()
    out = []
    for item in items:
        if not isinstance(item, dict):
            continue
        name = item.get("fieldId") if isinstance(item.get("fieldId"), str) else item.get("field")
        if isinstance(name, str):
            out.append(ChangeItem(
                field=name.lower(),
                from_string=item["fromString"] if isinstance(item.get("fromString"), str) else "",
                to_string=item["toString"] if isinstance(item.get("toString"), str) else "",
            ))
    return tuple(out)


def _browse_url(self_url: object, key: str, jira_base_url: str | None) -> str | None:
    """`<site>/browse/<KEY>` from the issue's REST `self` link (keeps a Server context path such as
    `/jira`), else from JIRA_BASE_URL. Only http(s) URLs are trusted to build a link."""
    base = None
    if isinstance(self_url, str) and "/rest/api/" in self_url:
        base = self_url.split("/rest/api/", 1)[0]
    elif jira_base_url:
        base = jira_base_url
    if not base:
        return None
    try:
        parts = urlsplit(base)
    except ValueError:
        return None
    if parts.scheme not in ("http", "https") or not parts.netloc or any(c.isspace() for c in base):
        return None
    return f"{base.rstrip('/')}/browse/{key}"
