"""What the composition root (app/composition.py) calls to give the pipeline its repositories and
the Jira issue reader: the start-up check of REPOSITORIES_FILE happens here too (ConfigError)."""

from __future__ import annotations

from app.config import Settings
from app.intake.limits import FieldLimits
from app.repositories.load import load_repositories
from app.repositories.registry import Repositories, build_repositories
from app.services.github.base import PullRequests
from app.services.jira.issues import IssueReader, JiraIssueReader
from app.services.outbound_scan import SecretScanner
from app.services.workspace.base import Workspace


def repositories_for(settings: Settings, *, workspace: Workspace, pull_requests: PullRequests | None,
                     scanner: SecretScanner) -> Repositories:
    """The service's repositories. Without REPOSITORIES_FILE: the one of the environment settings,
    on the `workspace` and `pull_requests` already built (or supplied). Raises ConfigError naming
    every problem of the file."""
    configs = load_repositories(settings)
    return build_repositories(settings, configs, workspace=workspace, pull_requests=pull_requests,
                              scanner=scanner)


def issue_reader(settings: Settings) -> IssueReader | None:
    """Reads tickets from Jira's REST API when Jira credentials are set; None otherwise."""
    if not settings.jira_reporting_enabled:
        return None
    return JiraIssueReader(settings, limits=FieldLimits.from_settings(settings))



def settings_has_file(settings: Settings) -> bool:
    """The repositories have PR clients of their own (closed with the service) only with a file."""
    return settings.repositories_file is not None


__all__ = ["issue_reader", "repositories_for", "settings_has_file"]
