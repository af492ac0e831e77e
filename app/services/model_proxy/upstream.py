"""The model proxy's upstream side: one request's exchange with the Anthropic API, metered.

The caller's credentials are replaced by the real key, and the request is sent on one shared
keep-alive `httpx.AsyncClient`. The answer is streamed back chunk by chunk as it arrives, with its
status, headers (minus hop-by-hop) and body bytes unchanged, while the usage it reports is read from
the body and added to the request's grant. The exchange is abandoned as soon as the client hangs up.
"""

from __future__ import annotations

import asyncio
import logging
import socket

import h11
import httpx
from pydantic import SecretStr

from app.services.model_proxy.grants import GrantBook, Metered
from app.services.model_proxy.h11_io import send_error, watch_for_hangup
from app.services.model_proxy.metering import Decompressor, JsonUsageReader, SseUsageScanner
from app.services.model_proxy.serving import HOP_BY_HOP

# The name the proxy's log lines have always had (one logger for all of them, whichever module).
log = logging.getLogger("app.services.model_proxy.server")

DEFAULT_UPSTREAM = "https://api.anthropic.com"
# Never forwarded upstream: the caller's credentials (replaced), framing and encoding (ours).
_DROP_REQUEST = HOP_BY_HOP | {b"x-api-key", b"authorization", b"host", b"content-length", b"accept-encoding"}


class Abort(Exception):
    """The upstream stream broke after the status was sent: drop the client connection."""


class Upstream:
    """The real API at `url` (no trailing slash), reached with `api_key`; usage goes to `book`.
    `open`/`close` run on the proxy's loop (the HTTP client belongs to it)."""

    def __init__(self, url: str, api_key: SecretStr, timeout: httpx.Timeout, book: GrantBook) -> None:
        self.url = url
        self._api_key = api_key
        self._timeout = timeout
        self._book = book
        self._http: httpx.AsyncClient | None = None

    async def open(self) -> None:
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

    async def close(self) -> None:
        if self._http is not None:
            await self._http.aclose()
            self._http = None

    async def forward(
        self,
        conn: h11.Connection,
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
        request: h11.Request,
        path: bytes,
        query: bytes,
        body: bytes,
        metered: Metered,
        state: dict[str, int],
    ) -> None:
        """The upstream exchange, abandoned as soon as the client hangs up (a CLI that gave up on a
        stalled stream must not leave the proxy waiting on upstream for the read timeout)."""
        exchange = asyncio.ensure_future(
            self._exchange(conn, writer, request, path, query, body, metered, state)
        )
        watcher = asyncio.ensure_future(watch_for_hangup(conn, reader))
        try:
            await asyncio.wait((exchange, watcher), return_when=asyncio.FIRST_COMPLETED)
        finally:
            if not exchange.done():
                exchange.cancel()
            watcher.cancel()
            await asyncio.gather(exchange, watcher, return_exceptions=True)
        if exchange.cancelled():
            raise ConnectionResetError("client hung up")
        exchange.result()  # re-raises Abort / ConnectionError

    async def _exchange(
        self,
        conn: h11.Connection,
        writer: asyncio.StreamWriter,
        request: h11.Request,
        path: bytes,
        query: bytes,
        body: bytes,
        metered: Metered,
        state: dict[str, int],
    ) -> None:
        assert self._http is not None
        url = self.url + path.decode("ascii")
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
            await send_error(
                conn,
                writer,
                502,
                "api_error",
                f"auto-code model proxy: upstream unreachable ({type(exc).__name__})",
            )
            return
        state["status"] = response.status_code
        try:
            feeder = meter_for(response, metered, path)
            writer.write(
                conn.send(
                    h11.Response(
                        status_code=response.status_code,
                        headers=response_headers(response.headers.raw),
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
                            self._book.apply(metered)
                    writer.write(conn.send(h11.Data(data=chunk)))
                    await writer.drain()
            except httpx.HTTPError as exc:
                log.warning(
                    "model_proxy_upstream_broke",
                    extra={"run_id": metered.grant.run_id, "error": type(exc).__name__},
                )
                raise Abort from exc
            if feeder is not None and feeder.finish():
                self._book.apply(metered)
            writer.write(conn.send(h11.EndOfMessage()))
            await writer.drain()
        finally:
            await response.aclose()


def meter_for(response: httpx.Response, metered: Metered, path: bytes) -> Feeder | None:
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
        return Feeder(reader)
    if encoding in ("gzip", "deflate"):
        return Feeder(reader, Decompressor(encoding))
    log.warning(
        "model_proxy_unmetered_encoding",
        extra={"run_id": metered.grant.run_id, "content_encoding": encoding[:40]},
    )
    return None


class Feeder:
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


def response_headers(raw: list[tuple[bytes, bytes]]) -> list[tuple[bytes, bytes]]:
    named = {n.strip().lower() for k, v in raw if k.lower() == b"connection" for n in v.split(b",")}
    return [(k, v) for k, v in raw if k.lower() not in HOP_BY_HOP and k.lower() not in named]
