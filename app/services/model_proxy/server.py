"""The model proxy: HTTP/1.1 (h11) on a Unix socket in front of the Anthropic Messages API.

Per request: route (`POST /v1/messages`, `POST /v1/messages/count_tokens`, query passed through;
anything else 404), authenticate the capability token (`x-api-key` or `Authorization: Bearer`,
constant-time; unknown or revoked 401), refuse a spent budget (400), then forward with the real key
on one shared keep-alive `httpx.AsyncClient` and stream the answer back chunk by chunk as it
arrives (chunked to the client unless upstream sent a length), metering the usage it reports.
Upstream answers, errors included, are passed back with their status, headers (minus hop-by-hop)
and body bytes unchanged. One log line per request (`model_proxy_request`); never the real key, a
token or a body.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import logging
import os
import secrets
import socket
import threading
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import h11
import httpx
from pydantic import SecretStr

from app.config import Settings
from app.services.model_proxy import pricing
from app.services.model_proxy.base import Usage
from app.services.model_proxy.metering import (
    TOKEN_FIELDS,
    Decompressor,
    JsonUsageReader,
    RequestUsage,
    SseUsageScanner,
)
from app.services.model_proxy.serving import HOP_BY_HOP, READ_CHUNK, UnixSocketServer

log = logging.getLogger(__name__)

DEFAULT_UPSTREAM = "https://api.anthropic.com"
FORWARDED_PATHS = frozenset({b"/v1/messages", b"/v1/messages/count_tokens"})
DEFAULT_MAX_BODY_BYTES = 64 * 1024 * 1024
# Longer than every timeout of the CLI (API_TIMEOUT_MS 600 s to headers; a stalled stream is given
# up after >= 300 s): the CLI decides when a request has taken too long, not the proxy.
DEFAULT_READ_TIMEOUT_SEC = 900.0
_PIPELINE_BUFFER_MAX = 1024 * 1024
# Never forwarded upstream: the caller's credentials (replaced), framing and encoding (ours).
_DROP_REQUEST = HOP_BY_HOP | {b"x-api-key", b"authorization", b"host", b"content-length", b"accept-encoding"}


@dataclass
class _Grant:
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
class _Metered:
    """One forwarded request's usage and what of it has been added to its grant so far."""

    grant: _Grant
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


class _Abort(Exception):
    """The upstream stream broke after the status was sent: drop the client connection."""


