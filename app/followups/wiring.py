"""The follow-up pieces of one service lifetime, from its `Services` (the composition root builds
`deps.followups`: the store and GitHub's side of the PRs; it closes the REST client).

`followups_of(app)` builds the webhook intake over them once and keeps it on `app.state.followups`;
`start_polling(app)` runs the polling fallback for the lifespan.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from fastapi import Request

from app.config import Settings
from app.followups.closed import pr_closed
from app.followups.deps import followup_deps
from app.followups.intake import GitHubIntake
from app.followups.poller import GitHubPoller
from app.followups.store import FollowupStore
from app.services.github.activity_base import PullActivity


@dataclass
class Followups:
    store: FollowupStore
    activity: PullActivity | None
    intake: GitHubIntake


def build_activity(settings: Settings) -> PullActivity | None:
    """The GitHub REST `PullActivity` when the service talks to GitHub; None with local PR records."""
    if not settings.uses_github_api:
        return None
    if settings.repositories_file is not None and not settings.github_repo_slug:
        # Several repositories (issue 12): the settings name no GitHub repository of their own, and
        # one PR-activity client per repository (app.repositories.registry.github_settings_for) is
        # not built yet. Follow-ups stay off rather than read the wrong repository or stop start-up.
        logging.getLogger(__name__).warning(
            "followups_off", extra={"reason": "REPOSITORIES_FILE: no per-repository PR activity yet"})
        return None
    from app.services.github.activity import github_activity

    return github_activity(settings)


def followups_of(app: Any) -> Followups:
    existing: Followups | None = getattr(app.state, "followups", None)
    if existing is not None:
        return existing
    services = app.state.services
    settings: Settings = services.settings
    fu = followup_deps(services.deps)  # the runs' own: one store, one GitHub client, one login
    intake = GitHubIntake(settings, fu, services.store, services.runner,
                          on_closed=lambda pr, merged: pr_closed(services.deps, pr, merged))
    built = Followups(store=fu.store, activity=fu.activity, intake=intake)
    app.state.followups = built
    return built


def github_intake(request: Request) -> GitHubIntake:
    return followups_of(request.app).intake


def start_polling(app: Any) -> Callable[[], Awaitable[None]]:
    """Start the polling fallback when GITHUB_POLL_INTERVAL_SEC > 0 and the service talks to GitHub;
    returns the coroutine function that stops it (a no-op when it did not start)."""
    settings: Settings = app.state.services.settings
    followups = followups_of(app)
    if settings.github_poll_interval_sec <= 0 or followups.activity is None:
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
