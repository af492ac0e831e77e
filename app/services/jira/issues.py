"""The ticket as Jira has it: one issue read over REST v3, for the run's `start` step.

Many Automation rules send only `{{issue.key}}`; a delivery's copy of the fields may be partial or
stale. With Jira credentials the run reads the issue itself:
- `GET /rest/api/3/issue/{key}?fields=summary,description,labels,components,issuetype,<routing
  custom fields>` (v3 gives `description` as an ADF document);
- `GET /rest/api/3/issue/{key}/comment?orderBy=-created&maxResults=MAX_COMMENTS` (the newest
  comments; shown to the agent oldest first, each body ADF).
ADF becomes text through the project's one ADF rule (app/intake/adf.py), and every field goes
through the intake's caps (app/intake/limits.py, routing_fields.py): the issue is as hostile as a
delivery. The service's own comments (its account id) are left out: they are reports, not asks.

Contract (`IssueReader`): `read(key, fields)` returns the Ticket or raises JiraError (the status
attached; 404 when the issue does not exist or is not visible to the account).
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any, Protocol

from app.errors import JiraError
from app.intake import routing_fields
from app.intake.adf import adf_to_text, is_adf
from app.intake.limits import FieldLimits
from app.models import Ticket
from app.services.jira.client import JiraRestReporter, _key

logger = logging.getLogger(__name__)

MAX_COMMENTS = 20
READ_TIMEOUT_SEC = 10.0  # the whole read (both calls, retries included)
MAX_COMMENT_CHARS = 2000
BASE_FIELDS = ("summary", "description", "labels", "components", "issuetype")


class IssueReader(Protocol):
    async def read(self, ticket_key: str, custom_fields: tuple[str, ...] = ()) -> Ticket:
        """The issue `ticket_key` as Jira has it (summary, description, labels, components, type,
        the given custom fields and the comment thread), capped like a delivery. Raises JiraError."""
        ...

    async def aclose(self) -> None: ...


class JiraIssueReader(JiraRestReporter):
    """The real `IssueReader` (the reporter's REST plumbing: auth, retries, clear errors)."""

    def __init__(self, *args: Any, limits: FieldLimits | None = None, timeout_sec: float = READ_TIMEOUT_SEC,
                 **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._limits = limits or FieldLimits()
        self._timeout = timeout_sec

    async def read(self, ticket_key: str, custom_fields: tuple[str, ...] = ()) -> Ticket:
        # On the run's path: a Jira that hangs or keeps answering 429/5xx must not hold the run for
        # the client's whole retry budget (the run falls back to the delivery's copy, or fails).
        try:
            return await asyncio.wait_for(self._read(_key(ticket_key), custom_fields), self._timeout)
        except TimeoutError:
            raise JiraError(f"Jira did not give issue {ticket_key} within {self._timeout:g}s "
                            "(timed out)") from None

    async def _read(self, key: str, custom_fields: tuple[str, ...]) -> Ticket:
        wanted = ",".join((*BASE_FIELDS, *custom_fields))
        resp = await self._request("GET", f"/rest/api/3/issue/{key}", "read the issue",
                                   params={"fields": wanted})
        self._check(resp, f"read issue {key}", key)
        data = _json_object(resp.json() if resp.content else None, f"issue {key}")
        raw_fields = data.get("fields")
        fields: dict[str, Any] = raw_fields if isinstance(raw_fields, dict) else {}
        resp = await self._request("GET", f"/rest/api/3/issue/{key}/comment", "read the comments",
                                   params={"orderBy": "-created", "maxResults": str(MAX_COMMENTS)})
        self._check(resp, f"read the comments of {key}", key)
        comments = _json_object(resp.json() if resp.content else None, f"comments of {key}").get("comments")
        own = await self.myself()
        ticket = self._ticket(key, fields, comments if isinstance(comments, list) else [], own)
        logger.info("jira_issue_read", extra={"ticket": key, "comments": len(ticket.comments),
                                              "components": len(ticket.components)})
        return ticket

    def _ticket(self, key: str, fields: dict[str, Any], comments: list[Any], own: str | None) -> Ticket:
        lim = self._limits
        summary = fields.get("summary") if isinstance(fields.get("summary"), str) else ""
        labels = [x for x in fields.get("labels") or [] if isinstance(x, str)] \
            if isinstance(fields.get("labels"), list) else []
        kind = fields.get("issuetype")
        texts: list[str] = []
        for c in reversed(comments):  # newest first from Jira; the thread reads oldest first
            if not isinstance(c, dict):
                continue
            raw_author = c.get("author")
            author: dict[str, Any] = raw_author if isinstance(raw_author, dict) else {}
            if own and author.get("accountId") == own:
                continue
            body = _text(c.get("body"), MAX_COMMENT_CHARS)
            if body:
                shown = author.get("displayName")
                name = shown if isinstance(shown, str) else "someone"
                texts.append(f"{name[:80]}: {body}")
        kind_name = kind.get("name") if isinstance(kind, dict) else None
        return Ticket(
            key=key, summary=lim.summary(str(summary).strip()),
            description=_text(fields.get("description"), lim.max_description_chars),
            issue_type=kind_name if isinstance(kind_name, str) else None,
            labels=lim.labels(labels), url=f"{self._base}/browse/{key}", source="jira_api",
            components=routing_fields.components(fields), fields=routing_fields.custom_fields(fields),
            comments=texts,
        )


def _text(value: object, limit: int) -> str:
    """ADF (v3) or plain text (a v2-style string) → capped text."""
    if is_adf(value):
        return adf_to_text(value, limit)
    if isinstance(value, str):
        return FieldLimits(max_description_chars=max(limit, 1)).description(value.strip())
    return ""


def _json_object(value: object, what: str) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise JiraError(f"Jira answered {what} without a JSON object")
    return value


__all__ = ["MAX_COMMENTS", "IssueReader", "JiraIssueReader"]
