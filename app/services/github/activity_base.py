"""What happens on a pull request after it is opened, as the follow-up runs see it: the interface.

The models are frozen pydantic values (steps return them and DBOS pickles them). Every text in them
(bodies, logs, hunks) came from someone on GitHub or from the agent's own CI: untrusted; callers
delimit it in prompts and never act on it as an instruction.
"""

from __future__ import annotations

from typing import Any, Literal, Protocol

from pydantic import BaseModel, ConfigDict

Permission = Literal["admin", "maintain", "write", "triage", "read", "none"]


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True)


class PullState(_Frozen):
    number: int
    state: str  # open | closed
    merged: bool
    head_ref: str
    head_sha: str
    base_ref: str
    html_url: str
    merged_at: str | None = None


class CheckJob(_Frozen):
    """One finished check run. For GitHub Actions (`app_slug == "github-actions"`) the check run's
    id is the Actions job's id, which is how its log is found and how it is re-run."""

    id: int
    name: str
    conclusion: str
    suite_id: int
    app_slug: str
    attempt: int = 1
    summary: str = ""  # the check's own output title/summary/text (non-Actions checks have no log)

    @property
    def failed(self) -> bool:
        return self.conclusion in ("failure", "timed_out", "cancelled", "action_required", "startup_failure")

    @property
    def is_actions(self) -> bool:
        return self.app_slug == "github-actions"


class Author(_Frozen):
    login: str
    type: str = "User"  # User | Bot | Organization

    @property
    def is_bot(self) -> bool:
        return self.type == "Bot" or self.login.endswith("[bot]")


class Review(_Frozen):
    id: int
    author: Author
    state: str  # APPROVED | CHANGES_REQUESTED | COMMENTED | DISMISSED | PENDING
    body: str


class ReviewComment(_Frozen):
    id: int
    author: Author
    body: str
    path: str
    line: int | None
    diff_hunk: str
    in_reply_to: int | None = None
    review_id: int | None = None


class IssueComment(_Frozen):
    id: int
    author: Author
    body: str


class PullActivity(Protocol):
    """GitHub's side of an open PR. Every method raises GitHubError (rest.py) naming the cause."""

    async def pull(self, number: int) -> PullState:
        """The PR's current state (open/closed, merged, head sha)."""
        ...

    async def check_jobs(self, sha: str) -> list[CheckJob]:
        """Every completed check run on commit `sha` (all of them, not only the failed ones)."""
        ...

    async def job_log(self, job: CheckJob) -> str:
        """The job's complete log (Actions: the log download; other checks: their output text)."""
        ...

    async def rerun_job(self, job: CheckJob) -> None:
        """Ask GitHub to run the job again (Actions only; GitHubError otherwise)."""
        ...

    async def reviews(self, number: int) -> list[Review]: ...

    async def review_comments(self, number: int) -> list[ReviewComment]:
        """Every review comment of the PR, oldest first (threads: `in_reply_to`)."""
        ...

    async def issue_comments(self, number: int) -> list[IssueComment]: ...

    async def reply(self, number: int, comment_id: int, body: str) -> None:
        """Answer in the thread of review comment `comment_id`."""
        ...

    async def comment(self, number: int, body: str) -> None:
        """A comment on the PR's conversation."""
        ...

    async def permission(self, login: str) -> Permission:
        """The user's permission on the repository; "none" for someone who is not a collaborator."""
        ...

    async def changed(self, path: str, etag: str | None) -> tuple[Any, str | None]:
        """Conditional GET of `/repos/{owner}/{name}/{path}`: (None, etag) when GitHub answers 304
        Not Modified for `etag`, else (the JSON, the new ETag)."""
        ...

    async def whoami(self) -> str:
        """The login of the account the token acts as (`GET /user`)."""
        ...

    async def aclose(self) -> None: ...
