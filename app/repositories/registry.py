"""`Repositories`: the service's repositories by name, each with its own workspace and pull requests.

Built once by the composition root (`build_repositories`) from the configs `load_repositories`
checked at start-up. Each repository gets:
- its own `GitWorkspace` (the one implementation, with all its hardening): its shared clone,
  worktrees, transit repositories and lock under `<WORKSPACE_DIR>/repos/<name>/`, its URL, base
  branch and token. The single repository of the environment settings keeps the old layout
  (`<WORKSPACE_DIR>/repo`), so an existing deployment's clone is used as it is;
- its own `PullRequests`: the GitHub REST client on its GitHub repository, API URL and token, or
  local records in its own directory.
Runs look their repository up by the name their `start` step recorded (`get(name)`); follow-up runs
(CI and review fixes) by their parent run's.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path

from app.config import Settings
from app.errors import ConfigError
from app.models import Ticket
from app.repositories.config import DEFAULT_NAME, RepositoryConfig
from app.repositories.routing import Routed, Unroutable, choose, ticket_facts
from app.services.github.base import PullRequests
from app.services.github.client import GitHubPullRequests
from app.services.github.local import LocalPullRequests
from app.services.outbound_scan import SecretScanner
from app.services.workspace.base import Workspace
from app.services.workspace.client import GitWorkspace

LOCAL_PR_FILE = "pull-requests.json"
REPOS_DIR = "repos"


@dataclass(frozen=True)
class Repository:
    """One repository: what the operator configured, and the collaborators that work on it."""

    config: RepositoryConfig
    workspace: Workspace
    pull_requests: PullRequests

    @property
    def name(self) -> str:
        return self.config.name


class Repositories:
    """The repositories by name (see the module docstring)."""

    def __init__(self, repositories: Sequence[Repository]) -> None:
        self._by_name = {r.name: r for r in repositories}

    def get(self, name: str) -> Repository:
        """The repository of that name; ConfigError when there is none (a run recorded under a
        repository since removed from the file: it fails visibly, naming it)."""
        try:
            return self._by_name[name]
        except KeyError:
            raise ConfigError(f"repository {name!r} is not configured (REPOSITORIES_FILE)") from None

    def __iter__(self) -> Iterator[Repository]:
        return iter(self._by_name.values())

    def __len__(self) -> int:
        return len(self._by_name)

    @property
    def names(self) -> list[str]:
        return list(self._by_name)

    @property
    def configs(self) -> list[RepositoryConfig]:
        return [r.config for r in self._by_name.values()]

    def route(self, ticket: Ticket) -> Routed | Unroutable:
        """The one repository for this ticket, or why there is none (routing.py)."""
        return choose(self.configs, ticket_facts(ticket))

    async def aclose(self) -> None:
        """Close every repository's PR client (each once, whatever fails)."""
        seen: set[int] = set()
        for repo in self:
            if id(repo.pull_requests) not in seen:
                seen.add(id(repo.pull_requests))
                await repo.pull_requests.aclose()


def repository_root(settings: Settings, config: RepositoryConfig) -> Path:
    """Where a repository's clone and worktrees live (the implicit single repository: WORKSPACE_DIR)."""
    if settings.repositories_file is None and config.name == DEFAULT_NAME:
        return settings.workspace_dir
    return settings.workspace_dir / REPOS_DIR / config.name


def build_repositories(settings: Settings, configs: Sequence[RepositoryConfig], *,
                       workspace: Workspace | None = None, pull_requests: PullRequests | None = None,
                       scanner: SecretScanner | None = None) -> Repositories:
    """One `Repository` per config. `workspace`/`pull_requests`: collaborators already built (or
    supplied by a test) for the single repository of the environment settings, used for it instead
    of new ones. `scanner`: each repository's own token is registered with the outbound check, so
    it is redacted from records and stops anything that would carry it, like GH_TOKEN."""
    out: list[Repository] = []
    single = settings.repositories_file is None
    for config in configs:
        if scanner is not None and config.token is not None and config.token_env:
            scanner.add(config.token_env, config.token.get_secret_value())
        root = repository_root(settings, config)
        ws = workspace if single and workspace is not None else GitWorkspace(
            settings, root=root, source=config.url, base_branch=config.base_branch, token=config.token)
        prs = (pull_requests if single and pull_requests is not None
               else _pull_requests(settings, config, root))
        out.append(Repository(config=config, workspace=ws, pull_requests=prs))
    return Repositories(out)


def _pull_requests(settings: Settings, config: RepositoryConfig, root: Path) -> PullRequests:
    if settings.uses_github_api:
        return GitHubPullRequests(github_settings_for(settings, config))
    return LocalPullRequests(root / LOCAL_PR_FILE)


def github_settings_for(settings: Settings, config: RepositoryConfig) -> Settings:
    """The settings as this repository's GitHub clients read them (its repository, API URL, token):
    for any client built from Settings (the PR client here; the follow-ups' PR activity client per
    repository). A copy keeps the values cached_property computed from the original: dropped."""
    view = settings.model_copy(update={"github_repository": config.github_slug,
                                       "github_api_url": config.github_api_url, "gh_token": config.token})
    for klass in type(settings).__mro__:
        for name, attr in vars(klass).items():
            if isinstance(attr, cached_property):
                view.__dict__.pop(name, None)
    return view


__all__ = ["Repositories", "Repository", "build_repositories", "github_settings_for", "repository_root"]
