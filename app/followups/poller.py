"""The polling fallback (issue 11 item 2) for installations GitHub cannot deliver webhooks to.

Every GITHUB_POLL_INTERVAL_SEC (0 = off) each open PR the service opened is checked with
conditional requests (`If-None-Match` with the ETag of the previous answer; GitHub does not count
a 304 against the rate limit): the PR itself (closed? merged? its head), the check runs of its head
commit, its review comments and its conversation. What changed becomes the same `PrEvent` a webhook
would have produced, decided by the same `GitHubIntake.decide_event` — so the same dedup keys, the
same steering rules and the same limits hold, and a poll that finds nothing new costs ~4 free 304s
per PR. Rate limits are the REST client's (rest.py: Retry-After, reset, or at least a minute).
ETags live in the PR's row (`etags`), so a restart does not re-read everything as new. Each PR is
polled through its own repository's client (`FollowupDeps.activity(pr.repository)`); a PR of a
repository with none (no longer configured, or local PR records) is skipped.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from app.errors import AutoCodeError
from app.followups.deps import FollowupDeps
from app.followups.events import FAILING, PrEvent, author_of
from app.followups.intake import Answer, GitHubIntake
from app.followups.store import TrackedPr
from app.services.github.activity_base import PullActivity

log = logging.getLogger(__name__)


class GitHubPoller:
    def __init__(self, fu: FollowupDeps, intake: GitHubIntake, interval_sec: float) -> None:
        self.fu, self.intake, self.interval = fu, intake, interval_sec

    async def run_forever(self) -> None:
        while True:
            try:
                await self.poll_once()
            except Exception:  # a bad poll must not end polling; the next interval tries again
                log.exception("github_poll_failed")
            await asyncio.sleep(self.interval)

    async def poll_once(self) -> list[Answer]:
        """One pass over the open PRs; the answers of the events it found (for logs and tests)."""
        answers: list[Answer] = []
        if not self.fu.activities.talks_to_github:
            return answers
        for pr in await self.fu.store.aopen_prs():
            api = self.fu.activity(pr.repository)
            if pr.stop_reason or api is None:
                continue
            try:
                for ev in await self._events(pr, api):
                    answer = await self.intake.decide_event(pr.repository, ev)
                    log.info(
                        "github_poll_event", extra={"pr_number": pr.number, "trigger": ev.trigger, **answer}
                    )
                    answers.append(answer)
            except AutoCodeError as exc:
                log.warning("github_poll_pr_failed", extra={"pr_number": pr.number, "detail": exc.detail})
        return answers

    async def _etag(self, pr: TrackedPr, what: str) -> str | None:
        value = await self.fu.store.run(self.fu.store.etag, pr.repository, pr.number, what)
        return value if isinstance(value, str) else None

    async def _keep(self, pr: TrackedPr, what: str, value: str | None) -> None:
        if value:
            await self.fu.store.run(self.fu.store.set_etag, pr.repository, pr.number, what, value)

    async def _events(self, pr: TrackedPr, api: PullActivity) -> list[PrEvent]:
        data, etag = await api.changed(f"pulls/{pr.number}", await self._etag(pr, "pull"))
        if isinstance(data, dict):
            await self._keep(pr, "pull", etag)
            await self._keep(pr, "head", str(_get(data, "head", "sha") or ""))
            if data.get("state") == "closed":
                return [
                    PrEvent(
                        action="closed",
                        trigger="closed",
                        merged=data.get("merged") is True,
                        number=pr.number,
                        branch=pr.branch,
                    )
                ]
        head = await self._etag(pr, "head")
        events: list[PrEvent] = []
        if head:
            known = await self._etag(pr, "checks_sha") == head
            data, etag = await api.changed(
                f"commits/{head}/check-runs", await self._etag(pr, "checks") if known else None
            )
            if isinstance(data, dict):
                await self._keep(pr, "checks", etag)
                await self._keep(pr, "checks_sha", head)
                runs = [r for r in data.get("check_runs") or [] if isinstance(r, dict)]
                done = runs and all(r.get("status") == "completed" for r in runs)
                if done and any(r.get("conclusion") in FAILING for r in runs):
                    events.append(
                        PrEvent(
                            action="ci",
                            head_sha=head,
                            trigger=f"ci:{head}",
                            number=pr.number,
                            branch=pr.branch,
                        )
                    )
        me = await self.fu.service_login(pr.repository)
        newest: tuple[str, dict[str, Any]] | None = None
        for what in ("pulls/{n}/comments", "issues/{n}/comments"):
            data, etag = await api.changed(what.format(n=pr.number), await self._etag(pr, what))
            if isinstance(data, list):
                await self._keep(pr, what, etag)
                items = [c for c in data if isinstance(c, dict) and isinstance(c.get("id"), int)
                         and _get(c, "user", "login") != me]  # the service's own words are not news
                if items and (newest is None or items[-1]["id"] > newest[1]["id"]):
                    newest = (what, items[-1])
        if newest is not None:
            kind, c = newest
            review = c.get("pull_request_review_id")
            trigger = (
                f"review:{review}"
                if kind.startswith("pulls") and isinstance(review, int)
                else f"comment:{c['id']}"
            )
            events.append(
                PrEvent(
                    action="review",
                    trigger=trigger,
                    author=author_of(c),
                    body=str(c.get("body") or ""),
                    number=pr.number,
                    branch=pr.branch,
                )
            )
        return events


def _get(data: Any, *keys: str) -> Any:
    for key in keys:
        data = data.get(key) if isinstance(data, dict) else None
    return data
