"""Build a `JiraReporter` from settings (the composition root calls it once per service lifetime).

`settings.jira_reporting_enabled` (JIRA_BASE_URL, JIRA_EMAIL and JIRA_API_TOKEN all set) → the REST
reporter; otherwise a `RecordingJiraReporter`, which keeps a bounded in-memory record of what would
have been said (visible to the demo and tests) and sends nothing. Each call builds a new one.
"""

from __future__ import annotations

from app.config import Settings
from app.services.jira.base import JiraReporter
from app.services.jira.client import JiraRestReporter
from app.services.jira.recording import RecordingJiraReporter


def build_jira_reporter(settings: Settings) -> JiraReporter:
    """The REST reporter or the recording one for these settings."""
    if settings.jira_reporting_enabled:
        return JiraRestReporter(settings)
    return RecordingJiraReporter(account_id=settings.jira_account_id)

