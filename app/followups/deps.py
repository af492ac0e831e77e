"""What follow-up runs need beyond the pipeline's collaborators: the follow-up store (on the run
store's engine) and GitHub's side of the PRs, one `PullActivity` per repository (activities.py).

`followup_deps(deps)` returns `deps.followups` when the composition root set it, else builds it once
from the settings and the deps' repositories and keeps it there (tests and the demo that build
PipelineDeps by hand).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from app.errors import AutoCodeError
from app.followups.activities import PullActivities, build_activities, repo_key
from app.followups.store import FollowupStore
from app.services.github.activity_base import PullActivity


@dataclass
class FollowupDeps:
    store: FollowupStore
    activities: PullActivities  # by the PR table's key; a repository without a client: follow-ups skip

    def activity(self, repository: str) -> PullActivity | None:
        """The client of `repository` (the PR table's key, owner/name lower-cased); None when it is
        not configured or has no GitHub API (local PR records)."""
        return self.activities.get(repository)

    async def service_login(self, repository: str) -> str | None:
        """The account `repository`'s token writes as: its comments are the service's own, never
        steering. GITHUB_SERVICE_LOGIN for GH_TOKEN's repositories, else GET /user once per
        repository (None on failure: asked again next time)."""
        entry = self.activities.entry(repository)
        if entry is None:
            return None
        if entry.login is None and entry.client is not None:
            try:
                entry.login = await entry.client.whoami()
            except AutoCodeError:
                return None
        return entry.login


def followup_deps(deps: Any) -> FollowupDeps:
    existing = getattr(deps, "followups", None)
    if isinstance(existing, FollowupDeps):
        return existing
    from app.followups.track import followup_store

    store = followup_store(deps)
    if store is None:
        raise RuntimeError("follow-ups need the SQL run store (its engine holds the PR table)")
    built = FollowupDeps(store=store, activities=build_activities(deps.settings, deps.repositories or ()))
    deps.followups = built
    return built


def repo_key_for(deps: Any, repository: str) -> str:
    """The PR table's key for a run's repository (by the name its start step recorded): its GitHub
    owner/name lower-cased, else the settings' GITHUB_REPOSITORY, else "local"."""
    config = None
    find = getattr(deps, "repository", None)
    if callable(find):
        try:
            config = find(repository).config
        except Exception:  # an unknown name or an older deps shape: fall back to the settings
            config = None
    return repo_key(deps.settings, config)
