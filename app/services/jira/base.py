"""The Jira reporting interface: tell the ticket what happened (optional; off without credentials)."""

from __future__ import annotations

from typing import Protocol


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
