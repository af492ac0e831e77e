"""The pull-request interface: GitHub REST (or GHE via GITHUB_API_URL), or a local record."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol


@dataclass(frozen=True)
class PullRequest:
    number: int
    html_url: str
    head: str
    base: str
    title: str
    created: bool  # False when an open PR for the branch already existed and was reused


class PullRequests(Protocol):
    async def open_or_reuse(self, *, head: str, base: str, title: str, body: str) -> PullRequest:
        """Return the open PR whose head is `head` (updating its title/body), else create one.
        Raises GitHubError with a clear message for 401 (bad token), 403 (no permission), 404
        (repo not found or no access), 422 (e.g. no commits between branches); retries 5xx and
        secondary rate limits (honouring Retry-After) with backoff before giving up."""
        ...

    async def aclose(self) -> None:
        """Release the HTTP client."""
        ...
