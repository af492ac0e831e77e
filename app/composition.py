"""The composition root: the one place that builds the service's collaborators.

`create_app(settings, collaborators)` (app/main.py) keeps what it is given; its lifespan calls
`open_services` once, before serving, and puts the resulting `Services` on `app.state.services`;
`app/api/dependencies.py` hands its parts to the routes. Nothing is cached anywhere else: every
factory builds a new object, so a second lifespan (a test, `auto-code recover`) gets fresh clients
instead of the closed ones of the first.

The demo and the tests supply their own collaborators (a scripted editor, in-memory fakes) through
`Collaborators`, the same path production takes with none supplied; no one swaps a collaborator on
a running app.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from app.config import Settings
from app.errors import AutoCodeError
from app.followups.activities import build_activities
from app.followups.deps import FollowupDeps
from app.followups.store import FollowupStore
from app.repositories.wiring import issue_reader, repositories_for, settings_has_file
from app.services.checks.base import Checks
from app.services.checks.factory import build_checks
from app.services.claude_code.base import ClaudeCode
from app.services.claude_code.factory import build_claude_code
from app.services.github.activity_base import PullActivity
from app.services.github.base import PullRequests
from app.services.github.factory import build_pull_requests
from app.services.jira.base import JiraReporter
from app.services.jira.factory import build_jira_reporter
from app.services.jira.issues import IssueReader
from app.services.langfuse.base import Tracer
from app.services.langfuse.factory import build_tracer
from app.services.metrics import ServiceMetrics
from app.services.outbound_scan import SecretScanner
from app.services.runner.deps import PipelineDeps
from app.services.runner.engine import RunEngine
from app.services.runner.operations import attach_operations
from app.services.runner.store import SqlRunStore, make_engine
from app.services.runner.store_async import AsyncRunStore
from app.services.sandbox import build_sandbox
from app.services.sandbox.base import Sandbox
from app.services.sandbox.probe import self_check
from app.services.workspace.base import Workspace
from app.services.workspace.factory import build_workspace

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class Collaborators:
    """Collaborators supplied instead of the ones settings would build (each None is built).

    A supplied collaborator is owned by the service from then on: it is closed with the others
    when the lifespan ends. `jira` supplied means reporting back is on whatever the settings say.
    """

    workspace: Workspace | None = None
    checks: Checks | None = None
    claude: ClaudeCode | None = None
    pull_requests: PullRequests | None = None
    tracer: Tracer | None = None
    jira: JiraReporter | None = None
    # The clock the spend caps read (which UTC day and month it is): tests move it instead of sleeping.
    clock: Callable[[], float] | None = None
    # Reads tickets from Jira's REST API at run start (built when Jira credentials are set).
    issues: IssueReader | None = None
    # GitHub's side of the PRs after they are opened (checks, logs, comments; issue 11), for the one
    # repository of the settings. None: the REST client when the service talks to GitHub, else
    # follow-ups have nothing to read. With REPOSITORIES_FILE each repository gets its own client.
    activity: PullActivity | None = None


@dataclass(frozen=True, slots=True)
class Services:
    """Everything one service lifetime built; read-only once serving starts."""

    settings: Settings
    store: AsyncRunStore
    deps: PipelineDeps
    runner: RunEngine
    # The service's own Jira account: its own comments and edits are not new work.
    jira_account_id: str | None = None
    sandbox: Sandbox | None = field(default=None, repr=False)


def build_deps(settings: Settings, store: AsyncRunStore, given: Collaborators,
               sandbox: Sandbox, scanner: SecretScanner) -> PipelineDeps:
    """The pipeline's collaborators: the supplied ones, the rest built from settings."""
    tracer = given.tracer or build_tracer(settings)
    jira = given.jira
    if jira is None and settings.jira_reporting_enabled:  # reporting back only with credentials
        jira = build_jira_reporter(settings)
    workspace = given.workspace or build_workspace(settings)
    # With REPOSITORIES_FILE each repository has its own PR client; the settings' would have no
    # GitHub repository to address. REPOSITORIES_FILE is checked here (ConfigError naming every
    # problem), and each repository gets its own clone and PR client (app/repositories/).
    single = given.pull_requests or (build_pull_requests(settings) if settings.repositories_file is None
                                     else None)
    repositories = repositories_for(settings, workspace=workspace, pull_requests=single, scanner=scanner)
    pull_requests = single or next(iter(repositories)).pull_requests
    return PipelineDeps(
        settings=settings,
        store=store,
        workspace=workspace,
        checks=given.checks or build_checks(settings, sandbox),
        claude=given.claude or build_claude_code(settings, tracer, sandbox),
        pull_requests=pull_requests,
        repositories=repositories,
        issues=given.issues or issue_reader(settings),
        followups=FollowupDeps(store=FollowupStore(store.sync.engine),  # a PR-activity client per repository
                               activities=build_activities(settings, repositories, given.activity)),
        tracer=tracer,
        jira=jira,
        scanner=scanner,
        clock=given.clock or time.time,
    )


