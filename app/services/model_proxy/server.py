"""The model proxy: HTTP/1.1 (h11) on a Unix socket in front of the Anthropic Messages API.

Per request: route (`POST /v1/messages`, `POST /v1/messages/count_tokens`, query passed through;
anything else 404), authenticate the capability token (`x-api-key` or `Authorization: Bearer`,
constant-time; unknown or revoked 401), refuse a spent budget (400), then forward with the real key
on one shared keep-alive `httpx.AsyncClient` and stream the answer back chunk by chunk as it
arrives (chunked to the client unless upstream sent a length), metering the usage it reports.
Upstream answers, errors included, are passed back with their status, headers (minus hop-by-hop)
and body bytes unchanged. One log line per request (`model_proxy_request`); never the real key, a
token or a body.

This module handles the client connections; the grants are kept by `grants.GrantBook`, the
exchange with the API is `upstream.Upstream`, the h11 reading and error answers are `h11_io`.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import h11
import httpx
from pydantic import SecretStr

from app.config import Settings
from app.services.model_proxy.base import Usage
from app.services.model_proxy.grants import GrantBook, Metered
from app.services.model_proxy.h11_io import declared_length, drain_body, next_event, read_body, send_error
from app.services.model_proxy.metering import TOKEN_FIELDS
from app.services.model_proxy.serving import UnixSocketServer
from app.services.model_proxy.upstream import DEFAULT_UPSTREAM, Abort, Upstream

log = logging.getLogger(__name__)

FORWARDED_PATHS = frozenset({b"/v1/messages", b"/v1/messages/count_tokens"})
DEFAULT_MAX_BODY_BYTES = 64 * 1024 * 1024
# Longer than every timeout of the CLI (API_TIMEOUT_MS 600 s to headers; a stalled stream is given
# up after >= 300 s): the CLI decides when a request has taken too long, not the proxy.
DEFAULT_READ_TIMEOUT_SEC = 900.0

__all__ = ["DEFAULT_MAX_BODY_BYTES", "DEFAULT_READ_TIMEOUT_SEC", "DEFAULT_UPSTREAM", "ModelProxyServer"]


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
        api_key: SecretStr = key
        env = os.environ if environ is None else environ
        base = settings.anthropic_base_url or env.get("ANTHROPIC_BASE_URL") or DEFAULT_UPSTREAM
        self.max_body_bytes = max_body_bytes
        timeout = httpx.Timeout(connect=30.0, read=read_timeout_sec, write=120.0, pool=read_timeout_sec)
        self._grants = GrantBook()
        self._upstream = Upstream(base.rstrip("/"), api_key, timeout, self._grants)

    @property
    def upstream_url(self) -> str:
        return self._upstream.url

    # ----- grants (any thread) -----
    def grant(self, run_id: str, *, budget_usd: float) -> str:
        return self._grants.grant(run_id, budget_usd=budget_usd)

    def usage(self, token: str) -> Usage:
        return self._grants.usage(token)

    def revoke(self, token: str) -> None:
        self._grants.revoke(token)

    def forget(self, token: str) -> None:
        """Drop a grant and its usage entirely (a revoked grant's record otherwise stays)."""
        self._grants.forget(token)

    # ----- server loop -----
    async def _setup(self) -> None:
        await self._upstream.open()

    async def _teardown(self) -> None:
        await self._upstream.close()

    async def _serve_connection(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        conn = h11.Connection(h11.SERVER)
        while True:
            try:
                event = await next_event(conn, reader)
            except h11.RemoteProtocolError:
                await send_error(conn, writer, 400, "invalid_request_error", "malformed HTTP request")
                return
            if not isinstance(event, h11.Request):
                return  # ConnectionClosed (client done) or anything unexpected
            try:
                await self._handle(conn, reader, writer, event)
            except Abort:
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
            await drain_body(conn, reader, self.max_body_bytes)
            await send_error(
                conn,
                writer,
                404,
                "not_found_error",
                "auto-code model proxy: only POST /v1/messages and /v1/messages/count_tokens",
            )
            return done(404)
        headers = request.headers
        grant = self._grants.authenticate(headers)
        if grant is None:
            await drain_body(conn, reader, self.max_body_bytes)
            await send_error(conn, writer, 401, "authentication_error", "invalid x-api-key")
            return done(401)
        info["run_id"] = grant.run_id
        if self._grants.spent(grant):
            await drain_body(conn, reader, self.max_body_bytes)
            await send_error(
                conn,
                writer,
                400,
                "invalid_request_error",
                f"auto-code: run budget of ${grant.budget_usd:.2f} exhausted",
            )
            return done(400, exhausted=True)
        if declared_length(headers) > self.max_body_bytes:
            await send_error(conn, writer, 413, "request_too_large", "request body too large")
            return done(413)
        if conn.they_are_waiting_for_100_continue:
            writer.write(conn.send(h11.InformationalResponse(status_code=100, headers=[])))
        body = await read_body(conn, reader, self.max_body_bytes)
        if body is None:
            await send_error(conn, writer, 413, "request_too_large", "request body too large")
            return done(413)
        metered = Metered(grant=grant, request_model=_model_of(body))
        self._grants.count_request(grant)
        # Logged even when the exchange breaks: the status then says how (the answer's status if
        # it had been sent, else 499 for a client gone / 502 for upstream gone).
        state = {"status": 499}
        try:
            await self._upstream.forward(conn, reader, writer, request, path, query, body, metered, state)
        finally:
            self._grants.apply(metered)
            u = metered.usage
            done(
                state["status"],
                model=(metered.request_model or u.model or "")[:100],
                **{name: getattr(u, name) for name in TOKEN_FIELDS},
                cost_usd=round(metered.applied_cost, 6),
            )


def _model_of(body: bytes) -> str | None:
    try:
        parsed = json.loads(body)
    except ValueError:
        return None
    model = parsed.get("model") if isinstance(parsed, dict) else None
    return model if isinstance(model, str) else None
