"""Build the process's `JiraReporter` from settings (called once, from the lifespan).

`settings.jira_reporting_enabled` (JIRA_BASE_URL, JIRA_EMAIL and JIRA_API_TOKEN all set) → the REST
reporter; otherwise a `RecordingJiraReporter`, which keeps a bounded in-memory record of what would
have been said (visible to the demo and tests) and sends nothing. Cached per Settings object
(Settings is not hashable, so the key is its identity); tests call `cache_clear()`.
"""

from __future__ import annotations

from app.config import Settings
from app.services.jira.base import JiraReporter
from app.services.jira.client import JiraRestReporter
from app.services.jira.recording import RecordingJiraReporter
from app.services.singleton import per_settings


@per_settings
def get_jira_reporter(settings: Settings) -> JiraReporter:
    """The REST reporter or the recording one for these settings (one instance per Settings)."""
    if settings.jira_reporting_enabled:
        return JiraRestReporter(settings)
    return RecordingJiraReporter(account_id=settings.jira_account_id)


cache_clear = get_jira_reporter.cache_clear
