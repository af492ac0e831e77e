"""Pull requests: GitHub REST (`GitHubPullRequests`) or local records (`LocalPullRequests`)."""

from app.services.github.base import PullRequest, PullRequests
from app.services.github.client import GitHubPullRequests
from app.services.github.factory import build_pull_requests
from app.services.github.local import LocalPullRequests

__all__ = [
    "GitHubPullRequests",
    "LocalPullRequests",
    "PullRequest",
    "PullRequests",
    "build_pull_requests",
]
