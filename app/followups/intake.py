"""A GitHub delivery, authenticated and parsed, → a follow-up run, a PR's end, or `ignored`.

`GitHubIntake.handle(event, delivery_id, payload)` answers with DESIGN's intake shapes:
`{"status": "queued"|"duplicate", "run_id"}` or `{"status": "ignored", "reason"}`.

1. A delivery id seen before gets the answer it got then (GitHub redelivers with the same GUID).
2. `classify` (events.py); the delivery's repository (`repository.full_name`, lower-cased) must be
   one the service is configured for (REPOSITORIES_FILE, or the one of the settings), and that
   repository's own PR-activity client and account answer for it (FollowupDeps); then per PR
   event: the PR must be one the service opened (recorded in `ac_pull_requests` by the run that
   opened it), still open, its loop not stopped by a limit; reviews and comments must come from
   someone allowed to steer (steering.py).
3. A close ends the PR's follow-up life (state merged/closed; `on_closed` tells Jira once).
4. Otherwise `submit(ticket, kind=ci_fix|review_fix, dedup_key="<repo>#<n>:<trigger>")`: a storm
   of deliveries for one trigger (a check suite's runs, a review's comments) is one run while it is
   active. The answer is recorded under the delivery id after it is decided: a crash before that
   loses nothing (the redelivery is decided again, and dedup still holds).
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from typing import Any, Protocol

from app.config import Settings
from app.followups.activities import repo_key
from app.followups.deps import FollowupDeps
from app.followups.events import Ignored, PrEvent, classify
from app.followups.steering import steer_refusal
from app.followups.store import Delivery, FollowupStore, TrackedPr
from app.models import RunKind, SubmitResult, Ticket
from app.services.runner.store_async import AsyncRunStore

log = logging.getLogger(__name__)

Answer = dict[str, str]


class Submitter(Protocol):
    async def submit(
        self,
        ticket: Ticket,
        *,
        kind: RunKind = "ticket",
        dedup_key: str | None = None,
        parent_run_id: str | None = None,
        pr_number: int | None = None,
    ) -> SubmitResult:
        """RunEngine.submit: a durable run, or the active one holding `dedup_key`."""
        ...


def repository_key(settings: Settings) -> str:
    """How the PR tables name the settings' repository: `owner/name` lower-cased, or `local`."""
    return repo_key(settings)


class GitHubIntake:
    def __init__(
        self,
        settings: Settings,
        fu: FollowupDeps,
        runs: AsyncRunStore,
        engine: Submitter,
        *,
        on_closed: Callable[[TrackedPr, bool], Awaitable[None]] | None = None,
    ) -> None:
        self.settings, self.fu, self.runs, self.engine = settings, fu, runs, engine
        self.store: FollowupStore = fu.store
        self.on_closed = on_closed

    async def handle(self, event: str, delivery_id: str, payload: dict[str, Any]) -> Answer:
        prior = await self.store.adelivery(delivery_id)
        if prior is not None:
            if prior.run_id:
                return {"status": "duplicate", "run_id": prior.run_id}
            return {
                "status": "ignored",
                "reason": f"delivery {delivery_id} was received before: {prior.reason}",
            }
        answer = await self._decide(event, payload)
        await self.store.arecord_delivery(
            Delivery(
                delivery_id=delivery_id,
                event=event,
                status=answer["status"],
                run_id=answer.get("run_id"),
                reason=answer.get("reason"),
            )
        )
        log.info("github_webhook", extra={"webhook_event": event, "delivery": delivery_id, **answer})
        return answer

    async def _decide(self, event: str, payload: dict[str, Any]) -> Answer:
        found = classify(event, payload)
        if isinstance(found, Ignored):
            return _ignored(found.reason)
        if not self.settings.followups_enabled:
            return _ignored("follow-ups are off (FOLLOWUPS_ENABLED=false)")
        repo = self._repository(payload)
        if not self.fu.activities.configured(repo):
            return _ignored(f"repository {repo[:200]} is not one auto-code is configured for "
                            "(REPOSITORIES_FILE, or GITHUB_REPOSITORY): no follow-ups")
        answers = [await self.decide_event(repo, ev) for ev in found]
        # A delivery naming several PRs: the first run started answers it (the rest are logged).
        return next((a for a in answers if a["status"] != "ignored"), answers[0])

    def _repository(self, payload: dict[str, Any]) -> str:
        repo = payload.get("repository")
        full = repo.get("full_name") if isinstance(repo, dict) else None
        return str(full).lower() if isinstance(full, str) and full else repository_key(self.settings)

    async def decide_event(self, repo: str, ev: PrEvent) -> Answer:
        """One PR event (from a delivery or the poller) → a run, a close, or ignored. `repo`: the
        PR table's key of the repository it happened in (its client decides who may steer)."""
        pr = await self.store.aget(repo, ev.number)
        if pr is None or (ev.branch and ev.branch != pr.branch):
            return _ignored(f"pull request #{ev.number} in {repo} was not opened by auto-code")
        if pr.state != "open":
            return _ignored(f"pull request #{ev.number} is {pr.state}: no further work")
        if ev.action == "closed":
            first = await self.store.run(self.store.close, repo, ev.number, merged=ev.merged)
            if first and self.on_closed is not None:
                await self.on_closed(pr, ev.merged)
            what = "merged" if ev.merged else "closed without merging"
            return _ignored(f"pull request #{ev.number} {what}: follow-up work for it stopped")
        if pr.stop_reason:
            return _ignored(f"follow-ups for #{ev.number} were stopped: {pr.stop_reason}")
        if ev.author is not None:
            login = await self.fu.service_login(repo)
            refusal = await steer_refusal(ev.author, ev.body, self.settings, self.fu.activity(repo), login)
            if refusal:
                return _ignored(f"{refusal}: only people allowed to steer the change count")
        parent = await self.runs.get_run_row(pr.parent_run_id)
        if parent is None:
            return _ignored(f"the run that opened #{ev.number} ({pr.parent_run_id}) is gone")
        kind: RunKind = "ci_fix" if ev.action == "ci" else "review_fix"
        result = await self.engine.submit(
            Ticket.model_validate_json(parent.ticket_json),
            kind=kind,
            dedup_key=f"{repo}#{ev.number}:{ev.trigger}",
            parent_run_id=pr.parent_run_id,
            pr_number=ev.number,
        )
        return {"status": result.status, "run_id": result.run_id}


def _ignored(reason: str) -> Answer:
    return {"status": "ignored", "reason": reason}
