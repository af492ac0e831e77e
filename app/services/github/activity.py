"""`PullActivity` over GitHub's REST API: checks, Actions job logs and re-runs, reviews, comments,
collaborator permissions (REST version 2022-11-28; endpoints as github/rest-api-description names
them). HTTP rules (2xx only, rate limits, errors naming the cause) are rest.py's.

The repository is a constructor argument (owner/name), not a global: a run works in the repository
its options name.
"""

from __future__ import annotations

from typing import Any, cast

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
from app.services.github.rest import GitHubRest

# A job log is read whole (the agent gets the complete log), but not without end: 20 MB is far past
# any real CI log and keeps a hostile one from filling memory.
MAX_LOG_BYTES = 20 * 1024 * 1024
_PER_PAGE = "100"
_MAX_PAGES = 10
_PERMISSIONS = ("admin", "maintain", "write", "triage", "read", "none")


class GitHubPullActivity:
    def __init__(self, rest: GitHubRest, slug: str) -> None:
        self._rest = rest
        self._slug = slug
        self._repo = f"/repos/{slug}"

    async def aclose(self) -> None:
        await self._rest.aclose()

    async def changed(self, path: str, etag: str | None) -> tuple[Any, str | None]:
        """A conditional GET of `/repos/{slug}/{path}` (GitHub: a 304 does not count against the rate
        limit): (None, etag) when unchanged since `etag`, else (the JSON, its new ETag)."""
        action = f"poll {path} of {self._slug}"
        headers = {"If-None-Match": etag} if etag else None
        resp = await self._rest.request("GET", f"{self._repo}/{path}", action, headers=headers,
                                        params={"per_page": _PER_PAGE})
        if resp.status_code == 304:
            return None, etag
        self._rest.check(resp, action, not_found=f"nothing at {path} in {self._slug}")
        try:
            data = resp.json()
        except ValueError:
            raise GitHubError(f"GitHub answered {action} with a body that is not JSON") from None
        return data, resp.headers.get("etag")

    async def whoami(self) -> str:
        action = "read the token's own account"
        resp = await self._rest.request("GET", "/user", action)
        self._rest.check(resp, action)
        return str(self._rest.json_object(resp, action, "login")["login"])

    async def pull(self, number: int) -> PullState:
        action = f"read pull request #{number} of {self._slug}"
        resp = await self._rest.request("GET", f"{self._repo}/pulls/{number}", action)
        self._rest.check(resp, action, not_found=f"no pull request #{number} in {self._slug}")
        data = self._rest.json_object(resp, action, "number", "state", "head", "base")
        head, base = data.get("head") or {}, data.get("base") or {}
        return PullState(
            number=int(data["number"]),
            state=str(data["state"]),
            merged=bool(data.get("merged")),
            head_ref=str(head.get("ref", "")),
            head_sha=str(head.get("sha", "")),
            base_ref=str(base.get("ref", "")),
            html_url=str(data.get("html_url", "")),
            merged_at=data.get("merged_at"),
        )

    async def check_jobs(self, sha: str) -> list[CheckJob]:
        action = f"list the check runs of {sha[:12]} in {self._slug}"
        runs = await self._pages(f"{self._repo}/commits/{sha}/check-runs", action, key="check_runs")
        jobs = []
        for run in runs:
            if run.get("status") != "completed" or not isinstance(run.get("id"), int):
                continue
            output = run.get("output") or {}
            summary = "\n".join(str(output[k]) for k in ("title", "summary", "text") if output.get(k))
            jobs.append(
                CheckJob(
                    id=run["id"],
                    name=str(run.get("name", "")),
                    conclusion=str(run.get("conclusion")),
                    suite_id=int((run.get("check_suite") or {}).get("id") or 0),
                    app_slug=str((run.get("app") or {}).get("slug", "")),
                    attempt=int(run.get("run_attempt") or 1),
                    summary=summary,
                )
            )
        return jobs

    async def job_log(self, job: CheckJob) -> str:
        if not job.is_actions:
            return job.summary
        action = f"download the log of job {job.name!r} ({job.id})"
        resp = await self._rest.request("GET", f"{self._repo}/actions/jobs/{job.id}/logs", action)
        if resp.status_code == 302 and resp.headers.get("location"):
            # The documented answer: a redirect to a short-lived, pre-signed download URL.
            data = await self._rest.download(resp.headers["location"], action)
        else:
            self._rest.check(resp, action, not_found="the log has expired or the job does not exist")
            data = resp.content
        return data[:MAX_LOG_BYTES].decode("utf-8", errors="replace")

    async def rerun_job(self, job: CheckJob) -> None:
        if not job.is_actions:
            raise GitHubError(
                f"check {job.name!r} is not a GitHub Actions job: it cannot be re-run from here"
            )
        action = f"re-run job {job.name!r} ({job.id})"
        resp = await self._rest.request("POST", f"{self._repo}/actions/jobs/{job.id}/rerun", action)
        self._rest.check(resp, action, not_found="the job does not exist")

    async def reviews(self, number: int) -> list[Review]:
        items = await self._pages(f"{self._repo}/pulls/{number}/reviews", f"list the reviews of #{number}")
        return [
            Review(
                id=int(r["id"]),
                author=_author(r),
                state=str(r.get("state", "")),
                body=str(r.get("body") or ""),
            )
            for r in items
            if isinstance(r.get("id"), int)
        ]

    async def review_comments(self, number: int) -> list[ReviewComment]:
        items = await self._pages(
            f"{self._repo}/pulls/{number}/comments", f"list the review comments of #{number}"
        )
        out = []
        for c in items:
            if not isinstance(c.get("id"), int):
                continue
            line = c.get("line") if isinstance(c.get("line"), int) else c.get("original_line")
            out.append(
                ReviewComment(
                    id=c["id"],
                    author=_author(c),
                    body=str(c.get("body") or ""),
                    path=str(c.get("path") or ""),
                    line=line if isinstance(line, int) else None,
                    diff_hunk=str(c.get("diff_hunk") or ""),
                    in_reply_to=c.get("in_reply_to_id") if isinstance(c.get("in_reply_to_id"), int) else None,
                    review_id=c.get("pull_request_review_id")
                    if isinstance(c.get("pull_request_review_id"), int)
                    else None,
                )
            )
        return out

    async def issue_comments(self, number: int) -> list[IssueComment]:
        items = await self._pages(f"{self._repo}/issues/{number}/comments", f"list the comments of #{number}")
        return [
            IssueComment(id=int(c["id"]), author=_author(c), body=str(c.get("body") or ""))
            for c in items
            if isinstance(c.get("id"), int)
        ]

    async def reply(self, number: int, comment_id: int, body: str) -> None:
        action = f"reply to review comment {comment_id} on #{number}"
        resp = await self._rest.request(
            "POST", f"{self._repo}/pulls/{number}/comments/{comment_id}/replies", action, json={"body": body}
        )
        self._rest.check(resp, action, not_found="the comment is gone")

    async def comment(self, number: int, body: str) -> None:
        action = f"comment on #{number}"
        resp = await self._rest.request(
            "POST", f"{self._repo}/issues/{number}/comments", action, json={"body": body}
        )
        self._rest.check(resp, action, not_found=f"no pull request #{number} in {self._slug}")

    async def permission(self, login: str) -> Permission:
        action = f"read {login}'s permission on {self._slug}"
        resp = await self._rest.request("GET", f"{self._repo}/collaborators/{login}/permission", action)
        if resp.status_code == 404:  # not a collaborator (or not a user): no permission
            return "none"
        self._rest.check(resp, action)
        perm = self._rest.json_object(resp, action, "permission")["permission"]
        return cast(Permission, perm) if perm in _PERMISSIONS else "none"

    async def _pages(self, path: str, action: str, *, key: str | None = None) -> list[dict[str, Any]]:
        """Every item of a paginated list (page by page, up to _MAX_PAGES × 100 items)."""
        out: list[dict[str, Any]] = []
        for page in range(1, _MAX_PAGES + 1):
            resp = await self._rest.request(
                "GET", path, action, params={"per_page": _PER_PAGE, "page": str(page)}
            )
            self._rest.check(resp, action, not_found=f"nothing at {path} in {self._slug}")
            items = (
                self._rest.json_object(resp, action, key)[key] if key else self._rest.json_list(resp, action)
            )
            items = [i for i in items if isinstance(i, dict)]
            out.extend(items)
            if len(items) < int(_PER_PAGE):
                break
        return out


def _author(item: dict[str, Any]) -> Author:
    u = item.get("user") or {}
    return Author(login=str(u.get("login") or "ghost"), type=str(u.get("type") or "User"))


def github_activity(settings: Any, **kw: Any) -> GitHubPullActivity:
    """The REST `PullActivity` for these settings' token, API URL and repository."""
    from app.services.github.client import github_rest, repo_slug

    return GitHubPullActivity(github_rest(settings, **kw), repo_slug(settings))
