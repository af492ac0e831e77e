"""One repository the service works on, as the operator configured it: typed and fully resolved.

A `RepositoryConfig` is what `REPOSITORIES_FILE` says about one repository with every value it
leaves out taken from the service's environment settings (so `lint_command` unset in the file is
`LINT_COMMAND`), or, without a file, the environment settings themselves as the one entry
(`from_settings`). Nothing the ticket or the agent can write reaches these values: the repository's
own file (in_repo.py) may override only what `in_repo_overrides` lists, and only from its base
branch.
"""

from __future__ import annotations

import re
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, SecretStr, field_validator, model_validator

from app.config import Settings

NAME_RE = re.compile(r"^[a-z0-9][a-z0-9_-]{0,39}\Z")
_SLUG_RE = re.compile(r"^[A-Za-z0-9_.-]+/[A-Za-z0-9_.-]+\Z")
_GITHUB_URL_RE = re.compile(
    r"^(?:https://github\.com/|git@github\.com:)(?P<slug>[\w.-]+/[\w.-]+?)(?:\.git)?/?$"
)
# The name of the one implicit repository built from the environment settings (no file).
DEFAULT_NAME = "default"
# What a repository's own file on its base branch may set, when the operator lists it.
Overridable = Literal["setup_command", "lint_command", "test_command", "instructions"]
Argv = tuple[str, ...]


class Route(BaseModel):
    """One routing rule: every condition it names must hold (at least one). A repository is a
    match for a ticket when any of its rules holds. Compared case-insensitively, like Jira's JQL."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    project: str | None = None  # the ticket key's project, e.g. "WEB"
    component: str | None = None  # one of the components, by name
    label: str | None = None  # one of the labels
    field: str | None = None  # a custom field id, e.g. "customfield_10042" ...
    value: str | None = None  # ... and the value it must have (option value, or text)

    @model_validator(mode="after")
    def _complete(self) -> Route:
        if (self.field is None) != (self.value is None):
            raise ValueError("`field` and `value` go together (a custom field id and its value)")
        if not any((self.project, self.component, self.label, self.field)):
            raise ValueError("a route needs at least one of project, component, label, field+value")
        if self.field is not None and not re.fullmatch(r"customfield_[0-9]{1,10}", self.field):
            raise ValueError(f"`field` must be a custom field id (customfield_10042), not {self.field!r}")
        return self

    def describe(self) -> str:
        parts = [f"{k}={v}" for k, v in (("project", self.project), ("component", self.component),
                                           ("label", self.label)) if v]
        if self.field:
            parts.append(f"{self.field}={self.value}")
        return " and ".join(parts)


class RepositoryConfig(BaseModel):
    """Everything the pipeline needs to know about one repository (see the module docstring)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    name: str
    url: str  # what the shared clone is cloned from: an https URL, or a local path/file:// URL
    base_branch: str = "main"
    github_repository: str | None = None  # owner/name; derived from a github.com URL when unset
    github_api_url: str = "https://api.github.com"  # GitHub Enterprise per repository
    token: SecretStr | None = Field(default=None, repr=False)  # this repository's GitHub token
    token_env: str | None = None  # where `token` came from (GH_TOKEN_<NAME>), for messages
    setup_command: Argv = ()
    lint_command: Argv = ()
    test_command: Argv = ()
    enable_setup: bool = False
    enable_review: bool = False
    enable_lint: bool = False
    enable_tests: bool = False
    gate_max_rounds: Annotated[int, Field(ge=1, le=20)] = 3
    # This repository's share of MAX_CONCURRENT_RUNS (None: no share of its own, only the total).
    max_concurrent_runs: Annotated[int, Field(ge=1, le=64)] | None = None
    budget_usd: Annotated[float, Field(gt=0)] = 5.0  # model spend per run
    routes: tuple[Route, ...] = ()
    default: bool = False  # takes the tickets no repository's route matches
    in_repo_overrides: tuple[Overridable, ...] = ()
    instructions: str = ""  # extra instructions for the agent, from the operator

    @field_validator("name")
    @classmethod
    def _name(cls, value: str) -> str:
        if not NAME_RE.fullmatch(value):
            raise ValueError("must be 1-40 characters a-z, 0-9, '-', '_' (it names directories and branches)")
        return value

    @field_validator("url")
    @classmethod
    def _url(cls, value: str) -> str:
        text = value.strip()
        if not text:
            raise ValueError("is required")
        if re.match(r"^[a-z][a-z0-9+.-]*://[^/@]*:[^/@]*@", text, re.IGNORECASE):
            raise ValueError("must not carry credentials; put the token in GH_TOKEN or token_env")
        return text

    @field_validator("github_repository")
    @classmethod
    def _slug(cls, value: str | None) -> str | None:
        if value is not None and not _SLUG_RE.fullmatch(value):
            raise ValueError("must be owner/name")
        return value

    @field_validator("setup_command", "lint_command", "test_command")
    @classmethod
    def _argv(cls, value: Argv) -> Argv:
        if any(not part for part in value):
            raise ValueError("must be a list of non-empty strings (an argument list, no shell)")
        return value

    @property
    def github_slug(self) -> str | None:
        """owner/name: `github_repository`, else derived from a github.com URL."""
        if self.github_repository:
            return self.github_repository
        m = _GITHUB_URL_RE.match(self.url)
        return m.group("slug") if m else None

    def command(self, name: Literal["setup", "lint", "test"]) -> Argv:
        return {"setup": self.setup_command, "lint": self.lint_command, "test": self.test_command}[name]

    @classmethod
    def from_settings(cls, settings: Settings) -> RepositoryConfig:
        """The single-repository configuration of the environment settings (REPO_URL, BASE_BRANCH,
        GITHUB_*, *_COMMAND, ENABLE_*, GATE_MAX_ROUNDS, CLAUDE_MAX_BUDGET_USD): the one entry a
        service without REPOSITORIES_FILE has, the default for every ticket."""
        return cls.model_validate({"name": DEFAULT_NAME, "url": settings.repo_source or "(unset)",
                                   "default": True, **settings_defaults(settings)})


def settings_defaults(settings: Settings) -> dict[str, object]:
    """The values a repository entry leaves out, from the environment settings."""
    return {
        "base_branch": settings.base_branch,
        "github_repository": settings.github_repository,
        "github_api_url": settings.github_api_url,
        "token": settings.gh_token,
        "setup_command": tuple(settings.setup_command),
        "lint_command": tuple(settings.lint_command),
        "test_command": tuple(settings.test_command),
        "enable_setup": settings.enable_setup,
        "enable_review": settings.enable_review,
        "enable_lint": settings.enable_lint,
        "enable_tests": settings.enable_tests,
        "gate_max_rounds": settings.gate_max_rounds,
        "budget_usd": settings.claude_max_budget_usd,
    }


__all__ = ["DEFAULT_NAME", "Argv", "Overridable", "RepositoryConfig", "Route", "settings_defaults"]
