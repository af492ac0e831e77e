"""One error tree for the whole service.

Services raise these; only the HTTP edge (`app.main`'s handler) turns them into responses, always
as `{"error": <code>, "detail": <human text>}`. Callers branch on the class or its fields, never on
message text.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any


class AutoCodeError(Exception):
    """Base of every error the service raises on purpose."""

    status_code: int = 500
    code: str = "internal_error"

    def __init__(self, detail: str, *, code: str | None = None) -> None:
        super().__init__(detail)
        self.detail = detail
        if code is not None:
            self.code = code


class ConfigError(AutoCodeError):
    """The configuration is missing or invalid (start-up refuses to continue)."""

    code = "config_error"


# ----- intake / HTTP edge -----
class BadRequest(AutoCodeError):
    status_code = 400
    code = "bad_request"


class Unauthorized(AutoCodeError):
    status_code = 401
    code = "unauthorized"


class NotFound(AutoCodeError):
    status_code = 404
    code = "not_found"


class PayloadTooLarge(AutoCodeError):
    status_code = 413
    code = "payload_too_large"


class UnsupportedMediaType(AutoCodeError):
    status_code = 415
    code = "unsupported_media_type"


class Unprocessable(AutoCodeError):
    status_code = 422
    code = "unprocessable"


# ----- pipeline collaborators -----
class StepError(AutoCodeError):
    """A pipeline step failed in a way the run records as its error (never an HTTP answer)."""

    code = "step_failed"


class WorkspaceError(StepError):
    """git failed: clone, fetch, worktree, commit or push. `stderr` carries git's own words."""

    code = "workspace_error"

    def __init__(self, detail: str, *, stderr: str = "", exit_code: int | None = None) -> None:
        super().__init__(detail)
        self.stderr = stderr
        self.exit_code = exit_code


class SandboxError(StepError):
    """The sandbox for an untrusted process could not be built or failed its self-check."""

    code = "sandbox_error"


class CommandTimeout(StepError):
    """A subprocess outlived its timeout; its whole process group was killed."""

    code = "command_timeout"


class AgentError(StepError):
    """A Claude Code session failed. `terminal_reason` is the CLI's (`max_turns`, `api_error`,
    `budget_exhausted`, `timeout`, `process_error`, ...); callers branch on it.

    What the failed call spent before it ended is recorded like a finished call's: `turns`,
    `cost_usd` and `usage` (its tokens by kind, the keys of `AgentRun.usage`: as the model proxy
    metered them, else the CLI's own figures; empty when the call never reached the model)."""

    code = "agent_error"

    def __init__(
        self,
        detail: str,
        *,
        terminal_reason: str,
        session_id: str | None = None,
        turns: int = 0,
        cost_usd: float = 0.0,
        usage: Mapping[str, Any] | None = None,
    ) -> None:
        super().__init__(detail)
        self.terminal_reason = terminal_reason
        self.session_id = session_id
        self.turns = turns
        self.cost_usd = cost_usd
        self.usage: dict[str, Any] = dict(usage or {})


class GitHubError(StepError):
    """The GitHub REST API refused or failed. `status` is the HTTP status (None: no answer)."""

    code = "github_error"

    def __init__(self, detail: str, *, status: int | None = None) -> None:
        super().__init__(detail)
        self.status = status


class JiraError(StepError):
    """The Jira REST API refused or failed while reporting back."""

    code = "jira_error"

    def __init__(self, detail: str, *, status: int | None = None) -> None:
        super().__init__(detail)
        self.status = status
