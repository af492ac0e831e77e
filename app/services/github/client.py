"""Pull requests over the GitHub REST API (github.com, or GitHub Enterprise through GITHUB_API_URL).

Contract: `PullRequests` in `base.py`. One `open_or_reuse` call is: list the open PRs whose head is
`<owner>:<branch>`; reuse the first (PATCH title, body **and base**, so a PR someone retargeted, or
one opened against an old base, points at the base this run worked from) or create one (POST). A
create that races another one (422 "A pull request already exists") falls back to reuse, so a run
that resumes after a crash never opens a second PR.

The HTTP rules (2xx only is success, a redirect is a named error, rate limits waited as GitHub
documents, errors quoting GitHub) live in rest.py. The token travels only in the Authorization
header of each request.
"""

from __future__ import annotations

import asyncio
import logging
import re
from collections.abc import Awaitable, Callable
from typing import Any

import httpx

from app.config import Settings
from app.errors import ConfigError, GitHubError
from app.services.github.base import PullRequest
from app.services.github.rest import RATE_LIMIT_WAIT_SEC, GitHubRest, error_text

__all__ = ["GitHubPullRequests", "github_rest", "repo_slug"]

logger = logging.getLogger(__name__)

_SLUG_RE = re.compile(r"^[A-Za-z0-9_.-]+/[A-Za-z0-9_.-]+\Z")


def repo_slug(settings: Settings) -> str:
    """The `owner/name` the API calls address, or ConfigError saying how to set it."""
    slug = settings.github_repo_slug
    if not slug or not _SLUG_RE.match(slug) or ".." in slug:
        raise ConfigError(
            "GITHUB_REPOSITORY (owner/name) is required for the GitHub API when REPO_URL is not a "
            f"github.com URL (got {slug!r}); or set GITHUB_CLIENT=local to keep PR records locally"
        )
    return slug


def github_rest(settings: Settings, http: httpx.AsyncClient | None = None, **kw: Any) -> GitHubRest:
    """The REST plumbing for these settings (token + API URL), or ConfigError without a token."""
    if settings.gh_token is None or not settings.gh_token.get_secret_value():
        raise ConfigError("GH_TOKEN is required to open pull requests through the GitHub API")
    return GitHubRest(api_url=settings.github_api_url, token=settings.gh_token.get_secret_value(),
                      http=http, **kw)


class GitHubPullRequests:
    """The real `PullRequests`: GitHub REST through httpx. `http` is an optional client (tests pass
    one with a `MockTransport` or aimed at a local fake); without it the instance owns its own."""

    def __init__(
        self,
        settings: Settings,
        http: httpx.AsyncClient | None = None,
        *,
        max_attempts: int = 4,
        backoff_base_sec: float = 1.0,
        retry_budget_sec: float = 180.0,
        rate_limit_wait_sec: float = RATE_LIMIT_WAIT_SEC,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> None:
        self._rest = github_rest(settings, http, max_attempts=max_attempts, backoff_base_sec=backoff_base_sec,
                                 retry_budget_sec=retry_budget_sec, rate_limit_wait_sec=rate_limit_wait_sec,
                                 sleep=sleep)
        self._slug = repo_slug(settings)
        self._owner = self._slug.split("/", 1)[0]

    # ----- the contract -----
    async def open_or_reuse(self, *, head: str, base: str, title: str, body: str) -> PullRequest:
        existing = await self._find_open(head)
        if existing is not None:
            return await self._update(existing, title=title, body=body, base=base)
        payload = {"title": title, "head": head, "base": base, "body": body}
        action = f"create a pull request from {head} into {base} in {self._slug}"
        resp = await self._rest.request("POST", self._pulls_path(), action, json=payload)
        if resp.status_code == 422 and "already exists" in error_text(resp).lower():
            # Another attempt (a retried POST, a resumed run) won the race: reuse its PR.
            existing = await self._find_open(head)
            if existing is not None:
                return await self._update(existing, title=title, body=body, base=base)
        self._rest.check(resp, action, not_found=self._repo_not_found())
        pr = _to_pr(self._rest.json_object(resp, action, "number", "html_url"), created=True)
        logger.info("github_pr_created", extra={"pr_number": pr.number, "head": head, "base": base})
        return pr

    async def aclose(self) -> None:
        await self._rest.aclose()

    # ----- steps -----
    def _pulls_path(self) -> str:
        return f"/repos/{self._slug}/pulls"

    def _repo_not_found(self) -> str:
        return (f"repository {self._slug} was not found at {self._rest.api}, or the token cannot see it: "
                "check GITHUB_REPOSITORY / GITHUB_API_URL and the token's repository access")

    async def _find_open(self, head: str) -> dict[str, Any] | None:
        params = {"head": f"{self._owner}:{head}", "state": "open", "per_page": "10"}
        action = f"list the open pull requests for {head} in {self._slug}"
        resp = await self._rest.request("GET", self._pulls_path(), action, params=params)
        self._rest.check(resp, action, not_found=self._repo_not_found())
        pulls = self._rest.json_list(resp, action)
        return pulls[0] if pulls else None

    async def _update(self, existing: dict[str, Any], *, title: str, body: str, base: str) -> PullRequest:
        if not isinstance(existing.get("number"), int):
            raise GitHubError(f"GitHub listed an open pull request without a number for {self._slug}")
        number = int(existing["number"])
        payload = {"title": title, "body": body, "base": base}
        action = f"update pull request #{number} in {self._slug}"
        resp = await self._rest.request("PATCH", f"{self._pulls_path()}/{number}", action, json=payload)
        self._rest.check(resp, action, not_found=f"pull request #{number} is gone from {self._slug}")
        pr = _to_pr(self._rest.json_object(resp, action, "number", "html_url"), created=False)
        old_base = str((existing.get("base") or {}).get("ref", ""))
        if old_base and old_base != pr.base:
            logger.warning("github_pr_base_corrected",
                           extra={"pr_number": number, "from": old_base, "to": pr.base})
        logger.info("github_pr_reused", extra={"pr_number": pr.number, "head": pr.head})
        return pr


def _to_pr(data: dict[str, Any], *, created: bool) -> PullRequest:
    return PullRequest(
        number=int(data["number"]),
        html_url=str(data["html_url"]),
        head=str((data.get("head") or {}).get("ref", "")),
        base=str((data.get("base") or {}).get("ref", "")),
        title=str(data.get("title", "")),
        created=created,
    )
