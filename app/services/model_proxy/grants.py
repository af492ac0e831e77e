"""The grant book: the model proxy's capability tokens, each with its run's budget and metered usage.

A token is kept under its SHA-256 digest and compared with the stored one in constant time. Every
read and change of a grant's figures happens under the book's one lock: callers on any thread grant,
read, revoke and forget while the proxy's own loop authenticates requests and meters their answers.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import threading
from collections.abc import Sequence
from dataclasses import dataclass, field

from app.services.model_proxy import pricing
from app.services.model_proxy.base import Usage
from app.services.model_proxy.metering import TOKEN_FIELDS, RequestUsage


@dataclass
class Grant:
    run_id: str
    budget_usd: float
    token: str
    revoked: bool = False
    exhausted: bool = False
    requests: int = 0
    input_tokens: int = 0
    output_tokens: int = 0
    cache_creation_input_tokens: int = 0
    cache_read_input_tokens: int = 0
    cost_usd: float = 0.0

    def snapshot(self) -> Usage:
        return Usage(
            requests=self.requests,
            input_tokens=self.input_tokens,
            output_tokens=self.output_tokens,
            cache_creation_input_tokens=self.cache_creation_input_tokens,
            cache_read_input_tokens=self.cache_read_input_tokens,
            cost_usd=self.cost_usd,
            exhausted=self.exhausted,
        )


@dataclass
class Metered:
    """One forwarded request's usage and what of it has been added to its grant so far."""

    grant: Grant
    request_model: str | None
    usage: RequestUsage = field(default_factory=RequestUsage)
    applied: dict[str, int] = field(default_factory=dict)
    applied_cost: float = 0.0

    def price(self) -> pricing.Price:
        # The dearer of what was asked for and what the answer says served it: a request cannot be
        # made cheaper by naming one model and being served by another (or by duplicate keys).
        prices = [pricing.price_for(self.request_model)]
        if self.usage.model and self.usage.model != self.request_model:
            prices.append(pricing.price_for(self.usage.model))
        return max(prices, key=lambda p: (p.output, p.input))

    def cost(self) -> float:
        u = self.usage
        return pricing.cost_usd(
            self.price(),
            input_tokens=u.input_tokens,
            output_tokens=u.output_tokens,
            cache_creation_input_tokens=u.cache_creation_input_tokens,
            cache_creation_1h_input_tokens=u.cache_creation_1h_input_tokens,
            cache_read_input_tokens=u.cache_read_input_tokens,
        )


def token_digest(token: str) -> bytes:
    return hashlib.sha256(token.encode("utf-8", "surrogatepass")).digest()


class GrantBook:
    """The grants by token digest. Thread-safe."""

    def __init__(self) -> None:
        self._grants: dict[bytes, Grant] = {}  # sha256(token) -> grant
        self._lock = threading.Lock()

    # ----- the ModelProxy's grant calls (any thread) -----
    def grant(self, run_id: str, *, budget_usd: float) -> str:
        if budget_usd < 0:
            raise ValueError("budget_usd must be >= 0")
        token = secrets.token_urlsafe(32)
        with self._lock:
            self._grants[token_digest(token)] = Grant(
                run_id=run_id, budget_usd=float(budget_usd), token=token
            )
        return token

    def usage(self, token: str) -> Usage:
        grant = self.find(token)
        if grant is None:
            raise KeyError("unknown model proxy token")
        with self._lock:
            return grant.snapshot()

    def revoke(self, token: str) -> None:
        grant = self.find(token)
        if grant is not None:
            with self._lock:
                grant.revoked = True

    def forget(self, token: str) -> None:
        """Drop a grant and its usage entirely (a revoked grant's record otherwise stays)."""
        with self._lock:
            grant = self._grants.get(token_digest(token))
            if grant is not None and hmac.compare_digest(grant.token, token):
                grant.revoked = True
                del self._grants[token_digest(token)]

    def find(self, token: str) -> Grant | None:
        with self._lock:
            grant = self._grants.get(token_digest(token))
        if grant is not None and hmac.compare_digest(grant.token.encode(), token.encode()):
            return grant
        return None

    # ----- per request (the proxy's loop) -----
    def authenticate(self, headers: Sequence[tuple[bytes, bytes]]) -> Grant | None:
        """The live grant of the request's token (`x-api-key`, else `Authorization: Bearer`)."""
        token: bytes | None = None
        for name, value in headers:
            if name == b"x-api-key":
                token = value.strip()
                break
            if name == b"authorization" and value[:7].lower() == b"bearer ":
                token = value[7:].strip()
        if not token:
            return None
        try:
            text = token.decode("ascii")
        except UnicodeDecodeError:
            return None
        grant = self.find(text)
        if grant is None:
            return None
        with self._lock:
            return None if grant.revoked else grant

    def spent(self, grant: Grant) -> bool:
        """True (and the grant marked exhausted) once its metered cost has reached its budget."""
        with self._lock:
            spent = grant.cost_usd >= grant.budget_usd
            if spent:
                grant.exhausted = True
        return spent

    def count_request(self, grant: Grant) -> None:
        with self._lock:
            grant.requests += 1

    def apply(self, metered: Metered) -> None:
        """Add what this request's usage gained since the last call to its grant."""
        u = metered.usage
        cost = metered.cost()
        with self._lock:
            g = metered.grant
            for name in TOKEN_FIELDS:
                value = getattr(u, name)
                setattr(g, name, getattr(g, name) + value - metered.applied.get(name, 0))
                metered.applied[name] = value
            g.cost_usd += cost - metered.applied_cost
            metered.applied_cost = cost
