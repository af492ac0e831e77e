"""The Jira reporting interface: tell the ticket what happened (optional; off without credentials)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Protocol


@dataclass(frozen=True)
class JiraComment:
    """A comment as Jira lists it: its id, its author's accountId and its ADF body."""

    id: str
    author_account_id: str | None
    body: dict[str, Any]

    @classmethod
    def of(cls, item: Any) -> JiraComment | None:
        """From one entry of Jira's comment page (None for an entry without an id)."""
        if not isinstance(item, dict) or not item.get("id"):
            return None
        author = item.get("author")
        account = author.get("accountId") if isinstance(author, dict) else None
        body = item.get("body")
        return cls(id=str(item["id"]), author_account_id=str(account) if account else None,
                   body=body if isinstance(body, dict) else {})


class JiraReporter(Protocol):
    async def myself(self) -> str | None:
        """The service account's accountId (GET /rest/api/3/myself), or None when unknown."""
        ...

    async def comment(self, ticket_key: str, text: str) -> None:
        """Add a plain-text comment (sent as ADF). Raises JiraError."""
        ...

    async def link_pull_request(self, ticket_key: str, url: str, title: str) -> None:
        """Add a remote link to the PR (idempotent on url). Raises JiraError."""
        ...

    async def transition(self, ticket_key: str, transition_name: str) -> bool:
        """Move the ticket through the transition with that name; False when it is not available
        from the ticket's current status. Raises JiraError."""
        ...

    async def aclose(self) -> None: ...


class JiraComments(Protocol):
    """Comments as objects, for the run's one progress comment (edited in place)."""

    async def myself(self) -> str | None:
        """The service account's accountId, or None when unknown."""
        ...

    async def list_comments(self, ticket_key: str, *, limit: int = 200) -> list[JiraComment]:
        """The issue's comments, newest first, at most `limit`. Raises JiraError."""
        ...

    async def add_comment(self, ticket_key: str, body: dict[str, Any], *, retry: bool = True,
                          properties: dict[str, Any] | None = None) -> str:
        """Post an ADF comment (with optional comment properties); the new comment's id.
        `retry=False`: a single attempt. Raises JiraError."""
        ...

    async def update_comment(self, ticket_key: str, comment_id: str, body: dict[str, Any]) -> None:
        """Replace the body of one of our comments. Raises JiraError (403: not ours; 404: gone)."""
        ...

    async def transition(self, ticket_key: str, transition_name: str) -> bool:
        """As `JiraReporter.transition`."""
        ...
