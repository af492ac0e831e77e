"""`ProgressComments`: each run's one Jira comment, found again by its marker and edited in place.

Contract of `publish(ticket_key, view)`:
- The comment is the one on `ticket_key` authored by the service's account (when it is known) whose
  body holds this run's marker text node (progress_doc.py): never a comment of another run, of
  another ticket, or of a person quoting the marker. Its id is remembered per run in this process.
- Found → `PUT` (edit in place, watchers not notified). Not found → one `POST` without retries,
  with the run id as a comment property too. When the POST fails in a way that may hide a write
  (5xx, 429, no answer) the comments are listed again before anything else is posted: retrying after
  a 5xx never posts twice.
- What is sent passes the outbound check first: every string is redacted, and if a secret value
  still shows in the document's text or links, nothing is sent (JiraError).
- Raises JiraError; callers (the progress hub, the report step) treat every failure as best effort.
A per-run lock keeps one publish of a run at a time in this process; across processes the marker
look-up makes a publish idempotent.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from app.errors import JiraError
from app.services.jira.adf import to_adf
from app.services.jira.base import JiraComments
from app.services.jira.progress_doc import ProgressView, has_marker, render, visible_text
from app.services.outbound_scan import SecretScanner, describe

log = logging.getLogger(__name__)

PROPERTY_KEY = "auto-code-run"
# How far back the marker is looked for: a run's comment is recent, and a ticket with thousands of
# comments must not cost thousands of reads per update.
LOOKUP_LIMIT = 300


def _maybe_written(exc: JiraError) -> bool:
    """A failed POST that may still have created the comment (the answer, not the write, failed)."""
    return exc.status is None or exc.status == 429 or exc.status >= 500


class ProgressComments:
    def __init__(self, jira: JiraComments, scanner: SecretScanner) -> None:
        self.jira = jira
        self.scanner = scanner
        self._ids: dict[str, str] = {}
        self._locks: dict[str, asyncio.Lock] = {}

    def forget(self, run_id: str) -> None:
        """Drop what this process remembers of the run (its comment stays in Jira)."""
        self._ids.pop(run_id, None)
        self._locks.pop(run_id, None)

    def checked(self, doc: dict[str, Any]) -> dict[str, Any]:
        """`doc` if no secret value shows in it; else JiraError naming the variables (never values)."""
        hits = self.scanner.find_forms(visible_text(doc))
        if hits:
            raise JiraError(f"outbound check: the Jira comment contains the value of {describe(hits)}; "
                            "nothing was sent")
        return doc

    async def publish(self, ticket_key: str, view: ProgressView) -> str:
        """Create or edit the run's comment to show `view`; the comment's id."""
        body = self.checked(render(view, self.scanner.redact))
        lock = self._locks.setdefault(view.run_id, asyncio.Lock())
        async with lock:
            cid = self._ids.get(view.run_id)
            looked = False
            if cid is None:
                cid, looked = await self.find(ticket_key, view.run_id), True
            if cid is not None:
                try:
                    await self.jira.update_comment(ticket_key, cid, body)
                    self._ids[view.run_id] = cid
                    return cid
                except JiraError as exc:
                    if exc.status != 404:  # deleted by someone: post a new one below
                        raise
                    self._ids.pop(view.run_id, None)
                    looked = True
            if not looked and (found := await self.find(ticket_key, view.run_id)) is not None:
                cid = found
            else:
                cid = await self._create(ticket_key, view.run_id, body)
            self._ids[view.run_id] = cid
            return cid

    async def _create(self, ticket_key: str, run_id: str, body: dict[str, Any]) -> str:
        try:
            return await self.jira.add_comment(ticket_key, body, retry=False,
                                               properties={PROPERTY_KEY: {"run_id": run_id}})
        except JiraError as exc:
            if not _maybe_written(exc):
                raise
            # The POST may have been made: look before anyone posts again (the next update, or a
            # replay on another host, goes through `find` too).
            found = await self.find(ticket_key, run_id)
            if found is None:
                raise
            await self.jira.update_comment(ticket_key, found, body)
            return found

    async def find(self, ticket_key: str, run_id: str) -> str | None:
        """The id of this run's comment on the ticket, or None."""
        own = await self.jira.myself()
        for comment in await self.jira.list_comments(ticket_key, limit=LOOKUP_LIMIT):
            if own is not None and comment.author_account_id != own:
                continue  # a marker in someone else's comment is a quote (or a trap), not ours
            if has_marker(comment.body, run_id):
                return comment.id
        return None

    async def notice(self, ticket_key: str, text: str) -> None:
        """A separate plain comment (a spend-cap warning): redacted and checked, sent once."""
        body = self.checked(to_adf(self.scanner.redact(text)))
        await self.jira.add_comment(ticket_key, body, retry=False)


__all__ = ["PROPERTY_KEY", "ProgressComments"]