async def prove_sandbox(settings: Settings, sandbox: Sandbox | None = None) -> Sandbox:
    """The sandbox for this service. In production (or with SANDBOX_SELF_CHECK) a real sandboxed
    probe must fail to read the workspace and the database, to reach the network and to leave a
    daemon, or this raises (SandboxError; also when bubblewrap is missing)."""
    sandbox = sandbox or build_sandbox(settings)
    if sandbox.name == "none":
        log.warning("sandbox_disabled: SANDBOX=none - the agent and the checks run WITHOUT isolation "
                    "(development only)")
    elif settings.is_production or settings.sandbox_self_check:
        await self_check(sandbox, settings)
    return sandbox


async def open_services(settings: Settings, given: Collaborators, *,
                        sandbox_proven: bool = False, metrics: ServiceMetrics | None = None) -> Services:
    """Build and start everything (the run store, the pipeline's collaborators, the engine with
    DBOS and the queue). `sandbox_proven`: `auto-code serve` proved the sandbox before uvicorn."""
    # One scanner for the outbound check and the store: no secret value leaves or is stored.
    scanner = SecretScanner.from_settings(settings)
    # The run tables are migrated by engine.start(), under the schema lock, with DBOS's launch.
    store = AsyncRunStore(SqlRunStore(make_engine(settings.system_database_url), redact=scanner.redact))
    sandbox = build_sandbox(settings) if sandbox_proven else await prove_sandbox(settings)
    deps = build_deps(settings, store, given, sandbox, scanner)
    attach_operations(deps, metrics)  # spend ledger and caps, Jira progress comment, metrics
    engine = RunEngine(settings, deps)
    await engine.start()
    account = settings.jira_account_id
    if account is None and deps.jira is not None:
        try:
            account = await deps.jira.myself()
        except AutoCodeError as exc:  # reporting still works; only self-event filtering is weaker
            log.warning("jira_myself_failed", extra={"detail": exc.detail})
    return Services(settings=settings, store=store, deps=deps, runner=engine,
                    jira_account_id=account, sandbox=sandbox)


async def close_services(services: Services) -> None:
    """Stop the engine, then close every collaborator (each failure logged; shutdown goes on)."""
    services.runner.stop()
    deps = services.deps
    if deps.progress is not None:
        await deps.progress.aclose()
    closers = [deps.claude.aclose, deps.pull_requests.aclose, deps.checks.aclose]
    if deps.jira is not None:
        closers.append(deps.jira.aclose)
    if deps.issues is not None:
        closers.append(deps.issues.aclose)
    if deps.followups is not None:
        closers.append(deps.followups.activities.aclose)  # each repository's PR-activity client, once
    if deps.repositories is not None and settings_has_file(services.settings):
        closers.append(deps.repositories.aclose)  # each repository's own PR client
    for closer in closers:
        try:
            await closer()
        except Exception:  # shutdown must go on
            log.exception("close_failed")
    deps.tracer.shutdown()
    services.store.sync.dispose()
