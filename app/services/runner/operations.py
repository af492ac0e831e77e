"""Wiring of issue 13's collaborators onto `PipelineDeps`: the spend ledger and caps, the Jira
progress comment, and the process's metrics. The composition root calls `attach_operations` once,
before the engine starts; each part is optional and off when its settings say so.

- Spend (always on): a `SqlSpendLedger` on the run database with the configured caps; without caps
  it still records every call by token kind (the dashboard's spend page reads it).
- Progress comment: when Jira reporting is on and JIRA_PROGRESS_COMMENTS (default true) and the
  reporter can handle comments as objects (the REST reporter). Cap warnings are commented on the
  ticket of the run that crossed the warning ratio, in the background.
- Metrics: the app's `ServiceMetrics` (per-app registry).

`cancel_run` is an operator's cancel as the runs API and the dashboard do it: the engine ends the
run, then the run's progress comment is told (the engine's cancel knows nothing of Jira).
"""

from __future__ import annotations

import logging
from typing import cast

from app.services.jira.base import JiraComments
from app.services.jira.progress import ProgressComments
from app.services.metrics import ServiceMetrics
from app.services.runner.deps import PipelineDeps
from app.services.runner.engine import RunEngine
from app.services.runner.progress import ProgressHub
from app.services.spend import CapPolicy, CapStatus, SpendGuard, SqlSpendLedger

log = logging.getLogger(__name__)

_COMMENT_METHODS = ("list_comments", "add_comment", "update_comment", "myself", "transition")


def attach_operations(deps: PipelineDeps, metrics: ServiceMetrics | None = None) -> PipelineDeps:
    """Set `deps.spend`, `deps.progress` and `deps.metrics` (returns `deps`)."""
    settings = deps.settings
    deps.metrics = metrics
    jira = deps.jira
    if (jira is not None and settings.jira_progress_comments
            and all(hasattr(jira, name) for name in _COMMENT_METHODS)):
        comments_api = cast(JiraComments, jira)
        deps.progress = ProgressHub(
            ProgressComments(comments_api, deps.scanner), comments_api, deps.store,
            timeout_sec=settings.jira_progress_timeout_sec, public_base_url=settings.public_base_url,
            start_transition=settings.jira_start_transition, clock=lambda: deps.clock(),
        )
    hub = deps.progress

    def announce(run_id: str, ticket: str, cap: CapStatus) -> None:
        if hub is not None:
            hub.notice(ticket, f"auto-code spend warning: {cap.describe()}. At 100% new runs wait "
                               f"until a new day or month begins or the cap is raised.")

    ledger = SqlSpendLedger(deps.store.sync.engine, CapPolicy.from_settings(settings),
                            clock=lambda: deps.clock())
    deps.spend = SpendGuard(ledger, deps.store.sync.engine, metrics=metrics, announce=announce)
    return deps


async def cancel_run(engine: RunEngine, run_id: str) -> None:
    """End an active run `cancelled` (`RunEngine.cancel`: NotFound, BadRequest `run_finished`),
    then have its Jira progress comment say so, in the background (best effort, never the cancel's
    failure): without this the comment would say "working" for good, as no report step runs."""
    await engine.cancel(run_id)
    if engine.deps.progress is not None:
        engine.deps.progress.cancelled(run_id)


__all__ = ["attach_operations", "cancel_run"]
