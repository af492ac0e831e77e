"""Reporting back to Jira: REST v3 (`JiraRestReporter`) or a local record (`RecordingJiraReporter`)."""

from app.services.jira.adf import adf_text, to_adf
from app.services.jira.base import JiraReporter
from app.services.jira.client import JiraRestReporter
from app.services.jira.factory import build_jira_reporter
from app.services.jira.recording import Comment, RecordingJiraReporter, RemoteLink, Transition

__all__ = [
    "Comment",
    "JiraReporter",
    "JiraRestReporter",
    "RecordingJiraReporter",
    "RemoteLink",
    "Transition",
    "adf_text",
    "build_jira_reporter",
    "to_adf",
]
