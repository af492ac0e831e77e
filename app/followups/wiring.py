"""The follow-up pieces of one service lifetime, from its `Services` (the composition root builds
`deps.followups`: the store and GitHub's side of the PRs, one client per repository (activities.py);
it closes them).

`followups_of(app)` builds the webhook intake over them once and keeps it on `app.state.followups`;
`start_polling(app)` runs the polling fallback for the lifespan.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from fastapi import Request

from app.config import Settings
from app.followups.activities import PullActivities
from app.followups.closed import pr_closed
from app.followups.deps import followup_deps
from app.followups.intake import GitHubIntake
from app.followups.poller import GitHubPoller
from app.followups.store import FollowupStore


@dataclass
class Followups:
    store: FollowupStore
    activities: PullActivities
    intake: GitHubIntake


def followups_of(app: Any) -> Followups:
    existing: Followups | None = getattr(app.state, "followups", None)
    if existing is not None:
        return existing
    services = app.state.services
    settings: Settings = services.settings
    fu = followup_deps(services.deps)  # the runs' own: one store, each repository's client and login
    intake = GitHubIntake(settings, fu, services.store, services.runner,
                          on_closed=lambda pr, merged: pr_closed(services.deps, pr, merged))
    built = Followups(store=fu.store, activities=fu.activities, intake=intake)
    app.state.followups = built
    return built


def github_intake(request: Request) -> GitHubIntake:
    return followups_of(request.app).intake


def start_polling(app: Any) -> Callable[[], Awaitable[None]]:
    """Start the polling fallback when GITHUB_POLL_INTERVAL_SEC > 0 and some repository talks to
    GitHub (each PR is polled through its own repository's client); returns the coroutine function
    that stops it (a no-op when it did not start)."""
    settings: Settings = app.state.services.settings
    followups = followups_of(app)
    if settings.github_poll_interval_sec <= 0 or not followups.activities.talks_to_github:
        return _nothing
    poller = GitHubPoller(followup_deps(app.state.services.deps), followups.intake,
                          settings.github_poll_interval_sec)
    task = asyncio.create_task(poller.run_forever(), name="github-poller")

    async def stop() -> None:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task

    return stop


async def _nothing() -> None:
    return None
