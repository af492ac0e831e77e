"""`RecordingJiraReporter`: the offline `JiraReporter`, which records what would have been reported.

It is what the factory gives when Jira reporting is off (no JIRA_BASE_URL/JIRA_EMAIL/JIRA_API_TOKEN):
the pipeline reports the same way either way, the demo and the tests can show or assert what Jira
would have received, and nothing leaves the machine. The records are bounded (`maxlen`, oldest
dropped) so a long-running daemon without Jira does not grow without limit.
"""

from __future__ import annotations

import logging
from collections import deque
from dataclasses import dataclass

from app.errors import JiraError
from app.intake.keys import is_valid_key

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class Comment:
    ticket_key: str
    text: str


@dataclass(frozen=True)
class RemoteLink:
    ticket_key: str
    url: str
    title: str


@dataclass(frozen=True)
class Transition:
    ticket_key: str
    name: str


class RecordingJiraReporter:
    """Records `comments`, `links` (one per ticket and url, like Jira's globalId) and `transitions`.

    `available_transitions`: the names `transition` accepts (case-insensitive); None accepts any.
    `fail_with`: a JiraError every write raises instead (a one-off fault for pipeline tests)."""

    def __init__(
        self,
        *,
        account_id: str | None = None,
        available_transitions: set[str] | None = None,
        maxlen: int = 500,
    ) -> None:
        self.account_id = account_id
        self.available_transitions = available_transitions
        self.fail_with: JiraError | None = None
        self.comments: deque[Comment] = deque(maxlen=maxlen)
        self.links: deque[RemoteLink] = deque(maxlen=maxlen)
        self.transitions: deque[Transition] = deque(maxlen=maxlen)

    async def myself(self) -> str | None:
        return self.account_id

    async def comment(self, ticket_key: str, text: str) -> None:
        self._check(ticket_key)
        self.comments.append(Comment(ticket_key, text))
        logger.info("jira_comment_recorded", extra={"ticket": ticket_key})

    async def link_pull_request(self, ticket_key: str, url: str, title: str) -> None:
        self._check(ticket_key)
        for i, link in enumerate(self.links):
            if (link.ticket_key, link.url) == (ticket_key, url):
                self.links[i] = RemoteLink(ticket_key, url, title)  # idempotent on url: update
                return
        self.links.append(RemoteLink(ticket_key, url, title))

    async def transition(self, ticket_key: str, transition_name: str) -> bool:
        self._check(ticket_key)
        allowed = self.available_transitions
        if allowed is not None and transition_name.casefold() not in {n.casefold() for n in allowed}:
            return False
        self.transitions.append(Transition(ticket_key, transition_name))
        return True

    async def aclose(self) -> None:
        return None

    def comments_for(self, ticket_key: str) -> list[str]:
        return [c.text for c in self.comments if c.ticket_key == ticket_key]

    def _check(self, ticket_key: str) -> None:
        if self.fail_with is not None:
            raise self.fail_with
        if not is_valid_key(ticket_key):
            raise JiraError(f"refusing an invalid issue key {ticket_key[:40]!r}")
