"""`LocalPullActivity`: GitHub's side of a PR kept in memory, for the offline demo and development
with local PR records (GITHUB_CLIENT=local). It answers like the REST client: check runs per
commit, job logs, re-runs, reviews, comments, replies, permissions.

What GitHub would do on its own (run CI, hold reviewers' comments) is scripted by its owner:
`record_ci(sha, [(name, conclusion, log)])` records a finished check suite on a commit,
`add_comment` a person's comment; `comments` and `replies` hold what the service posted. The head
of a PR comes from `head_of(branch)` (the demo reads the bare remote with git).
"""

from __future__ import annotations

import itertools
from collections.abc import Awaitable, Callable
from typing import Any

from app.errors import GitHubError
from app.services.github.activity_base import (
    Author,
    CheckJob,
    IssueComment,
    Permission,
    PullState,
    Review,
    ReviewComment,
)
from app.services.github.local import LocalPullRequests

_ids = itertools.count(1_000_001)


class LocalPullActivity:
    def __init__(
        self,
        prs: LocalPullRequests,
        head_of: Callable[[str], Awaitable[str]],
        *,
        login: str = "auto-code",
        collaborators: dict[str, Permission] | None = None,
    ) -> None:
        self.prs, self.head_of, self.login = prs, head_of, login
        self.collaborators: dict[str, Permission] = collaborators or {}
        self.jobs: dict[str, list[CheckJob]] = {}  # sha → its finished check runs
        self.logs: dict[int, str] = {}
        self.reruns: list[int] = []
        self.review_list: dict[int, list[ReviewComment]] = {}
        self.talk: dict[int, list[IssueComment]] = {}

    # ----- scripting (what GitHub and people would do) -----
    def record_ci(self, sha: str, jobs: list[tuple[str, str, str]]) -> int:
        """A finished check suite on `sha`: (job name, conclusion, full log) each; its id."""
        suite = next(_ids)
        for name, conclusion, log in jobs:
            job = CheckJob(
                id=next(_ids), name=name, conclusion=conclusion, suite_id=suite, app_slug="github-actions"
            )
            self.jobs.setdefault(sha, []).append(job)
            self.logs[job.id] = log
        return suite

    def add_comment(self, number: int, login: str, body: str) -> IssueComment:
        comment = IssueComment(id=next(_ids), author=Author(login=login), body=body)
        self.talk.setdefault(number, []).append(comment)
        return comment

    # ----- PullActivity -----
    async def pull(self, number: int) -> PullState:
        record = next((r for r in self.prs.records() if r["number"] == number), None)
        if record is None:
            raise GitHubError(f"no local pull request #{number}", status=404)
        head = await self.head_of(str(record["head"]))
        return PullState(
            number=number,
            state=str(record["state"]),
            merged=bool(record.get("merged")),
            head_ref=str(record["head"]),
            head_sha=head,
            base_ref=str(record["base"]),
            html_url=str(record["html_url"]),
        )

    async def check_jobs(self, sha: str) -> list[CheckJob]:
        return list(self.jobs.get(sha, []))

    async def job_log(self, job: CheckJob) -> str:
        return self.logs.get(job.id, "")

    async def rerun_job(self, job: CheckJob) -> None:
        # The local "CI" is deterministic: a re-run ends as the first run did (broken, not flaky).
        self.reruns.append(job.id)
        for sha, jobs in self.jobs.items():
            self.jobs[sha] = [
                j.model_copy(update={"attempt": j.attempt + 1}) if j.id == job.id else j for j in jobs
            ]

    async def reviews(self, number: int) -> list[Review]:
        return []

    async def review_comments(self, number: int) -> list[ReviewComment]:
        return list(self.review_list.get(number, []))

    async def issue_comments(self, number: int) -> list[IssueComment]:
        return list(self.talk.get(number, []))

    async def reply(self, number: int, comment_id: int, body: str) -> None:
        parent = next((c for c in self.review_list.get(number, []) if c.id == comment_id), None)
        if parent is None:
            raise GitHubError(f"no review comment {comment_id} on #{number}", status=404)
        self.review_list[number].append(
            parent.model_copy(
                update={
                    "id": next(_ids),
                    "author": Author(login=self.login, type="Bot"),
                    "body": body,
                    "in_reply_to": comment_id,
                }
            )
        )

    async def comment(self, number: int, body: str) -> None:
        self.talk.setdefault(number, []).append(
            IssueComment(id=next(_ids), author=Author(login=self.login, type="Bot"), body=body)
        )

    async def permission(self, login: str) -> Permission:
        return self.collaborators.get(login, "none")

    async def changed(self, path: str, etag: str | None) -> tuple[Any, str | None]:
        return None, etag  # nothing to poll locally: changes arrive through record_ci / add_comment

    async def whoami(self) -> str:
        return self.login

    async def aclose(self) -> None:
        return None
