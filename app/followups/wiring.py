"""The follow-up collaborators of one service lifetime, built once from its `Services`.

Interim home until the composition root builds them (app/composition.py): `followups_of(app)`
builds them on first use and keeps them on `app.state.followups`; the lifespan's end closes nothing
of theirs that the services do not (the REST client is closed with `aclose`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from fastapi import Request

from app.config import Settings
from app.followups.closed import pr_closed
from app.followups.deps import followup_deps
from app.followups.intake import GitHubIntake
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
