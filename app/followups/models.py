"""What the follow-up steps take and return (frozen; DBOS pickles them as step outputs, so every
class lives at module level and holds plain values). Texts from GitHub or CI are untrusted."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict

from app.services.github.activity_base import CheckJob

FollowupKind = Literal["ci_fix", "review_fix"]


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class FollowupContext(_Frozen):
    """Who the follow-up is for: its PR, the trigger named by its dedup key, and what to resume."""

    kind: FollowupKind
    repository: str  # the PR table's key (owner/name lower-cased, or "local")
    number: int
    ticket: str
    branch: str
    parent_run_id: str
    trigger: str  # "ci:<sha>", "review:<id>", "comment:<id>"
    head_sha: str = ""  # the PR's head when the follow-up began
    session_id: str | None = None  # the latest agent session on this PR (to resume)
    session_run_id: str | None = None  # the run whose CLI state holds that session's transcript
    ci_rounds: int = 0
    review_rounds: int = 0
    ci_signature: str | None = None
    cost_usd: float = 0.0  # all follow-ups of the PR so far
    pr_base_sha: str | None = None  # the base commit the opening run started from (the PR's diff)
    skip: str | None = None  # why there is nothing to do (closed, stopped, stale): the run ends


class Thread(_Frozen):
    """One unanswered review comment with its whole thread (oldest first), or a PR conversation
    comment (`path` empty, `reply_to` None: answered with a PR comment)."""

    comment_id: int
    reply_to: int | None  # the review comment to reply under; None: a conversation comment
    path: str = ""
    line: int | None = None
    diff_hunk: str = ""
    messages: tuple[tuple[str, str], ...] = ()  # (author login, body)


class Materials(_Frozen):
    """What the agent is handed: for CI the failing jobs and the log files written for it (relative
    to the worktree, removed before anything is committed); for reviews the threads."""

    kind: FollowupKind
    jobs: tuple[CheckJob, ...] = ()
    log_files: tuple[str, ...] = ()
    threads: tuple[Thread, ...] = ()
    signature: str = ""  # CI: the failing-job set, for stagnation
    flaky: tuple[str, ...] = ()  # jobs that passed on their one re-run (not fixed)
    nothing: str | None = None  # nothing left to do (why)


class FollowupResult(_Frozen):
    session_id: str
    has_changes: bool
    summary: str  # the agent's closing text, redacted
    replies: tuple[tuple[int, str], ...] = ()  # (comment id, the agent's answer), redacted
    turns: int = 0
    cost_usd: float = 0.0
