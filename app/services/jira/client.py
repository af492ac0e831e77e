"""Reporting back to Jira Cloud over REST v3 (basic auth: JIRA_EMAIL + JIRA_API_TOKEN).

Contract: `JiraReporter` in `base.py`. Calls: `GET /rest/api/3/myself`, `POST
/rest/api/3/issue/{key}/comment` (ADF body), `POST /rest/api/3/issue/{key}/remotelink` (the PR
URL is the link's `globalId`, so Jira updates instead of duplicating: idempotent on url), `GET`+`POST
/rest/api/3/issue/{key}/transitions` (chosen by transition name, or else by target status name,
case-insensitively).

Failures raise `JiraError(status=...)` naming the cause and quoting Jira's `errorMessages`/`errors`.
429 and 5xx are retried (honouring `Retry-After`) a few times within a small total wait. The API
token only travels in the Authorization header; it is never logged nor put in an error.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from typing import Any

import httpx

from app.config import Settings
from app.errors import ConfigError, JiraError
from app.intake.keys import is_valid_key
from app.services.http_retry import RetryPolicy, send_with_retries
from app.services.jira.adf import to_adf
from app.services.jira.base import JiraComment

logger = logging.getLogger(__name__)

DEFAULT_TIMEOUT = httpx.Timeout(20.0, connect=10.0)
_GLOBAL_ID_MAX = 255  # Jira's limit on a remote link's globalId


class JiraRestReporter:
    """The real `JiraReporter`. `http` is an optional httpx client (tests point one at a local fake)."""

    def __init__(
        self,
        settings: Settings,
        http: httpx.AsyncClient | None = None,
        *,
        max_attempts: int = 3,
        backoff_base_sec: float = 1.0,
        retry_budget_sec: float = 30.0,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> None:
        if not settings.jira_reporting_enabled or settings.jira_api_token is None:
            raise ConfigError("Jira reporting needs JIRA_BASE_URL, JIRA_EMAIL and JIRA_API_TOKEN")
        self._base = str(settings.jira_base_url).rstrip("/")
        self._token = settings.jira_api_token.get_secret_value()
        self._auth = httpx.BasicAuth(str(settings.jira_email), self._token)
        self._account_id = settings.jira_account_id
        self._own_http = http is None
        self._http = http or httpx.AsyncClient(timeout=DEFAULT_TIMEOUT, follow_redirects=False)
        self._retry = RetryPolicy(max(1, max_attempts), backoff_base_sec, retry_budget_sec, sleep)

    async def myself(self) -> str | None:
        if self._account_id:
            return self._account_id
        try:
            resp = await self._request("GET", "/rest/api/3/myself", "read the service account")
            self._check(resp, "read the service account (GET /myself)")
            self._account_id = str(resp.json().get("accountId") or "") or None
        except (JiraError, ValueError) as exc:
            # Unknown is a valid answer (the caller just cannot filter its own events); say why.
            logger.warning("jira_myself_failed", extra={"error": self._scrub(str(exc))})
            return None
        return self._account_id

    async def comment(self, ticket_key: str, text: str) -> None:
        path = f"/rest/api/3/issue/{_key(ticket_key)}/comment"
        resp = await self._request("POST", path, "comment", json={"body": to_adf(text)})
        self._check(resp, f"comment on {ticket_key}", ticket_key)
        logger.info("jira_commented", extra={"ticket": ticket_key})

    # ----- comments as objects (the progress comment: app/services/jira/progress.py) -----
    async def list_comments(self, ticket_key: str, *, limit: int = 200) -> list[JiraComment]:
        """The issue's comments, newest first, at most `limit` (pages of 100: Jira's maximum)."""
        path = f"/rest/api/3/issue/{_key(ticket_key)}/comment"
        found: list[JiraComment] = []
        while len(found) < limit:
            params = {"startAt": len(found), "maxResults": 100, "orderBy": "-created"}
            resp = await self._request("GET", path, "list comments", params=params)
            self._check(resp, f"list the comments of {ticket_key}", ticket_key)
            page = resp.json().get("comments") or []
            found += [c for c in (JiraComment.of(item) for item in page) if c is not None]
            if not page or len(page) < 100:
                break
        return found[:limit]

    async def add_comment(self, ticket_key: str, body: dict[str, Any], *, retry: bool = True,
                          properties: dict[str, Any] | None = None) -> str:
        """Post an ADF comment; its id. `retry=False`: one attempt only (a POST answered 5xx may
        still have been made: the caller looks for it before posting again)."""
        path = f"/rest/api/3/issue/{_key(ticket_key)}/comment"
        payload: dict[str, Any] = {"body": body}
        if properties:
            payload["properties"] = [{"key": k, "value": v} for k, v in properties.items()]
        policy = self._retry if retry else RetryPolicy(1, 0.0, 0.0, self._retry.sleep)
        resp = await self._request("POST", path, "comment", json=payload, policy=policy)
        self._check(resp, f"comment on {ticket_key}", ticket_key)
        logger.info("jira_commented", extra={"ticket": ticket_key})
        return str(resp.json().get("id") or "")

    async def update_comment(self, ticket_key: str, comment_id: str, body: dict[str, Any]) -> None:
        """Replace the comment's body (PUT is idempotent: retried like a read). Without notifying
        watchers: a progress edit per step would otherwise mail everyone each time."""
        if not comment_id.isdigit():
            raise JiraError(f"refusing a comment id that is not a number: {comment_id[:20]!r}")
        path = f"/rest/api/3/issue/{_key(ticket_key)}/comment/{comment_id}"
        resp = await self._request("PUT", path, "edit comment", json={"body": body},
                                   params={"notifyUsers": "false"})
        self._check(resp, f"edit comment {comment_id} on {ticket_key}", ticket_key)

    async def link_pull_request(self, ticket_key: str, url: str, title: str) -> None:
        payload = {
            "globalId": url[:_GLOBAL_ID_MAX],
            "relationship": "pull request",
            "object": {"url": url, "title": title[:255] or url},
        }
        path = f"/rest/api/3/issue/{_key(ticket_key)}/remotelink"
        resp = await self._request("POST", path, "link", json=payload)
        self._check(resp, f"link the pull request to {ticket_key}", ticket_key)
        logger.info("jira_linked", extra={"ticket": ticket_key, "url": url})

    async def transition(self, ticket_key: str, transition_name: str) -> bool:
        path = f"/rest/api/3/issue/{_key(ticket_key)}/transitions"
        resp = await self._request("GET", path, "list transitions")
        self._check(resp, f"list the transitions of {ticket_key}", ticket_key)
        available = resp.json().get("transitions") or []
        chosen = _pick(available, transition_name)
        if chosen is None:
            names = [str(t.get("name")) for t in available]
            logger.info(
                "jira_transition_unavailable",
                extra={"ticket": ticket_key, "transition": transition_name, "available": names},
            )
            return False
        resp = await self._request("POST", path, "transition", json={"transition": {"id": str(chosen["id"])}})
        self._check(resp, f"move {ticket_key} through '{transition_name}'", ticket_key)
        logger.info("jira_transitioned", extra={"ticket": ticket_key, "transition": chosen.get("name")})
        return True

    async def aclose(self) -> None:
        if self._own_http:
            await self._http.aclose()

    # ----- HTTP -----
    async def _request(self, method: str, path: str, action: str, *, policy: RetryPolicy | None = None,
                       **kwargs: Any) -> httpx.Response:
        headers = {"Accept": "application/json", "User-Agent": "auto-code"}

        def unanswered(exc: httpx.HTTPError, attempt: int) -> JiraError:
            return JiraError(f"Jira at {self._base} did not answer ({action}): {type(exc).__name__}")

        def on_retry(attempt: int, delay: float, outcome: httpx.Response | httpx.HTTPError) -> None:
            logger.warning("jira_retry", extra={"attempt": attempt, "delay_s": delay, "action": action})

        return await send_with_retries(
            lambda: self._http.request(method, self._base + path, headers=headers, auth=self._auth, **kwargs),
            policy or self._retry,
            retry_delay=self._retry_delay,
            unanswered=unanswered,
            on_retry=on_retry,
        )

    def _retry_delay(self, resp: httpx.Response, attempt: int) -> float | None:
        """429 and 5xx are retried after `Retry-After` (whole seconds) or the backoff; the rest is final."""
        if resp.status_code != 429 and resp.status_code < 500:
            return None
        after = resp.headers.get("retry-after", "")
        return float(after) if after.isdigit() else self._retry.backoff(attempt)

    def _check(self, resp: httpx.Response, action: str, ticket_key: str | None = None) -> None:
        status = resp.status_code
        if status < 400:
            return
        if status == 401:
            text = "Jira rejected the credentials (401): check JIRA_EMAIL and JIRA_API_TOKEN"
        elif status == 403:
            text = f"Jira refused to {action} (403): the service account lacks permission"
        elif status == 404:
            what = f"issue {ticket_key}" if ticket_key else "the resource"
            text = f"Jira could not {action}: {what} not found at {self._base} (404) or not visible to us"
        elif status == 429:
            text = f"Jira rate limit: could not {action} (429)"
        else:
            text = f"Jira answered {status} when trying to {action}"
        raise JiraError(self._scrub(f"{text}; Jira said: {_error_text(resp)}"), status=status)

    def _scrub(self, text: str) -> str:
        return text.replace(self._token, "***") if self._token else text


def _key(ticket_key: str) -> str:
    # Keys are validated at intake; checked again because this one goes into a URL path.
    if not is_valid_key(ticket_key):
        raise JiraError(f"refusing an invalid issue key {ticket_key[:40]!r}")
    return ticket_key


def _pick(transitions: list[dict[str, Any]], name: str) -> dict[str, Any] | None:
    wanted = name.strip().casefold()
    for field in ("name", "to"):
        for t in transitions:
            value = t.get(field)
            label = value.get("name") if isinstance(value, dict) else value
            if isinstance(label, str) and label.strip().casefold() == wanted:
                return t
    return None


def _error_text(resp: httpx.Response) -> str:
    """Jira's `errorMessages` and `errors` ({field: message}), else the raw body, shortened."""
    try:
        data = resp.json()
    except ValueError:
        return (resp.text or resp.reason_phrase or "no body")[:500]
    if not isinstance(data, dict):
        return str(data)[:500]
    parts = [str(m) for m in data.get("errorMessages") or []]
    errors = data.get("errors") or {}
    if isinstance(errors, dict):
        parts += [f"{k}: {v}" for k, v in errors.items()]
    if not parts and data.get("message"):
        parts.append(str(data["message"]))
    return ("; ".join(parts) or resp.reason_phrase or "no message")[:1000]
