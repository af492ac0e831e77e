"""One HTTP call retried with exponential backoff inside a bounded total wait (GitHub and Jira clients).

Contract of `send_with_retries(send, policy, retry_delay=, unanswered=, on_retry=, give_up=)`:

- `send()` is awaited at most `policy.max_attempts` times (at least once).
- A transport error (`httpx.HTTPError`) is retried after `policy.backoff(attempt)` seconds
  (`backoff_base_sec * 2 ** (attempt - 1)`). When that was the last attempt, or the wait would take
  the total past `policy.budget_sec`, `unanswered(exc, attempt)` is raised `from None` (the
  transport's text may carry the URL; the caller builds a clean error).
- A response: `retry_delay(resp, attempt)` gives the seconds to wait before trying again, or None
  when the response is final (returned at once, whatever its status). When a retry is due but
  impossible (last attempt, or past the budget), `give_up(resp, delay, attempt)` runs if given (it
  may raise the caller's own error, e.g. "rate limited for longer than the budget"), then the
  response is returned as it is: mapping statuses to errors stays with the caller.
- Before each wait `on_retry(attempt, delay, resp_or_exc)` is called (for logging), then
  `policy.sleep(delay)` (tests pass a recorder). The waits never add up to more than the budget.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

import httpx


@dataclass(frozen=True)
class RetryPolicy:
    max_attempts: int
    backoff_base_sec: float
    budget_sec: float
    sleep: Callable[[float], Awaitable[None]] = asyncio.sleep

    def backoff(self, attempt: int) -> float:
        """The exponential wait after attempt number `attempt` (1-based) failed."""
        return self.backoff_base_sec * 2.0 ** (attempt - 1)


async def send_with_retries(
    send: Callable[[], Awaitable[httpx.Response]],
    policy: RetryPolicy,
    *,
    retry_delay: Callable[[httpx.Response, int], float | None],
    unanswered: Callable[[httpx.HTTPError, int], Exception],
    on_retry: Callable[[int, float, httpx.Response | httpx.HTTPError], None],
    give_up: Callable[[httpx.Response, float, int], None] | None = None,
) -> httpx.Response:
    """Send with retries as the module docstring says; returns the final response."""
    attempts = max(1, policy.max_attempts)
    waited = 0.0
    for attempt in range(1, attempts + 1):
        last = attempt == attempts
        outcome: httpx.Response | httpx.HTTPError
        try:
            outcome = await send()
        except httpx.HTTPError as exc:
            outcome = exc
            delay = policy.backoff(attempt)
            if last or waited + delay > policy.budget_sec:
                raise unanswered(exc, attempt) from None
        else:
            delay_or_none = retry_delay(outcome, attempt)
            if delay_or_none is None:
                return outcome
            delay = delay_or_none
            if last or waited + delay > policy.budget_sec:
                if give_up is not None:
                    give_up(outcome, delay, attempt)
                return outcome
        on_retry(attempt, delay, outcome)
        await policy.sleep(delay)
        waited += delay
    raise AssertionError("unreachable: the last attempt returns or raises")
