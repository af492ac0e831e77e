"""Pull requests over the GitHub REST API (github.com, or GitHub Enterprise through GITHUB_API_URL).

Contract: `PullRequests` in `base.py`. One `open_or_reuse` call is: list the open PRs whose head is
`<owner>:<branch>`; reuse the first (PATCH title/body) or create one (POST). A create that races
another one (422 "A pull request already exists") falls back to reuse, so a run that resumes after
a crash never opens a second PR.

Failures become `GitHubError(status=...)` whose text names the cause and quotes GitHub's own
`message`/`errors`. 5xx, transport errors and rate limits (429, or 403 carrying `Retry-After` or
`x-ratelimit-remaining: 0`) are retried with exponential backoff, honouring `Retry-After` /
`x-ratelimit-reset`, within a small bounded total wait (`retry_budget_sec`); a wait that would
exceed the budget fails at once with the time GitHub asked for.

The token travels only in the Authorization header of each request: it is never logged, never in
a URL and never in an error (texts are scrubbed of it as a last defence).
"""

from __future__ import annotations

import asyncio
import logging
import re
import time
from collections.abc import Awaitable, Callable
from typing import Any

import httpx

from app.config import Settings
from app.errors import ConfigError, GitHubError
from app.services.github.base import PullRequest
from app.services.http_retry import RetryPolicy, send_with_retries

logger = logging.getLogger(__name__)

API_VERSION = "2022-11-28"  # the REST API version this client was written against
_SLUG_RE = re.compile(r"^[A-Za-z0-9_.-]+/[A-Za-z0-9_.-]+\Z")
# 30 s per request: PR calls answer in well under a second; a hung connection must not hold a run.
DEFAULT_TIMEOUT = httpx.Timeout(30.0, connect=10.0)


