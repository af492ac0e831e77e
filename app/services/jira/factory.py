"""Build the process's `JiraReporter` from settings (called once, from the lifespan).

`settings.jira_reporting_enabled` (JIRA_BASE_URL, JIRA_EMAIL and JIRA_API_TOKEN all set) → the REST
reporter; otherwise a `RecordingJiraReporter`, which keeps a bounded in-memory record of what would
have been said (visible to the demo and tests) and sends nothing. Cached per Settings object
(Settings is not hashable, so the key is its identity); tests call `cache_clear()`.
"""

from __future__ import annotations

import functools

from app.config import Settings
from app.services.jira.base import JiraReporter
from app.services.jira.client import JiraRestReporter
from app.services.jira.mock_client import RecordingJiraReporter


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
def _build(key: _ById) -> JiraReporter:
    settings = key.settings
    if settings.jira_reporting_enabled:
        return JiraRestReporter(settings)
    return RecordingJiraReporter(account_id=settings.jira_account_id)


def get_jira_reporter(settings: Settings) -> JiraReporter:
    """The REST reporter or the recording one for these settings (one instance per Settings)."""
    return _build(_ById(settings))


def cache_clear() -> None:
    """Forget built instances (tests); close them with `aclose()` first if it matters."""
    _build.cache_clear()
