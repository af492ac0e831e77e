"""The model proxy's client side of the wire: h11 on an asyncio stream.

Reading a request's events and body (bounded), discarding the body of a refused request, noticing a
client hang-up while upstream is answering, and answering in the Anthropic API's error shape.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Sequence
from typing import Any

import h11

from app.services.model_proxy.serving import READ_CHUNK

_PIPELINE_BUFFER_MAX = 1024 * 1024


def declared_length(headers: Sequence[tuple[bytes, bytes]]) -> int:
    for name, value in headers:
        if name == b"content-length":
            try:
                return int(value)
            except ValueError:
                return 0
    return 0


async def next_event(conn: h11.Connection, reader: asyncio.StreamReader) -> Any:
    while True:
        event = conn.next_event()
        if event is not h11.NEED_DATA:
            return event
        conn.receive_data(await reader.read(READ_CHUNK))


async def watch_for_hangup(conn: h11.Connection, reader: asyncio.StreamReader) -> None:
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


async def read_body(conn: h11.Connection, reader: asyncio.StreamReader, limit: int) -> bytes | None:
    """The request body, or None past `limit` bytes (the connection must then be closed)."""
    parts: list[bytes] = []
    size = 0
    while True:
        event = await next_event(conn, reader)
        if isinstance(event, h11.Data):
            size += len(event.data)
            if size > limit:
                return None
            parts.append(event.data)
        elif isinstance(event, h11.EndOfMessage):
            return b"".join(parts)
        else:
            raise h11.RemoteProtocolError("unexpected event in request body")


async def drain_body(conn: h11.Connection, reader: asyncio.StreamReader, limit: int) -> None:
    """Read and discard the body of a refused request so the connection can be reused. A client
    waiting for `100 Continue` sends no body: the connection is closed after the answer instead."""
    if conn.they_are_waiting_for_100_continue:
        return
    size = 0
    while conn.their_state is h11.SEND_BODY:
        event = await next_event(conn, reader)
        if isinstance(event, h11.Data):
            size += len(event.data)
            if size > limit:
                return
        elif isinstance(event, h11.EndOfMessage):
            return


async def send_error(
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
