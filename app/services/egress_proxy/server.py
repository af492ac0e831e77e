"""The egress proxy: an allowlisting HTTP proxy on a Unix socket (own thread and loop).

One request per client connection: `CONNECT host:port` becomes a byte tunnel to the checked
address; an absolute-form `GET`/`HEAD http://host[:port]/path` is sent upstream in origin form with
`Connection: close` and the answer is copied back as it comes. Anything refused gets a one-line
403 (host, port or address not allowed), 400 (malformed), 405 (other methods) or 502 (cannot
resolve / connect), then the connection is closed. What may be reached is decided by `allowlist.py`.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Iterable, Sequence
from http import HTTPStatus
from pathlib import Path
from urllib.parse import urlsplit

import h11

from app.services.egress_proxy.allowlist import Allowlist, Entry, Refused, is_public, normalize_host
from app.services.egress_proxy.base import Resolver
from app.services.model_proxy.h11_io import next_event
from app.services.model_proxy.serving import HOP_BY_HOP, READ_CHUNK, UnixSocketServer

log = logging.getLogger(__name__)

DEFAULT_PORTS = (443, 80)
CONNECT_TIMEOUT_SEC = 30.0
_HOP_BY_HOP = HOP_BY_HOP | {b"host"}  # the proxy writes its own Host for the origin

# Refused, is_public and normalize_host were defined here; their import path stays.
__all__ = [
    "CONNECT_TIMEOUT_SEC",
    "DEFAULT_PORTS",
    "EgressProxyServer",
    "Refused",
    "is_public",
    "normalize_host",
]


class EgressProxyServer(UnixSocketServer):
    """The `EgressProxy`. `resolver` replaces the system resolver (tests, a pinned DNS)."""

    thread_name = "egress-proxy"

    def __init__(
        self,
        socket_path: Path,
        allowed_hosts: Sequence[str],
        *,
        allowed_ports: Iterable[int] = DEFAULT_PORTS,
        resolver: Resolver | None = None,
        connect_timeout_sec: float = CONNECT_TIMEOUT_SEC,
    ) -> None:
        super().__init__(socket_path)
        self._allowlist = Allowlist(allowed_hosts, allowed_ports, resolver)
        self._connect_timeout = connect_timeout_sec

    # ----- policy -----
    @property
    def entries(self) -> tuple[Entry, ...]:
        return self._allowlist.entries

    @property
    def allowed_ports(self) -> frozenset[int]:
        return self._allowlist.allowed_ports

    async def check(self, raw_host: str, port: int) -> list[str]:
        """The addresses `raw_host:port` may be reached at (first usable first); Refused if none."""
        return await self._allowlist.check(raw_host, port)

    async def _open(self, raw_host: str, port: int) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
        addresses = await self.check(raw_host, port)
        last: OSError | None = None
        for address in addresses:
            try:
                return await asyncio.wait_for(asyncio.open_connection(address, port), self._connect_timeout)
            except (OSError, TimeoutError) as exc:
                last = exc if isinstance(exc, OSError) else OSError("timed out")
        raise Refused(502, f"cannot connect to {raw_host[:100]}:{port}: {last}")

    # ----- serving -----
    async def _serve_connection(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        conn = h11.Connection(h11.SERVER)
        try:
            request = await next_event(conn, reader)
            if not isinstance(request, h11.Request):
                return
            method = request.method.decode("ascii", "replace")
            target = request.target.decode("ascii", "replace")
            if method == "CONNECT":
                host, port = _authority(target)
                await self._tunnel(conn, reader, writer, host, port)
            elif method in ("GET", "HEAD"):
                await self._forward(conn, reader, writer, request, target)
            else:
                raise Refused(405, f"method {method[:20]} is not supported (CONNECT, GET, HEAD only)")
        except h11.RemoteProtocolError:
            with contextlib.suppress(Exception):
                await _answer(conn, writer, 400, "malformed request")
        except Refused as exc:
            log.warning("egress_refused",
                        extra={"host": exc.host, "status": exc.status, "reason": exc.reason})
            with contextlib.suppress(Exception):
                await _answer(conn, writer, exc.status, exc.reason)

    async def _tunnel(
        self,
        conn: h11.Connection,
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
        host: str,
        port: int,
    ) -> None:
        event = await next_event(conn, reader)
        if not isinstance(event, h11.EndOfMessage):
            raise _with_host(Refused(400, "CONNECT with a body"), host)
        try:
            up_reader, up_writer = await self._open(host, port)
        except Refused as exc:
            raise _with_host(exc, host) from None
        started = time.perf_counter()
        writer.write(conn.send(h11.Response(status_code=200, headers=[], reason=b"Connection established")))
        leftover, _ = conn.trailing_data
        if leftover:
            up_writer.write(leftover)
        sent, received = await _splice(reader, writer, up_reader, up_writer)
        log.info(
            "egress_tunnel",
            extra={
                "host": host,
                "port": port,
                "bytes_out": sent + len(leftover),
                "bytes_in": received,
                "duration_ms": round((time.perf_counter() - started) * 1000, 1),
            },
        )

    async def _forward(
        self,
        conn: h11.Connection,
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
        request: h11.Request,
        target: str,
    ) -> None:
        url = urlsplit(target)
        if url.scheme.lower() != "http" or not url.hostname:
            raise Refused(400, "expected an absolute http:// URL (use CONNECT for https)")
        try:
            port = url.port or 80
        except ValueError:
            raise Refused(400, "bad port") from None
        host = url.hostname
        event = await next_event(conn, reader)
        if not isinstance(event, h11.EndOfMessage):
            raise _with_host(Refused(400, "GET/HEAD with a body is not supported"), host)
        try:
            up_reader, up_writer = await self._open(host, port)
        except Refused as exc:
            raise _with_host(exc, host) from None
        path = (url.path or "/") + (f"?{url.query}" if url.query else "")
        named = {n.strip().lower() for k, v in request.headers if k == b"connection" for n in v.split(b",")}
        host_header = url.netloc.rpartition("@")[2]  # never forward userinfo
        head = [f"{request.method.decode()} {path} HTTP/1.1".encode(), b"host: " + host_header.encode()]
        head += [
            k + b": " + v
            for k, v in request.headers
            if k not in _HOP_BY_HOP and k not in named and not k.startswith(b"proxy-")
        ]
        head.append(b"connection: close")
        up_writer.write(b"\r\n".join(head) + b"\r\n\r\n")
        received = 0
        try:
            while data := await up_reader.read(READ_CHUNK):
                received += len(data)
                writer.write(data)
                await writer.drain()
        finally:
            up_writer.close()
        log.info("egress_get", extra={"host": host, "port": port, "bytes_in": received})


def _with_host(exc: Refused, host: str) -> Refused:
    exc.host = host
    return exc


def _authority(target: str) -> tuple[str, int]:
    host, sep, port = target.rpartition(":")
    if not sep or not port.isdigit() or not host:
        raise Refused(400, "CONNECT needs host:port")
    return host, int(port)


async def _answer(conn: h11.Connection, writer: asyncio.StreamWriter, status: int, reason: str) -> None:
    if conn.our_state not in (h11.IDLE, h11.SEND_RESPONSE):
        return
    data = f"auto-code egress proxy: {reason}\n".encode()
    writer.write(
        conn.send(
            h11.Response(
                status_code=status,
                reason=HTTPStatus(status).phrase.encode(),
                headers=[
                    (b"content-type", b"text/plain; charset=utf-8"),
                    (b"content-length", str(len(data)).encode()),
                    (b"connection", b"close"),
                ],
            )
        )
    )
    writer.write(conn.send(h11.Data(data=data)))
    writer.write(conn.send(h11.EndOfMessage()))
    await writer.drain()


async def _splice(
    a_reader: asyncio.StreamReader,
    a_writer: asyncio.StreamWriter,
    b_reader: asyncio.StreamReader,
    b_writer: asyncio.StreamWriter,
) -> tuple[int, int]:
    """Copy both ways until both sides are done; (bytes a->b, bytes b->a)."""

    async def pipe(src: asyncio.StreamReader, dst: asyncio.StreamWriter) -> int:
        total = 0
        try:
            while data := await src.read(READ_CHUNK):
                total += len(data)
                dst.write(data)
                await dst.drain()
        except (ConnectionError, OSError):
            pass
        finally:
            with contextlib.suppress(Exception):
                if dst.can_write_eof():
                    dst.write_eof()
        return total

    try:
        sent, received = await asyncio.gather(pipe(a_reader, b_writer), pipe(b_reader, a_writer))
    finally:
        b_writer.close()
    return sent, received
