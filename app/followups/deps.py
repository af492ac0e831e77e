"""What follow-up runs need beyond the pipeline's collaborators: the follow-up store (on the run
store's engine) and GitHub's side of the PR (`PullActivity`).

`followup_deps(deps)` returns `deps.followups` when the composition root set it, else builds it once
from the settings and keeps it there (tests and the demo that build PipelineDeps by hand).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from app.errors import AutoCodeError
from app.followups.store import FollowupStore
from app.services.github.activity_base import PullActivity


@dataclass
class FollowupDeps:
    store: FollowupStore
    activity: PullActivity | None  # None: no GitHub API (local PR records): follow-ups skip
    login: str | None = None  # the service's own GitHub account (GITHUB_SERVICE_LOGIN, else GET /user)

    async def service_login(self) -> str | None:
        """The account the token writes as: its comments are the service's own, never steering."""
        if self.login is None and self.activity is not None:
            try:
                self.login = await self.activity.whoami()
            except AutoCodeError:
                return None  # asked again next time
        return self.login


def followup_deps(deps: Any) -> FollowupDeps:
    existing = getattr(deps, "followups", None)
    if isinstance(existing, FollowupDeps):
        return existing
    from app.followups.track import followup_store
    from app.followups.wiring import build_activity

    store = followup_store(deps)
    if store is None:
        raise RuntimeError("follow-ups need the SQL run store (its engine holds the PR table)")
    built = FollowupDeps(store=store, activity=build_activity(deps.settings),
                         login=deps.settings.github_service_login)
    deps.followups = built
    return built


def repo_key_for(deps: Any, repository: str) -> str:
    """The PR table's key for a run's repository: its GitHub owner/name lower-cased, else the
    settings' GITHUB_REPOSITORY, else "local"."""
    slug = None
    find = getattr(deps, "repository", None)
    if callable(find):
        try:
            slug = find(repository).config.github_slug
        except Exception:  # an unknown name or an older deps shape: fall back to the settings
            slug = None
    return str(slug or deps.settings.github_repo_slug or "local").lower()
