"""Rate limits of `POST /webhook/jira`: an abuse limit, and a far higher one for proven deliveries.

Two budgets per real client address (`client_ip.real_client_ip`, behind trusted proxies only):
- **unauthenticated** (`RATE_LIMIT`, default 10/minute): every request that does not prove a
  configured secret - no credential, a wrong token or signature, any request in development with no
  secret configured - and every request refused before it proved one (e.g. 413 with a signature
  header). Checked before any byte of the body is read when the request cannot prove anything
  without the body (no signature header); a signature can only be checked after the body, so a
  request that carries one is counted once its body is read and found wanting.
- **authenticated** (`RATE_LIMIT_AUTHENTICATED`, default 2000/minute): deliveries that proved
  `WEBHOOK_SECRET` or `JIRA_WEBHOOK_SECRET`. A Jira bulk change (up to 1000 issues: Jira's own
  bulk-edit limit) sends hundreds of deliveries within seconds from one address, and Jira
  Automation does not retry a 429: each refusal would be a lost ticket. The limit stays finite so a
  leaked secret cannot flood the queue without bound.
Both use `limits`' moving window (what slowapi, which this replaced for the route, ran on).

Counters live in `RATE_LIMIT_STORAGE_URL` (e.g. `redis://127.0.0.1:6379/0`; the URL may hold a
password: a SecretStr, never logged) so every host behind one tunnel shares them; without it, in
this process's memory (`MemoryWindow`: the same moving window, kept here because `limits`' async
memory storage starts a task and a worker-thread hop per hit to expire entries, and copies the
whole window on each, which was a measurable part of a delivery's CPU). If the shared store fails
at request time the request is let through and a warning is logged: the limits protect against
abuse, and an outage of their store must not lose tickets (authentication still applies).
"""

from __future__ import annotations

import logging
import math
import time
from collections import deque
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Literal, Protocol

from limits import RateLimitItem, WindowStats, parse_many
from limits.aio.storage import Storage
from limits.aio.strategies import MovingWindowRateLimiter
from limits.errors import ConfigurationError
from limits.storage import storage_from_string
from pydantic import SecretStr
from starlette.requests import Request

from app.config import Settings
from app.errors import AutoCodeError, ConfigError
from app.intake.auth import token_matches

log = logging.getLogger(__name__)

Bucket = Literal["unauthenticated", "authenticated"]
NAMESPACE = "auto-code:webhook-jira"


class RateLimited(AutoCodeError):
    """429: the client spent `limit` (its budget `bucket`); `retry_after` seconds until room."""

    status_code = 429
    code = "rate_limited"

    def __init__(self, bucket: Bucket, limit: RateLimitItem, retry_after: int, reset_at: float) -> None:
        super().__init__(f"rate limit exceeded: {limit}")
        self.bucket = bucket
        self.limit = limit
        self.retry_after = retry_after
        self.reset_at = reset_at

    @property
    def headers(self) -> dict[str, str]:
        """What slowapi sent with a 429 (Jira honours Retry-After)."""
        return {"Retry-After": str(self.retry_after), "X-RateLimit-Limit": str(self.limit.amount),
                "X-RateLimit-Remaining": "0", "X-RateLimit-Reset": str(int(self.reset_at))}


def _items(name: str, value: str) -> list[RateLimitItem]:
    try:
        items = parse_many(value)
    except ValueError:
        items = []
    if not items:
        raise ConfigError(f"{name} {value!r} is not a rate limit such as '10/minute'")
    return items


class Window(Protocol):
    """A moving-window limiter: `limits`' MovingWindowRateLimiter, or `MemoryWindow`."""

    async def hit(self, item: RateLimitItem, *identifiers: str) -> bool:
        """Take one entry of `item` for `identifiers`; False (nothing taken) when it is spent."""
        ...

    async def get_window_stats(self, item: RateLimitItem, *identifiers: str) -> WindowStats:
        """(when the oldest entry in the window leaves it, entries left)."""
        ...


class MemoryWindow:
    """`limits`' moving window over this process's memory, on the event loop (no await inside, so
    each call is atomic there): per limit and identifiers, the times of the entries still in the
    window, oldest first. An entry counts for `item.get_expiry()` seconds after it was taken, as in
    `limits`' memory storage. Windows left empty are dropped every `SWEEP_SEC` (memory stays bounded
    by the clients of the last window, not every client ever seen)."""

    SWEEP_SEC = 10.0

    def __init__(self, clock: Callable[[], float] = time.time) -> None:
        self._clock = clock  # seconds (tests pass their own)
        self._entries: dict[tuple[object, ...], tuple[float, deque[float]]] = {}
        self._next_sweep = clock() + self.SWEEP_SEC

    def _window(self, item: RateLimitItem, identifiers: tuple[str, ...], now: float) -> deque[float]:
        """The entries still in the window of `item` for `identifiers` (created empty)."""
        expiry = float(item.get_expiry())
        key = (item.amount, expiry, *identifiers)
        found = self._entries.get(key)
        if found is None:
            found = self._entries[key] = (expiry, deque())
        times = found[1]
        while times and times[0] < now - expiry:
            times.popleft()
        return times

    async def hit(self, item: RateLimitItem, *identifiers: str) -> bool:
        now = self._clock()
        if now >= self._next_sweep:
            self._sweep(now)
        times = self._window(item, identifiers, now)
        if len(times) >= item.amount:
            return False
        times.append(now)
        return True

    async def get_window_stats(self, item: RateLimitItem, *identifiers: str) -> WindowStats:
        now = self._clock()
        times = self._window(item, identifiers, now)
        start = times[0] if times else now
        return WindowStats(start + item.get_expiry(), item.amount - len(times))

    def __len__(self) -> int:
        """Windows held (for tests: the sweep bounds it)."""
        return len(self._entries)

    def _sweep(self, now: float) -> None:
        self._next_sweep = now + self.SWEEP_SEC
        for key, (expiry, times) in list(self._entries.items()):
            if not times or times[-1] < now - expiry:
                del self._entries[key]


