"""The Claude Code interface: implement, review and fix sessions for one ticket.

Sessions are stateless across calls except for the `session_id` the caller stores: a fix round
resumes the implement session by id, from the same `cwd`, possibly in a new service process (the
CLI's transcripts live under WORKSPACE_DIR). Ticket text is untrusted: prompts arrive already built
by `app.prompts.ticket_prompts`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, Protocol

LogFn = Callable[[str], None]
AgentPhase = Literal["implement", "fix", "review"]


@dataclass(frozen=True)
class AgentRequest:
    """One session call. What the call is for travels in fields, never in the prompt text: a client
    labels its trace and a scripted client picks its script from `phase`, `gate` and `round`."""

    cwd: Path  # the ticket's worktree: the agent's only working directory
    prompt: str
    ticket_key: str
    run_id: str
    log: LogFn | None = None  # receives CLI stderr and progress lines, one per call
    phase: AgentPhase = "implement"
    gate: str | None = None  # fix: the gate whose failure this round fixes (review | lint | test)
    round: int = 0  # fix: the gate's fix round (1-based); review: its check round (0-based)
    # argv of the checks this run enabled (setup/lint/test): the only commands the agent may run
    # besides listing files. Recorded with the run's options, so a replay asks for the same.
    allowed_commands: tuple[tuple[str, ...], ...] = ()
    # The run's model budget (its repository's); None: CLAUDE_MAX_BUDGET_USD.
    budget_usd: float | None = None

    @property
    def label(self) -> str:
        """`implement`, `review`, `fix:<gate>` (or `fix` without a gate): the trace's phase name."""
        if self.phase == "fix":
            return f"fix:{self.gate}" if self.gate else "fix"
        return self.phase


@dataclass(frozen=True)
class AgentRun:
    """What one session call produced. `turns` and `cost_usd` are for THIS call (the CLI reports
    cost cumulatively across resumes; the client subtracts)."""

    session_id: str
    turns: int
    cost_usd: float
    result_text: str
    usage: dict[str, Any] = field(default_factory=dict)
    permission_denials: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class ReviewResult:
    """A read-only review. `ok=False` means the review itself failed or its output could not be
    parsed (`error` says why) - reported, never a crash."""

    ok: bool
    has_issues: bool
    findings: str
    run: AgentRun | None
    error: str | None = None


class ClaudeCode(Protocol):
    async def warm(self, cwd: Path, run_id: str) -> None:
        """Start opening the SDK connection for `cwd` (for run `run_id`: the CLI's sandbox, state
        directory and model capability are the run's) so the next `implement` for that cwd skips
        the CLI start-up (~0.3 s). Safe to skip; never raises (a failed warm-up is retried by
        `implement`)."""
        ...

    async def implement(self, req: AgentRequest) -> AgentRun:
        """A new session in `req.cwd` with `acceptEdits`, the tool allowlist, max turns and the
        budget cap. Raises AgentError(terminal_reason=...) on max turns, budget, API errors,
        timeout (the CLI process tree is killed) or a CLI crash (stderr in the detail)."""
        ...

    async def fix(self, req: AgentRequest, session_id: str) -> AgentRun:
        """Resume `session_id` (same cwd) with `req.prompt` (gate failures to fix). Same errors as
        `implement`. The returned session_id is the latest one to store."""
        ...

    async def review(self, req: AgentRequest) -> ReviewResult:
        """A separate, read-only session (no Write/Edit/Bash that modifies), at most the review
        turn limit, whose final text has `HAS_ISSUES: true|false` and a `FINDINGS:` block.
        Parses tolerantly; never raises for a failed or malformed review."""
        ...

    async def aclose(self) -> None:
        """Close any warmed connections and kill any CLI processes still alive."""
        ...
