"""GitHub's side of the PRs, per repository: one `PullActivity` (checks, job logs, reviews, replies,
comments, permissions) for each configured repository, found by the PR table's key (`repo_key`:
its owner/name lower-cased, "local" for local PR records). That key is what a tracked PR's row, a
follow-up run's `FollowupContext.repository` and a webhook's `repository.full_name` (lower-cased)
carry, so each of them reaches the client of its own repository and never another's.

`build_activities` is called once per service lifetime (the composition root; `followup_deps` for
hand-built deps). Each repository's client is built from `github_settings_for(settings, config)`:
its own slug, API URL (GitHub Enterprise per repository) and token. `PullActivities.aclose` closes
every client once.

The service's own account per repository (`RepoActivity.login`): GITHUB_SERVICE_LOGIN names the
account of GH_TOKEN, so it is taken for the repositories that use GH_TOKEN; a repository with a
token of its own (`token_env`) learns its account from `GET /user` on first use (FollowupDeps).
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from app.config import Settings
from app.repositories.config import RepositoryConfig
from app.repositories.registry import Repository, github_settings_for
from app.services.github.activity_base import PullActivity

log = logging.getLogger(__name__)


def repo_key(settings: Settings, config: RepositoryConfig | None = None) -> str:
    """The PR table's key for a repository: its GitHub owner/name lower-cased, else the settings'
    GITHUB_REPOSITORY, else "local" (PR records kept by the service, no GitHub repository).
    `config` None: the settings' own repository."""
    slug = config.github_slug if config is not None else None
    return str(slug or settings.github_repo_slug or "local").lower()


@dataclass
class RepoActivity:
    """One repository's client (None: no GitHub API, local PR records) and its token's account."""

    client: PullActivity | None
    login: str | None = None  # known (GITHUB_SERVICE_LOGIN) or learned once (GET /user)


class PullActivities:
    """The configured repositories' PR-activity clients by PR-table key (see the module docstring)."""

    def __init__(self, entries: Mapping[str, RepoActivity]) -> None:
        self._by_key = dict(entries)

    def configured(self, key: str) -> bool:
        """Whether `key` (owner/name lower-cased) is one of the service's repositories."""
        return key in self._by_key

    def entry(self, key: str) -> RepoActivity | None:
        return self._by_key.get(key)

    def get(self, key: str) -> PullActivity | None:
        """The repository's client; None when it is not configured or has no GitHub API."""
        found = self._by_key.get(key)
        return found.client if found is not None else None

    @property
    def keys(self) -> list[str]:
        return list(self._by_key)

    @property
    def talks_to_github(self) -> bool:
        """Some repository has a client (what the poller needs to have anything to poll)."""
        return any(e.client is not None for e in self._by_key.values())

    async def aclose(self) -> None:
        """Close each client once; a failure is logged and the others are still closed."""
        seen: set[int] = set()
        for entry in self._by_key.values():
            if entry.client is None or id(entry.client) in seen:
                continue
            seen.add(id(entry.client))
            try:
                await entry.client.aclose()
            except Exception:  # shutdown goes on
                log.exception("close_failed")


def build_activities(settings: Settings, repositories: Iterable[Repository],
                     given: PullActivity | None = None) -> PullActivities:
    """One entry per configured repository. Without REPOSITORIES_FILE the one repository's client is
    `given` (a test's, the demo's offline one) or the REST client of the settings, exactly as before;
    with the file, each repository's own REST client when the service talks to GitHub."""
    single = settings.repositories_file is None
    entries: dict[str, RepoActivity] = {}
    for repo in repositories:
        config = repo.config
        key = repo_key(settings, config)
        if key in entries:  # two entries on one GitHub repository: the PR table cannot tell them apart
            continue
        client: PullActivity | None = None
        if single and given is not None:
            client = given
        elif settings.uses_github_api:
            from app.services.github.activity import github_activity

            client = github_activity(settings if single else github_settings_for(settings, config))
        login = settings.github_service_login if config.token_env is None else None
        entries[key] = RepoActivity(client=client, login=login)
    return PullActivities(entries)


__all__ = ["PullActivities", "RepoActivity", "build_activities", "repo_key"]
