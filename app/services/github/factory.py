"""Build the `PullRequests` from settings (the composition root calls it once per service lifetime).

`settings.uses_github_api` (GITHUB_CLIENT=api; unset: production, or a GH_TOKEN) → the GitHub
REST client; otherwise local PR records in `<WORKSPACE_DIR>/pull-requests.json`. Each call builds a
new one.
"""

from __future__ import annotations

from app.config import Settings
from app.services.github.base import PullRequests
from app.services.github.client import GitHubPullRequests
from app.services.github.local import LocalPullRequests

LOCAL_PR_FILE = "pull-requests.json"


def build_pull_requests(settings: Settings) -> PullRequests:
    """The GitHub client or the local records for these settings ."""
    if settings.uses_github_api:
        return GitHubPullRequests(settings)
    return LocalPullRequests(settings.workspace_dir / LOCAL_PR_FILE)

