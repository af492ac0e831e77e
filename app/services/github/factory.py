"""Build the process's `PullRequests` from settings (called once, from the lifespan).

`settings.uses_github_api` (GITHUB_CLIENT=api, or a GH_TOKEN with GITHUB_CLIENT unset) → the GitHub
REST client; otherwise local PR records in `<WORKSPACE_DIR>/pull-requests.json`. Cached per
Settings object (Settings is not hashable, so the key is its identity); tests call `cache_clear()`.
"""

from __future__ import annotations

import functools

from app.config import Settings
from app.services.github.base import PullRequests
from app.services.github.client import GitHubPullRequests
from app.services.github.mock_client import LocalPullRequests

LOCAL_PR_FILE = "pull-requests.json"


class _ById:
    """Hashes a Settings object by identity and keeps it alive, so its id cannot be reused."""

    __slots__ = ("settings",)

    def __init__(self, settings: Settings) -> None:
        self.settings = settings

    def __hash__(self) -> int:
        return id(self.settings)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, _ById) and other.settings is self.settings


@functools.cache
def _build(key: _ById) -> PullRequests:
    settings = key.settings
    if settings.uses_github_api:
        return GitHubPullRequests(settings)
    return LocalPullRequests(settings.workspace_dir / LOCAL_PR_FILE)


def get_pull_requests(settings: Settings) -> PullRequests:
    """The GitHub client or the local records for these settings (one instance per Settings)."""
    return _build(_ById(settings))


def cache_clear() -> None:
    """Forget built instances (tests); the caller closes them with `aclose()` first if it cares."""
    _build.cache_clear()
