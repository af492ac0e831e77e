"""Build the process's `PullRequests` from settings (called once, from the lifespan).

`settings.uses_github_api` (GITHUB_CLIENT=api, or a GH_TOKEN with GITHUB_CLIENT unset) → the GitHub
REST client; otherwise local PR records in `<WORKSPACE_DIR>/pull-requests.json`. Cached per
Settings object (Settings is not hashable, so the key is its identity); tests call `cache_clear()`.
"""

from __future__ import annotations

from app.config import Settings
from app.services.github.base import PullRequests
from app.services.github.client import GitHubPullRequests
from app.services.github.local import LocalPullRequests
from app.services.singleton import per_settings

LOCAL_PR_FILE = "pull-requests.json"


@per_settings
def get_pull_requests(settings: Settings) -> PullRequests:
    """The GitHub client or the local records for these settings (one instance per Settings)."""
    if settings.uses_github_api:
        return GitHubPullRequests(settings)
    return LocalPullRequests(settings.workspace_dir / LOCAL_PR_FILE)


cache_clear = get_pull_requests.cache_clear
