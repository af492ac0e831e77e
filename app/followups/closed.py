"""The end of a PR's life (issue 11 item 5): merged → a Jira comment and, with
JIRA_MERGED_TRANSITION, a transition by status name; closed unmerged → a comment. Called once per
PR (the store's close is the one that flips its state). Best effort, like every Jira report: a Jira
failure is logged, never a reason to answer GitHub with an error. Follow-up work for the PR has
stopped already (its state is no longer `open`; an active follow-up skips at its next check)."""

from __future__ import annotations

import logging
import time
from typing import Any

from app.followups.store import TrackedPr

log = logging.getLogger(__name__)


async def pr_closed(deps: Any, pr: TrackedPr, merged: bool) -> None:
    jira, settings = deps.jira, deps.settings
    hours = (time.time() - pr.opened_at) / 3600
    rounds = (f"{pr.ci_rounds} CI-fix and {pr.review_rounds} review round(s), "
              f"follow-up cost ${pr.cost_usd:.2f}")
    log.info("pull_request_closed", extra={"ticket": pr.ticket, "pr_number": pr.number, "merged": merged,
                                           "hours_open": round(hours, 2), "ci_rounds": pr.ci_rounds,
                                           "review_rounds": pr.review_rounds})
    if jira is None:
        return
    url = pr.html_url or f"#{pr.number}"
    if merged:
        text = f"The pull request {url} was merged after {hours:.1f} h ({rounds})."
    else:
        text = f"The pull request {url} was closed without merging ({rounds}). auto-code stops working on it."
    try:
        await jira.comment(pr.ticket, deps.scanner.redact(text))
        if merged and settings.jira_merged_transition:
            await jira.transition(pr.ticket, settings.jira_merged_transition)
    except Exception as exc:  # best effort: the PR's end is recorded whatever Jira says
        log.warning("jira_pr_closed_report_failed", extra={"ticket": pr.ticket, "detail": str(exc)})