class GitHubPullRequests:
    """The real `PullRequests`: GitHub REST through httpx. `http` is an optional client (tests pass one
    with a `MockTransport` or aimed at a local fake); without it the instance owns its own client."""

    def __init__(
        self,
        settings: Settings,
        http: httpx.AsyncClient | None = None,
        *,
        max_attempts: int = 4,
        backoff_base_sec: float = 1.0,
        retry_budget_sec: float = 60.0,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> None:
        if settings.gh_token is None or not settings.gh_token.get_secret_value():
            raise ConfigError("GH_TOKEN is required to open pull requests through the GitHub API")
        slug = settings.github_repo_slug
        if not slug or not _SLUG_RE.match(slug):
            raise ConfigError(
                "GITHUB_REPOSITORY (owner/name) is required for the GitHub API when REPO_URL is not a "
                f"github.com URL (got {slug!r}); or set GITHUB_CLIENT=local to keep PR records locally"
            )
        self._token = settings.gh_token.get_secret_value()
        self._api = settings.github_api_url.rstrip("/")
        self._slug = slug
        self._owner = slug.split("/", 1)[0]
        self._own_http = http is None
        self._http = http or httpx.AsyncClient(timeout=DEFAULT_TIMEOUT, follow_redirects=False)
        self._retry = RetryPolicy(max(1, max_attempts), backoff_base_sec, retry_budget_sec, sleep)

    # ----- the contract -----
    async def open_or_reuse(self, *, head: str, base: str, title: str, body: str) -> PullRequest:
        existing = await self._find_open(head)
        if existing is not None:
            return await self._update(existing, title=title, body=body)
        payload = {"title": title, "head": head, "base": base, "body": body}
        resp = await self._request("POST", self._pulls_path(), "create a pull request", json=payload)
        if resp.status_code == 422 and "already exists" in _error_text(resp).lower():
            # Another attempt (a retried POST, a resumed run) won the race: reuse its PR.
            existing = await self._find_open(head)
            if existing is not None:
                return await self._update(existing, title=title, body=body)
        self._raise_for_status(resp, f"create a pull request from {head} into {base}")
        pr = _to_pr(resp.json(), created=True)
        logger.info("github_pr_created", extra={"pr_number": pr.number, "head": head, "base": base})
        return pr

    async def aclose(self) -> None:
        if self._own_http:
            await self._http.aclose()

    # ----- steps -----
    def _pulls_path(self) -> str:
        return f"/repos/{self._slug}/pulls"

    async def _find_open(self, head: str) -> dict[str, Any] | None:
        params = {"head": f"{self._owner}:{head}", "state": "open", "per_page": "10"}
        resp = await self._request("GET", self._pulls_path(), "list pull requests", params=params)
        self._raise_for_status(resp, f"list the open pull requests for {head}")
        pulls = resp.json()
        return pulls[0] if isinstance(pulls, list) and pulls else None

    async def _update(self, existing: dict[str, Any], *, title: str, body: str) -> PullRequest:
        number = int(existing["number"])
        path = f"{self._pulls_path()}/{number}"
        payload = {"title": title, "body": body}
        resp = await self._request("PATCH", path, "update a pull request", json=payload)
        self._raise_for_status(resp, f"update pull request #{number}")
        pr = _to_pr(resp.json(), created=False)
        logger.info("github_pr_reused", extra={"pr_number": pr.number, "head": pr.head})
        return pr

    # ----- HTTP with retries -----
    async def _request(self, method: str, path: str, action: str, **kwargs: Any) -> httpx.Response:
        """Send one API call, retrying 5xx / rate limits / transport errors within the budget.
        Returns the final response (any status) or raises GitHubError when GitHub never answered."""
        headers = {
            "Authorization": f"Bearer {self._token}",
            "Accept": "application/vnd.github+json",
            "X-GitHub-Api-Version": API_VERSION,
            "User-Agent": "auto-code",
        }

        def unanswered(exc: httpx.HTTPError, attempt: int) -> GitHubError:
            return GitHubError(
                f"GitHub at {self._api} did not answer while trying to {action} "
                f"({self._reason(exc)}; {attempt} attempt(s))"
            )

        def give_up(resp: httpx.Response, delay: float, attempt: int) -> None:
            if _is_rate_limited(resp):
                raise GitHubError(
                    f"GitHub rate limit while trying to {action}: GitHub asks to wait {delay:.0f}s, "
                    f"past the {self._retry.budget_sec:.0f}s retry budget ({attempt} attempt(s)); "
                    f"{_error_text(resp)}",
                    status=resp.status_code,
                )
            # else a 5xx after the last retry: returned, and reported by _raise_for_status

        return await send_with_retries(
            lambda: self._http.request(method, self._api + path, headers=headers, **kwargs),
            self._retry,
            retry_delay=self._retry_delay,
            unanswered=unanswered,
            on_retry=self._log_retry,
            give_up=give_up,
        )

    def _log_retry(self, attempt: int, delay: float, outcome: httpx.Response | httpx.HTTPError) -> None:
        extra: dict[str, object]
        if isinstance(outcome, httpx.Response):
            extra = {"attempt": attempt, "status": outcome.status_code, "delay_s": round(delay, 3)}
        else:
            extra = {"attempt": attempt, "reason": self._reason(outcome), "delay_s": delay}
        logger.warning("github_retry", extra=extra)

    def _reason(self, exc: httpx.HTTPError) -> str:
        return f"{type(exc).__name__}: {self._scrub(str(exc)) or 'no detail'}"

    def _retry_delay(self, resp: httpx.Response, attempt: int) -> float | None:
        """Seconds to wait before retrying `resp`, or None when it is final."""
        backoff = self._retry.backoff(attempt)
        if _is_rate_limited(resp):
            if (after := _retry_after(resp)) is not None:
                return after
            if resp.headers.get("x-ratelimit-remaining") == "0" and (
                reset := resp.headers.get("x-ratelimit-reset", "")
            ).isdigit():
                return max(0.0, int(reset) - time.time()) + 1.0  # +1 s: the reset is whole seconds
            return backoff
        if resp.status_code >= 500:
            return backoff
        return None

    # ----- errors -----
    def _raise_for_status(self, resp: httpx.Response, action: str) -> None:
        status = resp.status_code
        if status < 400:
            return
        said = _error_text(resp)
        if status == 401:
            text = "GitHub rejected the token (401): check that GH_TOKEN is valid and not expired"
        elif status == 403:
            text = (
                f"GitHub refused to {action} in {self._slug} (403): the token lacks permission "
                "(it needs 'Pull requests: write' and 'Contents: read', or the repo scope)"
            )
        elif status == 404:
            text = (
                f"GitHub repository {self._slug} was not found at {self._api} (404), or the token "
                "cannot see it: check GITHUB_REPOSITORY / GITHUB_API_URL and the token's repository access"
            )
        elif status == 422:
            text = f"GitHub could not {action} (422): invalid request (e.g. no commits between the branches)"
        else:
            text = f"GitHub answered {status} while trying to {action}"
        raise GitHubError(self._scrub(f"{text}; GitHub said: {said}"), status=status)

    def _scrub(self, text: str) -> str:
        return text.replace(self._token, "***") if self._token else text


def _is_rate_limited(resp: httpx.Response) -> bool:
    if resp.status_code == 429:
        return True
    if resp.status_code != 403:
        return False
    return (
        "retry-after" in resp.headers
        or resp.headers.get("x-ratelimit-remaining") == "0"
        or "rate limit" in _error_text(resp).lower()
    )


def _retry_after(resp: httpx.Response) -> float | None:
    value = resp.headers.get("retry-after", "").strip()
    try:
        return max(0.0, float(value))
    except ValueError:
        return None  # an HTTP-date: GitHub sends seconds; fall back to backoff


def _error_text(resp: httpx.Response) -> str:
    """GitHub's `message` plus each of its `errors` (strings or {resource, field, code, message})."""
    try:
        data = resp.json()
    except ValueError:
        return (resp.text or resp.reason_phrase or "no body")[:500]
    if not isinstance(data, dict):
        return str(data)[:500]
    parts = [str(data.get("message") or resp.reason_phrase or "no message")]
    for err in data.get("errors") or []:
        if isinstance(err, dict):
            detail = err.get("message") or " ".join(
                str(err[k]) for k in ("resource", "field", "code") if err.get(k)
            )
            parts.append(str(detail))
        else:
            parts.append(str(err))
    return "; ".join(parts)[:1000]


def _to_pr(data: dict[str, Any], *, created: bool) -> PullRequest:
    return PullRequest(
        number=int(data["number"]),
        html_url=str(data["html_url"]),
        head=str(data.get("head", {}).get("ref", "")),
        base=str(data.get("base", {}).get("ref", "")),
        title=str(data.get("title", "")),
        created=created,
    )
