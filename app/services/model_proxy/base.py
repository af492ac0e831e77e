"""The model proxy interface: the sandboxed CLI's only way to the Anthropic Messages API.

Inside the sandbox the CLI is given `ANTHROPIC_BASE_URL=http://127.0.0.1:<port>` (a relay that
forwards each TCP connection byte for byte to `socket_path`) and `ANTHROPIC_API_KEY=<capability
token>` from `grant()`. It never sees the real key: the proxy checks the token, puts the real
`ANTHROPIC_API_KEY` on the upstream request, streams the answer back as it arrives, and meters the
usage the API reports, per grant, against the grant's budget.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Protocol


@dataclass(frozen=True)
class Usage:
    """Metered totals of one grant (all requests made with its token so far)."""

    requests: int  # requests forwarded upstream (messages and count_tokens)
    input_tokens: int
    output_tokens: int
    cache_creation_input_tokens: int
    cache_read_input_tokens: int
    cost_usd: float
    exhausted: bool  # a request was refused because the budget was spent


class ModelProxy(Protocol):
    """An HTTP/1.1 server on a Unix socket that forwards `POST /v1/messages` and
    `POST /v1/messages/count_tokens` to the real API. One instance per process, shared by runs."""

    socket_path: Path  # the Unix socket the sandbox relay connects to

    def start(self) -> None:
        """Bind `socket_path` (mode 0600) and serve on the proxy's OWN thread and event loop, so
        callers on any loop or thread can use it. Returns once the socket accepts connections.
        Idempotent. Raises OSError when the socket cannot be bound (path in use, too long)."""
        ...

    def close(self) -> None:
        """Stop serving (open connections are dropped), stop the thread, remove the socket.
        Idempotent. Grants and their usage survive (a later `start()` serves them again)."""
        ...

    def grant(self, run_id: str, *, budget_usd: float) -> str:
        """A new capability token (`secrets.token_urlsafe(32)`) metered on its own. Requests with
        it are forwarded until its metered cost reaches `budget_usd`; from then on they get
        400 `invalid_request_error` ("auto-code: run budget of $X exhausted": 400, not 429/5xx,
        which the CLI would retry). A request already streaming when the budget is reached
        finishes, so the total may pass the budget by the cost of the requests in flight.
        Thread-safe."""
        ...

    def usage(self, token: str) -> Usage:
        """Metered totals of the grant so far (also after `revoke`). KeyError for an unknown
        token. Thread-safe; figures of a stream in flight count as far as they have arrived."""
        ...

    def revoke(self, token: str) -> None:
        """Later requests with `token` get 401 `authentication_error`; a request in flight
        finishes. The usage stays readable. Unknown tokens are ignored. Thread-safe."""
        ...

    def forget(self, token: str) -> None:
        """Drop the grant and its usage entirely (`usage` then raises KeyError); for a finished
        call whose usage was read. Unknown tokens are ignored. Thread-safe."""
        ...
