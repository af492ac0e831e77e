"""A repository's own file, `.auto-code.toml` on its BASE BRANCH: its commands and agent instructions.

    setup_command = ["uv", "sync", "--frozen"]
    lint_command = ["uv", "run", "ruff", "check", "."]
    test_command = ["uv", "run", "pytest", "-q"]
    instructions = "Use the helpers in src/util; never edit generated/."

Read by the service (the workspace's `read_base_file`: the fetched base commit in the shared clone,
never the worktree or the ticket's branch, which the agent writes: an edit the agent makes to this
file has no effect on its own run). A key takes effect only when the operator lists it in the
repository's `in_repo_overrides`; the others are ignored and said so. What it cannot do: switch a
gate on or off, raise a limit or a budget, choose the repository - those stay the operator's.
"""

from __future__ import annotations

import tomllib
from collections.abc import Sequence
from dataclasses import dataclass, field

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from app.repositories.config import Argv, RepositoryConfig

IN_REPO_FILE = ".auto-code.toml"
MAX_INSTRUCTIONS_CHARS = 4000


class InRepoFile(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    setup_command: Argv | None = None
    lint_command: Argv | None = None
    test_command: Argv | None = None
    instructions: str | None = Field(None, max_length=MAX_INSTRUCTIONS_CHARS)

    @field_validator("setup_command", "lint_command", "test_command")
    @classmethod
    def _argv(cls, value: Argv | None) -> Argv | None:
        if value is not None and any(not part for part in value):
            raise ValueError("must be a list of non-empty strings (an argument list, no shell)")
        return value


@dataclass(frozen=True)
class Effective:
    """The repository's commands and instructions for one run, and where each came from."""

    setup_command: Argv
    lint_command: Argv
    test_command: Argv
    instructions: str
    applied: tuple[str, ...] = ()  # keys the repository's file set
    ignored: tuple[str, ...] = ()  # keys it set that the operator does not allow
    notes: tuple[str, ...] = field(default_factory=tuple)


class InRepoFileError(ValueError):
    """The file is there but not valid: the run fails with this, naming the file and the key."""


def parse_in_repo(text: str) -> InRepoFile:
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise InRepoFileError(f"{IN_REPO_FILE} on the base branch is not valid TOML: {exc}") from None
    try:
        return InRepoFile.model_validate(data)
    except ValidationError as exc:
        problems = "; ".join(f"{'.'.join(str(p) for p in e.get('loc', ())) or '(file)'}: {e.get('msg')}"
                             for e in exc.errors())
        raise InRepoFileError(f"{IN_REPO_FILE} on the base branch is invalid: {problems}") from None


def operator_values(repo: RepositoryConfig) -> Effective:
    return Effective(setup_command=repo.setup_command, lint_command=repo.lint_command,
                     test_command=repo.test_command, instructions=repo.instructions)


def effective(base: Effective, allowed: Sequence[str], text: str | None) -> Effective:
    """The operator's values (`base`), with what the repository's file sets where the operator
    allows it (`allowed`: its in_repo_overrides). `text`: the file on the base branch (None: there
    is none). Raises InRepoFileError."""
    if text is None:
        return base
    values: dict[str, object] = {"setup_command": base.setup_command, "lint_command": base.lint_command,
                                 "test_command": base.test_command, "instructions": base.instructions}
    given = parse_in_repo(text).model_dump(exclude_none=True)
    applied = tuple(k for k in given if k in allowed)
    ignored = tuple(k for k in given if k not in allowed)
    for key in applied:
        value = given[key]
        if key == "instructions":
            # The operator's instructions stay; the repository's come after them.
            value = "\n\n".join(t for t in (base.instructions, str(value).strip()) if t)
        else:
            value = tuple(value)
        values[key] = value
    notes = tuple(f"{IN_REPO_FILE} sets {k}, which the repository's in_repo_overrides does not allow: ignored"
                  for k in ignored)
    return Effective(**values, applied=applied, ignored=ignored, notes=notes)  # type: ignore[arg-type]


__all__ = ["IN_REPO_FILE", "Effective", "InRepoFile", "InRepoFileError", "effective", "operator_values",
           "parse_in_repo"]
