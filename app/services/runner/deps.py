"""The collaborators one pipeline run needs, injected into the runner by the lifespan."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from app.config import Settings
from app.repositories.config import RepositoryConfig
from app.repositories.fairness import RepositorySlots, queue_concurrency
from app.repositories.registry import Repositories, Repository
from app.services.checks.base import Checks
from app.services.claude_code.base import ClaudeCode
from app.services.github.base import PullRequests
from app.services.jira.base import JiraReporter
from app.services.jira.issues import IssueReader
from app.services.langfuse.base import Tracer
from app.services.outbound_scan import SecretScanner
from app.services.runner.store_async import AsyncRunStore
from app.services.workspace.base import Workspace

if TYPE_CHECKING:  # runtime imports would be circular (progress imports the runner's models)
    from app.followups.deps import FollowupDeps
    from app.services.metrics import ServiceMetrics
    from app.services.runner.progress import ProgressHub
    from app.services.spend import SpendGuard


@dataclass
class PipelineDeps:
    settings: Settings
    store: AsyncRunStore
    workspace: Workspace
    checks: Checks
    claude: ClaudeCode
    pull_requests: PullRequests
    tracer: Tracer
    jira: JiraReporter | None = None  # None: reporting back to Jira is off
    # The outbound check: what leaves (commit, push, PR, Jira) is scanned for these secret values,
    # and the store redacts them (build_deps gives both the same scanner).
    scanner: SecretScanner = field(default_factory=SecretScanner)
    # Set by the engine just before DBOS shuts down. A step whose agent dies because the service is
    # stopping must not record that as the run's failure: the run resumes after the restart.
    stopping: bool = False
    # Issue 13 (all optional: the fast pipeline tests run without them). The run's Jira progress
    # comment (runner/progress.py), the spend ledger and caps (services/spend/), this process's
    # metrics (services/metrics/), and the clock the spend caps read (tests move it).
    progress: ProgressHub | None = None
    spend: SpendGuard | None = None
    metrics: ServiceMetrics | None = None
    clock: Callable[[], float] = time.time
    # After the PR (issue 11): the follow-up store and GitHub's side of the PR (app/followups/deps.py;
    # None: built from the settings on first use).
    followups: FollowupDeps | None = None
    # The repositories by name (app/repositories/registry.py). None: the one repository of the
    # settings, worked on by `workspace` and `pull_requests` above (the fast tests' bench).
    repositories: Repositories | None = None
    # Reads the ticket from Jira's REST API when the run starts (None: no Jira credentials; the
    # delivery's copy is the ticket).
    issues: IssueReader | None = None

    # Each repository's share of MAX_CONCURRENT_RUNS in this process (app/repositories/fairness.py).
    slots: RepositorySlots = field(init=False, repr=False)

    def __post_init__(self) -> None:
        if self.repositories is None:
            config = RepositoryConfig.from_settings(self.settings)
            self.repositories = Repositories([Repository(config, self.workspace, self.pull_requests)])
        shares = {c.name: c.max_concurrent_runs for c in self.repositories.configs if c.max_concurrent_runs}
        self.slots = RepositorySlots(self.settings.max_concurrent_runs, shares)

    @property
    def queue_concurrency(self) -> int:
        """Runs this process takes from the queue at once (more than it works on: fairness.py)."""
        return queue_concurrency(self.settings.max_concurrent_runs, len(self.repositories or ()))

    def repository(self, name: str) -> Repository:
        """The repository a run was routed to, by the name its `start` step recorded ("" in runs
        recorded before routing existed: the default one). Raises ConfigError for an unknown name."""
        repos = self.repositories
        assert repos is not None  # set by __post_init__
        if not name:
            return next((r for r in repos if r.config.default), next(iter(repos)))
        return repos.get(name)