def _storage(url: SecretStr) -> Storage:
    """`limits`' async storage for a set URL: redis(s):// through redis-py's asyncio client."""
    raw = url.get_secret_value()
    scheme = raw.split("://", 1)[0]
    try:
        if scheme in ("redis", "rediss", "redis+unix"):
            return storage_from_string(f"async+{raw}", implementation="redispy")  # type: ignore[return-value]
        return storage_from_string(raw if raw.startswith("async+") else f"async+{raw}")  # type: ignore[return-value]
    except ConfigurationError:  # its message quotes the URL, which may hold a password: name the scheme
        raise ConfigError(f"RATE_LIMIT_STORAGE_URL: unsupported storage scheme {scheme!r} "
                          "(redis://, rediss://, memory://)") from None


class Admission:
    """One request's path through the budgets (see `IntakeLimits.admission`)."""

    def __init__(self, limits: IntakeLimits, request: Request, deferred: bool) -> None:
        self._limits, self._request = limits, request
        self.deferred = deferred  # a signature to check after the body: not counted yet

    async def proved(self, method: str) -> None:
        """Authentication succeeded with `method` (token | signature | none): count the request."""
        if self.deferred:
            self.deferred = False
            proven = method in ("token", "signature")
            await self._limits.hit("authenticated" if proven else "unauthenticated", self._request)


class IntakeLimits:
    """The two budgets over one storage; `key` gives a request's real client address."""

    def __init__(self, *, unauthenticated: str, authenticated: str, storage_url: SecretStr | None,
                 key: Callable[[Request], str]) -> None:
        self.items: dict[Bucket, list[RateLimitItem]] = {
            "unauthenticated": _items("RATE_LIMIT", unauthenticated),
            "authenticated": _items("RATE_LIMIT_AUTHENTICATED", authenticated),
        }
        self.shared = storage_url is not None and bool(storage_url.get_secret_value())
        self._window: Window = MemoryWindow()
        if storage_url is not None and self.shared:
            self._window = MovingWindowRateLimiter(_storage(storage_url))
        self._key = key

    @classmethod
    def from_settings(cls, settings: Settings, key: Callable[[Request], str]) -> IntakeLimits:
        return cls(unauthenticated=settings.rate_limit, authenticated=settings.rate_limit_authenticated,
                   storage_url=settings.rate_limit_storage_url, key=key)

    async def hit(self, bucket: Bucket, request: Request) -> None:
        """Count one request of the client against `bucket`; RateLimited when it is spent."""
        client = self._key(request)
        for item in self.items[bucket]:
            try:
                if await self._window.hit(item, NAMESPACE, bucket, client):
                    continue
                stats = await self._window.get_window_stats(item, NAMESPACE, bucket, client)
            except Exception as exc:  # the shared store is down: let it through (module docstring)
                log.warning("rate_limit_storage_failed",
                            extra={"bucket": bucket, "error": type(exc).__name__})
                return
            raise RateLimited(bucket, item, max(1, math.ceil(stats.reset_time - time.time())),
                              stats.reset_time)

    @asynccontextmanager
    async def admission(self, request: Request, settings: Settings, *, token: str | None,
                        signature: str | None) -> AsyncIterator[Admission]:
        """Around reading the body and authenticating (`await admission.proved(method)` once
        authenticated). On entry, before the body: a valid token header is counted as authenticated;
        a request with a signature header (and an HMAC secret configured) waits for its body; every
        other request is counted as unauthenticated - and refused now if that budget is spent. A
        waiting request that fails (bad signature, 413, ...) is counted as unauthenticated on the
        way out, and a spent budget turns its error into the 429."""
        secret = settings.webhook_secret.get_secret_value() if settings.webhook_secret else ""
        if secret and token is not None and token_matches(token, secret.encode("utf-8")):
            await self.hit("authenticated", request)
            yield Admission(self, request, deferred=False)
            return
        if signature is not None and settings.jira_webhook_secret is not None:
            admission = Admission(self, request, deferred=True)
            try:
                yield admission
            except AutoCodeError:
                if admission.deferred:
                    await self.hit("unauthenticated", request)
                raise
            return
        await self.hit("unauthenticated", request)
        yield Admission(self, request, deferred=False)
