"""One GitHub REST call as GitHub documents it: headers, retries, rate limits, redirects, errors.

Shared by the pull-request client (client.py) and the follow-up client (activity.py).

- **Success is 2xx only.** A redirect is an answer, not a success: GitHub answers 301/307 for a
  renamed or transferred repository, and following it blindly turned a PR call into
  `KeyError: 'number'`. `check()` raises `GitHubError` naming the status and the `Location` (with
  any query string dropped: a download URL may carry a signature). The one documented redirect the
  service follows on purpose, a job's log download, is followed by `download()` explicitly.
- **Rate limits** (REST docs, "Rate limits for the REST API" → "Handle rate limit errors
  appropriately"): a 429, or a 403 carrying `Retry-After`, `x-ratelimit-remaining: 0` or a
  rate-limit message. Wait `Retry-After` seconds when present; else, with `remaining: 0`, until
  `x-ratelimit-reset`; else **at least one minute** (`rate_limit_wait_sec`, 60), growing
  exponentially on repeats. A wait that would pass the retry budget fails at once, quoting GitHub.
- 5xx and transport errors: exponential backoff within the budget (http_retry.py).
- **Errors name the cause**: the status, what the service was trying to do, and GitHub's own
  `message` + `errors`; a 2xx whose body is not the documented shape says so (never a KeyError).

The token travels only in the Authorization header of each API request (never to a download URL,
a log or an error: texts are scrubbed of it as a last defence).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, Mapping
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import httpx

from app.errors import GitHubError
from app.services.http_retry import RetryPolicy, send_with_retries

logger = logging.getLogger(__name__)

API_VERSION = "2022-11-28"  # the REST API version this client was written against
# 30 s per request: API calls answer in well under a second; a hung connection must not hold a run.
DEFAULT_TIMEOUT = httpx.Timeout(30.0, connect=10.0)
# GitHub: "If you receive a rate limit error without retry-after or x-ratelimit-reset, wait for at
# least one minute before retrying."
RATE_LIMIT_WAIT_SEC = 60.0
_REDIRECTS = frozenset({301, 302, 303, 307, 308})


class GitHubRest:
    """The REST plumbing for one API base URL and token. `http` is an optional client (tests pass
    one aimed at a local fake); without it the instance owns its own. `sleep` is every wait the
    client takes (tests pass a recorder, so a 60 s rate-limit wait costs them nothing)."""

    def __init__(
        self,
        *,
        api_url: str,
        token: str,
        http: httpx.AsyncClient | None = None,
        max_attempts: int = 4,
        backoff_base_sec: float = 1.0,
        retry_budget_sec: float = 180.0,
        rate_limit_wait_sec: float = RATE_LIMIT_WAIT_SEC,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> None:
        self.api = api_url.rstrip("/")
        self._token = token
        self._own_http = http is None
        self.http = http or httpx.AsyncClient(timeout=DEFAULT_TIMEOUT, follow_redirects=False)
        self.retry = RetryPolicy(max(1, max_attempts), backoff_base_sec, retry_budget_sec, sleep)
        self.rate_limit_wait_sec = rate_limit_wait_sec

    async def aclose(self) -> None:
        if self._own_http:
            await self.http.aclose()

    def headers(self, extra: Mapping[str, str] | None = None) -> dict[str, str]:
        return {
            "Authorization": f"Bearer {self._token}",
            "Accept": "application/vnd.github+json",
            "X-GitHub-Api-Version": API_VERSION,
            "User-Agent": "auto-code",
            **(extra or {}),
        }

    async def request(self, method: str, path: str, action: str, *,
                      headers: Mapping[str, str] | None = None, **kwargs: Any) -> httpx.Response:
        """Send one API call, retrying 5xx / rate limits / transport errors within the budget.
        Returns the final response (any status) or raises GitHubError when GitHub never answered
        or asked to wait past the budget."""
        sent = self.headers(headers)

        def unanswered(exc: httpx.HTTPError, attempt: int) -> GitHubError:
            return GitHubError(
                f"GitHub at {self.api} did not answer while trying to {action} "
                f"({self.reason(exc)}; {attempt} attempt(s))"
            )

        def give_up(resp: httpx.Response, delay: float, attempt: int) -> None:
            if is_rate_limited(resp):
                raise GitHubError(self.scrub(
                    f"GitHub rate limit while trying to {action} ({resp.status_code}): GitHub asks to "
                    f"wait {delay:.0f}s, past the {self.retry.budget_sec:.0f}s retry budget "
                    f"({attempt} attempt(s)); GitHub said: {error_text(resp)}"),
                    status=resp.status_code,
                )
            # else a 5xx after the last retry: returned, and reported by check()

        return await send_with_retries(
            lambda: self.http.request(method, self.api + path, headers=sent, **kwargs),
            self.retry,
            retry_delay=self._retry_delay,
            unanswered=unanswered,
            on_retry=self._log_retry,
            give_up=give_up,
        )

    async def download(self, url: str, action: str) -> bytes:
        """GET a URL GitHub redirected to (a log archive): no token (the URL is pre-signed, and may
        be another host). One try, not retried: a transport error or a non-200 is a GitHubError."""
        try:
            resp = await self.http.get(url, headers={"User-Agent": "auto-code"})
        except httpx.HTTPError as exc:
            raise GitHubError(
                f"could not {action}: the download did not answer ({self.reason(exc)})") from None
        if resp.status_code != 200:
            raise GitHubError(f"could not {action}: the download answered {resp.status_code}",
                              status=resp.status_code)
        return resp.content

    # ----- answers -----
    def check(self, resp: httpx.Response, action: str, *, not_found: str | None = None) -> None:
        """Raise GitHubError unless `resp` is a 2xx. `not_found` is what a 404 means here."""
        status = resp.status_code
        if 200 <= status < 300:
            return
        said = error_text(resp)
        if status in _REDIRECTS:
            where = _without_query(resp.headers.get("location", ""))
            text = (f"GitHub answered {status} (a redirect to {where or 'nowhere'}) while trying to "
                    f"{action}: the repository was probably renamed or transferred; point "
                    "GITHUB_REPOSITORY / GITHUB_API_URL at its current location")
        elif status == 304:
            text = (f"GitHub answered 304 Not Modified while trying to {action} "
                    "(no conditional request was made)")
        elif status == 401:
            text = "GitHub rejected the token (401): check that GH_TOKEN is valid and not expired"
        elif status == 403:
            text = (f"GitHub refused to {action} (403): the token lacks a permission this call needs, "
                    "or the repository blocks it")
        elif status == 404:
            text = f"GitHub found nothing to {action} (404): {not_found or 'the resource does not exist'}"
        elif status == 422:
            text = f"GitHub could not {action} (422): the request was refused as invalid"
        else:
            text = f"GitHub answered {status} while trying to {action}"
        raise GitHubError(self.scrub(f"{text}; GitHub said: {said}"), status=status)

    def json_object(self, resp: httpx.Response, action: str, *required: str) -> dict[str, Any]:
        """The 2xx body as a JSON object holding `required` keys, or GitHubError naming the shape."""
        data = _json(resp)
        missing = [k for k in required if not isinstance(data, dict) or k not in data]
        if not isinstance(data, dict) or missing:
            shape = type(data).__name__ if not isinstance(data, dict) else f"an object without {missing}"
            raise GitHubError(f"GitHub answered {resp.status_code} to {action} with {shape}, not the "
                              "documented object", status=resp.status_code)
        return data

    def json_list(self, resp: httpx.Response, action: str) -> list[dict[str, Any]]:
        data = _json(resp)
        if not isinstance(data, list):
            raise GitHubError(f"GitHub answered {resp.status_code} to {action} with "
                              f"{type(data).__name__}, not the documented list", status=resp.status_code)
        return [item for item in data if isinstance(item, dict)]

    # ----- retries -----
    def _retry_delay(self, resp: httpx.Response, attempt: int) -> float | None:
        """Seconds to wait before retrying `resp`, or None when it is final."""
        backoff = self.retry.backoff(attempt)
        if is_rate_limited(resp):
            if (after := _retry_after(resp)) is not None:
                return after
            reset = resp.headers.get("x-ratelimit-reset", "")
            if resp.headers.get("x-ratelimit-remaining") == "0" and reset.isdigit():
                return max(0.0, int(reset) - time.time()) + 1.0  # +1 s: the reset is whole seconds
            # Neither header: at least a minute, exponentially longer on repeats (GitHub's docs).
            return self.rate_limit_wait_sec * 2.0 ** (attempt - 1)
        if resp.status_code >= 500:
            return backoff
        return None

    def _log_retry(self, attempt: int, delay: float, outcome: httpx.Response | httpx.HTTPError) -> None:
        extra: dict[str, object]
        if isinstance(outcome, httpx.Response):
            extra = {"attempt": attempt, "status": outcome.status_code, "delay_s": round(delay, 3)}
        else:
            extra = {"attempt": attempt, "reason": self.reason(outcome), "delay_s": delay}
        logger.warning("github_retry", extra=extra)

    def reason(self, exc: httpx.HTTPError) -> str:
        return f"{type(exc).__name__}: {self.scrub(str(exc)) or 'no detail'}"

    def scrub(self, text: str) -> str:
        return text.replace(self._token, "***") if self._token else text


def is_rate_limited(resp: httpx.Response) -> bool:
    if resp.status_code == 429:
        return True
    if resp.status_code != 403:
        return False
    return (
        "retry-after" in resp.headers
        or resp.headers.get("x-ratelimit-remaining") == "0"
        or "rate limit" in error_text(resp).lower()
    )


def _retry_after(resp: httpx.Response) -> float | None:
    value = resp.headers.get("retry-after", "").strip()
    try:
        return max(0.0, float(value))
    except ValueError:
        return None  # an HTTP-date: GitHub sends seconds; fall back to the reset or the minute


def _json(resp: httpx.Response) -> Any:
    try:
        return resp.json()
    except ValueError:
        return None


def _without_query(url: str) -> str:
    parts = urlsplit(url)
    return urlunsplit((parts.scheme, parts.netloc, parts.path, "", ""))


def error_text(resp: httpx.Response) -> str:
    """GitHub's `message` plus each of its `errors` (strings or {resource, field, code, message})."""
    data = _json(resp)
    if data is None:
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