class ModelProxyServer(UnixSocketServer):
    """The `ModelProxy`. `settings` gives the real key (`ANTHROPIC_API_KEY`, required) and the
    upstream (`ANTHROPIC_BASE_URL`; else the process environment's, read now; else
    api.anthropic.com). `environ` replaces the process environment for that lookup (tests)."""

    thread_name = "model-proxy"

    def __init__(
        self,
        settings: Settings,
        socket_path: Path,
        *,
        environ: Mapping[str, str] | None = None,
        max_body_bytes: int = DEFAULT_MAX_BODY_BYTES,
        read_timeout_sec: float = DEFAULT_READ_TIMEOUT_SEC,
    ) -> None:
        super().__init__(socket_path)
        key = settings.anthropic_api_key
        if key is None or not key.get_secret_value().strip():
            raise ValueError("the model proxy needs ANTHROPIC_API_KEY (the real key it adds upstream)")
        self._api_key: SecretStr = key
        env = os.environ if environ is None else environ
        base = settings.anthropic_base_url or env.get("ANTHROPIC_BASE_URL") or DEFAULT_UPSTREAM
        self.upstream_url = base.rstrip("/")
        self.max_body_bytes = max_body_bytes
        self._timeout = httpx.Timeout(connect=30.0, read=read_timeout_sec, write=120.0, pool=read_timeout_sec)
        self._grants: dict[bytes, _Grant] = {}  # sha256(token) -> grant
        self._grants_lock = threading.Lock()
        self._http: httpx.AsyncClient | None = None

    # ----- grants (any thread) -----
    def grant(self, run_id: str, *, budget_usd: float) -> str:
        if budget_usd < 0:
            raise ValueError("budget_usd must be >= 0")
        token = secrets.token_urlsafe(32)
        with self._grants_lock:
            self._grants[_digest(token)] = _Grant(run_id=run_id, budget_usd=float(budget_usd), token=token)
        return token

    def usage(self, token: str) -> Usage:
        grant = self._find(token)
        if grant is None:
            raise KeyError("unknown model proxy token")
        with self._grants_lock:
            return grant.snapshot()

    def revoke(self, token: str) -> None:
        grant = self._find(token)
        if grant is not None:
            with self._grants_lock:
                grant.revoked = True

    def forget(self, token: str) -> None:
        """Drop a grant and its usage entirely (a revoked grant's record otherwise stays)."""
        with self._grants_lock:
            grant = self._grants.get(_digest(token))
            if grant is not None and hmac.compare_digest(grant.token, token):
                grant.revoked = True
                del self._grants[_digest(token)]

    def _find(self, token: str) -> _Grant | None:
        with self._grants_lock:
            grant = self._grants.get(_digest(token))
        if grant is not None and hmac.compare_digest(grant.token.encode(), token.encode()):
            return grant
        return None

    # ----- server loop -----
    async def _setup(self) -> None:
        # TCP_NODELAY: httpx writes a request's head and body separately; with Nagle the body
        # waits for the upstream's delayed ACK (~40 ms per request on Linux).
        transport = httpx.AsyncHTTPTransport(
            socket_options=[(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)],
            limits=httpx.Limits(max_connections=None, max_keepalive_connections=32, keepalive_expiry=60),
        )
        self._http = httpx.AsyncClient(
            transport=transport,
            timeout=self._timeout,
            follow_redirects=False,
        )

    async def _teardown(self) -> None:
        if self._http is not None:
            await self._http.aclose()
            self._http = None

    async def _serve_connection(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        conn = h11.Connection(h11.SERVER)
        while True:
            try:
                event = await _next_event(conn, reader)
            except h11.RemoteProtocolError:
                await _send_simple(conn, writer, 400, "invalid_request_error", "malformed HTTP request")
                return
            if not isinstance(event, h11.Request):
                return  # ConnectionClosed (client done) or anything unexpected
            try:
                await self._handle(conn, reader, writer, event)
            except _Abort:
                writer.transport.abort()
                return
            except h11.RemoteProtocolError:
                return
            if conn.our_state is not h11.DONE or conn.their_state is not h11.DONE:
                return  # must close (Connection: close, HTTP/1.0, body left unread)
            conn.start_next_cycle()

    async def _handle(
        self,
        conn: h11.Connection,
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
        request: h11.Request,
    ) -> None:
        started = time.perf_counter()
        path, _, query = request.target.partition(b"?")
        info: dict[str, Any] = {"run_id": None, "path": path.decode("ascii", "replace")[:200]}

        def done(status: int, **extra: Any) -> None:
            info.update(extra)
            log.info(
                "model_proxy_request",
                extra={
                    **info,
                    "status": status,
                    "duration_ms": round((time.perf_counter() - started) * 1000, 2),
                },
            )

        if request.method != b"POST" or path not in FORWARDED_PATHS:
            await _drain_body(conn, reader, self.max_body_bytes)
            await _send_simple(
                conn,
                writer,
                404,
                "not_found_error",
                "auto-code model proxy: only POST /v1/messages and /v1/messages/count_tokens",
            )
            return done(404)
        headers = request.headers
        grant = self._authenticate(headers)
        if grant is None:
            await _drain_body(conn, reader, self.max_body_bytes)
            await _send_simple(conn, writer, 401, "authentication_error", "invalid x-api-key")
            return done(401)
        info["run_id"] = grant.run_id
        with self._grants_lock:
            spent = grant.cost_usd >= grant.budget_usd
            if spent:
                grant.exhausted = True
        if spent:
            await _drain_body(conn, reader, self.max_body_bytes)
            await _send_simple(
                conn,
                writer,
                400,
                "invalid_request_error",
                f"auto-code: run budget of ${grant.budget_usd:.2f} exhausted",
            )
            return done(400, exhausted=True)
        if _declared_length(headers) > self.max_body_bytes:
            await _send_simple(conn, writer, 413, "request_too_large", "request body too large")
            return done(413)
        if conn.they_are_waiting_for_100_continue:
            writer.write(conn.send(h11.InformationalResponse(status_code=100, headers=[])))
        body = await _read_body(conn, reader, self.max_body_bytes)
        if body is None:
            await _send_simple(conn, writer, 413, "request_too_large", "request body too large")
            return done(413)
        metered = _Metered(grant=grant, request_model=_model_of(body))
        with self._grants_lock:
            grant.requests += 1
        # Logged even when the exchange breaks: the status then says how (the answer's status if
        # it had been sent, else 499 for a client gone / 502 for upstream gone).
        state = {"status": 499}
        try:
            await self._forward(conn, reader, writer, request, path, query, body, metered, state)
        finally:
            self._apply(metered)
            u = metered.usage
            done(
                state["status"],
                model=(metered.request_model or u.model or "")[:100],
                **{name: getattr(u, name) for name in TOKEN_FIELDS},
                cost_usd=round(metered.applied_cost, 6),
            )

    def _authenticate(self, headers: Sequence[tuple[bytes, bytes]]) -> _Grant | None:
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
        grant = self._find(text)
        if grant is None:
            return None
        with self._grants_lock:
            return None if grant.revoked else grant

    def _apply(self, metered: _Metered) -> None:
        """Add what this request's usage gained since the last call to its grant."""
        u = metered.usage
        cost = metered.cost()
        with self._grants_lock:
            g = metered.grant
            for name in TOKEN_FIELDS:
                value = getattr(u, name)
                setattr(g, name, getattr(g, name) + value - metered.applied.get(name, 0))
                metered.applied[name] = value
            g.cost_usd += cost - metered.applied_cost
            metered.applied_cost = cost

    async def _forward(
        self,
        conn: h11.Connection,
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
        request: h11.Request,
        path: bytes,
        query: bytes,
        body: bytes,
        metered: _Metered,
        state: dict[str, int],
    ) -> None:
        """The upstream exchange, abandoned as soon as the client hangs up (a CLI that gave up on a
        stalled stream must not leave the proxy waiting on upstream for the read timeout)."""
        exchange = asyncio.ensure_future(
            self._exchange(conn, writer, request, path, query, body, metered, state)
        )
        watcher = asyncio.ensure_future(_watch_for_hangup(conn, reader))
        try:
            await asyncio.wait((exchange, watcher), return_when=asyncio.FIRST_COMPLETED)
        finally:
            if not exchange.done():
                exchange.cancel()
            watcher.cancel()
            await asyncio.gather(exchange, watcher, return_exceptions=True)
        if exchange.cancelled():
            raise ConnectionResetError("client hung up")
        exchange.result()  # re-raises _Abort / ConnectionError

    async def _exchange(
        self,
        conn: h11.Connection,
        writer: asyncio.StreamWriter,
        request: h11.Request,
        path: bytes,
        query: bytes,
        body: bytes,
        metered: _Metered,
        state: dict[str, int],
    ) -> None:
        assert self._http is not None
        url = self.upstream_url + path.decode("ascii")
        if query:
            url += "?" + query.decode("ascii", "replace")
        upstream_headers = [(k, v) for k, v in request.headers if k not in _DROP_REQUEST]
        upstream_headers.append((b"x-api-key", self._api_key.get_secret_value().encode()))
        upstream_headers.append((b"accept-encoding", b"identity"))
        upstream_request = self._http.build_request("POST", url, headers=upstream_headers, content=body)
        try:
            response = await self._http.send(upstream_request, stream=True)
        except httpx.HTTPError as exc:
            state["status"] = 502
            await _send_simple(
                conn,
                writer,
                502,
                "api_error",
                f"auto-code model proxy: upstream unreachable ({type(exc).__name__})",
            )
            return
        state["status"] = response.status_code
        try:
            feeder = self._meter_for(response, metered, path)
            writer.write(
                conn.send(
                    h11.Response(
                        status_code=response.status_code,
                        headers=_response_headers(response.headers.raw),
                        reason=response.reason_phrase.encode("ascii", "replace"),
                    )
                )
            )
            # Usage is added to the grant before the bytes that report it are passed on, so a
            # client that has the whole answer also sees it metered. With a length the last chunk
            # is known; otherwise the end is the terminator written after the loop.
            length = response.headers.get("content-length")
            remaining = int(length) if length and length.isdigit() else -1
            try:
                async for chunk in response.aiter_raw():
                    if feeder is not None:
                        remaining -= len(chunk)
                        changed = feeder(chunk)
                        if remaining == 0:
                            changed |= feeder.finish()
                        if changed:
                            self._apply(metered)
                    writer.write(conn.send(h11.Data(data=chunk)))
                    await writer.drain()
            except httpx.HTTPError as exc:
                log.warning(
                    "model_proxy_upstream_broke",
                    extra={"run_id": metered.grant.run_id, "error": type(exc).__name__},
                )
                raise _Abort from exc
            if feeder is not None and feeder.finish():
                self._apply(metered)
            writer.write(conn.send(h11.EndOfMessage()))
            await writer.drain()
        finally:
            await response.aclose()

    def _meter_for(self, response: httpx.Response, metered: _Metered, path: bytes) -> _Feeder | None:
        """A `feed(chunk) -> changed` callable for the answer's body, or None (nothing to meter)."""
        if response.status_code != 200 or path != b"/v1/messages":
            return None
        content_type = response.headers.get("content-type", "")
        reader: SseUsageScanner | JsonUsageReader
        if content_type.startswith("text/event-stream"):
            reader = SseUsageScanner(metered.usage)
        elif "json" in content_type:
            reader = JsonUsageReader(metered.usage)
        else:
            return None
        encoding = response.headers.get("content-encoding", "identity").strip().lower()
        if encoding in ("", "identity"):
            return _Feeder(reader)
        if encoding in ("gzip", "deflate"):
            return _Feeder(reader, Decompressor(encoding))
        log.warning(
            "model_proxy_unmetered_encoding",
            extra={"run_id": metered.grant.run_id, "content_encoding": encoding[:40]},
        )
        return None


class _Feeder:
    def __init__(self, reader: SseUsageScanner | JsonUsageReader, decompressor: Decompressor | None = None):
        self._reader, self._decompressor = reader, decompressor
        self._finished = False

    def __call__(self, chunk: bytes) -> bool:
        if self._decompressor is not None:
            chunk = self._decompressor.feed(chunk)
        return self._reader.feed(chunk)

    def finish(self) -> bool:
        """End of the body (idempotent): a JSON answer is read now; True if the usage changed."""
        if self._finished:
            return False
        self._finished = True
        return isinstance(self._reader, JsonUsageReader) and self._reader.finish()


# ----- helpers -----
def _digest(token: str) -> bytes:
    return hashlib.sha256(token.encode("utf-8", "surrogatepass")).digest()


def _model_of(body: bytes) -> str | None:
    try:
        parsed = json.loads(body)
    except ValueError:
        return None
    model = parsed.get("model") if isinstance(parsed, dict) else None
    return model if isinstance(model, str) else None


def _declared_length(headers: Sequence[tuple[bytes, bytes]]) -> int:
    for name, value in headers:
        if name == b"content-length":
            try:
                return int(value)
            except ValueError:
                return 0
    return 0


def _response_headers(raw: list[tuple[bytes, bytes]]) -> list[tuple[bytes, bytes]]:
    named = {n.strip().lower() for k, v in raw if k.lower() == b"connection" for n in v.split(b",")}
    return [(k, v) for k, v in raw if k.lower() not in HOP_BY_HOP and k.lower() not in named]


async def _next_event(conn: h11.Connection, reader: asyncio.StreamReader) -> Any:
    while True:
        event = conn.next_event()
        if event is not h11.NEED_DATA:
            return event
        conn.receive_data(await reader.read(READ_CHUNK))


async def _watch_for_hangup(conn: h11.Connection, reader: asyncio.StreamReader) -> None:
    """Return when the client closes its side. Bytes it sends meanwhile (a pipelined request) are
    handed to h11 for the next cycle, up to a bound past which watching stops."""
    buffered = 0
    while buffered < _PIPELINE_BUFFER_MAX:
        data = await reader.read(READ_CHUNK)
        conn.receive_data(data)
        if not data:
            return
        buffered += len(data)
    await asyncio.Event().wait()  # stop watching: never hang up


async def _read_body(conn: h11.Connection, reader: asyncio.StreamReader, limit: int) -> bytes | None:
    """The request body, or None past `limit` bytes (the connection must then be closed)."""
    parts: list[bytes] = []
    size = 0
    while True:
        event = await _next_event(conn, reader)
        if isinstance(event, h11.Data):
            size += len(event.data)
            if size > limit:
                return None
            parts.append(event.data)
        elif isinstance(event, h11.EndOfMessage):
            return b"".join(parts)
        else:
            raise h11.RemoteProtocolError("unexpected event in request body")


async def _drain_body(conn: h11.Connection, reader: asyncio.StreamReader, limit: int) -> None:
    """Read and discard the body of a refused request so the connection can be reused. A client
    waiting for `100 Continue` sends no body: the connection is closed after the answer instead."""
    if conn.they_are_waiting_for_100_continue:
        return
    size = 0
    while conn.their_state is h11.SEND_BODY:
        event = await _next_event(conn, reader)
        if isinstance(event, h11.Data):
            size += len(event.data)
            if size > limit:
                return
        elif isinstance(event, h11.EndOfMessage):
            return


async def _send_simple(
    conn: h11.Connection, writer: asyncio.StreamWriter, status: int, kind: str, message: str
) -> None:
    """An answer in the API's error shape (what the CLI parses)."""
    if conn.our_state not in (h11.IDLE, h11.SEND_RESPONSE):
        return
    data = json.dumps({"type": "error", "error": {"type": kind, "message": message}}).encode()
    writer.write(
        conn.send(
            h11.Response(
                status_code=status,
                headers=[
                    (b"content-type", b"application/json"),
                    (b"content-length", str(len(data)).encode()),
                ],
            )
        )
    )
    writer.write(conn.send(h11.Data(data=data)))
    writer.write(conn.send(h11.EndOfMessage()))
    await writer.drain()
