"""Reading the usage the Messages API reports, from a stream as it passes or from a JSON answer.

Streaming (`text/event-stream`): `message_start.message.usage` carries the input side (input,
cache-creation and cache-read tokens) and a first output count; each `message_delta.usage` carries
*cumulative* counts (output tokens, and possibly final input/cache figures). So every field keeps
the largest value seen. A JSON answer (`stream: false`) carries `usage` in its body.
"""

from __future__ import annotations

import json
import zlib
from dataclasses import dataclass
from typing import Any, TypeGuard

TOKEN_FIELDS = ("input_tokens", "output_tokens", "cache_creation_input_tokens", "cache_read_input_tokens")
_INTERESTING_EVENTS = (b"message_start", b"message_delta")
MAX_EVENT_BYTES = 8 * 1024 * 1024  # a larger SSE event is passed on but not parsed
MAX_JSON_BYTES = 32 * 1024 * 1024


@dataclass
class RequestUsage:
    """Token counts of one request (the largest value reported for each field)."""

    input_tokens: int = 0
    output_tokens: int = 0
    cache_creation_input_tokens: int = 0
    cache_read_input_tokens: int = 0
    cache_creation_1h_input_tokens: int = 0  # part of cache_creation written to the 1-hour cache
    model: str | None = None  # the model the answer names

    def merge(self, usage: Any) -> bool:
        """Take the larger of each figure in `usage` (an API usage object); True if any changed."""
        if not isinstance(usage, dict):
            return False
        changed = False
        for name in TOKEN_FIELDS:
            value = usage.get(name)
            if _count(value) and value > getattr(self, name):
                setattr(self, name, value)
                changed = True
        detail = usage.get("cache_creation")
        if isinstance(detail, dict):
            value = detail.get("ephemeral_1h_input_tokens")
            if _count(value) and value > self.cache_creation_1h_input_tokens:
                self.cache_creation_1h_input_tokens = value
                changed = True
        return changed

    def merge_event(self, event: Any) -> bool:
        """Apply one decoded SSE event (`message_start` / `message_delta`)."""
        if not isinstance(event, dict):
            return False
        kind = event.get("type")
        if kind == "message_start":
            message = event.get("message")
            if isinstance(message, dict):
                if isinstance(message.get("model"), str):
                    self.model = message["model"]
                return self.merge(message.get("usage"))
        elif kind == "message_delta":
            return self.merge(event.get("usage"))
        return False

    def merge_message(self, body: Any) -> bool:
        """Apply a whole JSON message (non-streaming answer)."""
        if not isinstance(body, dict):
            return False
        if isinstance(body.get("model"), str):
            self.model = body["model"]
        return self.merge(body.get("usage"))


def _count(value: object) -> TypeGuard[int]:
    return isinstance(value, int) and not isinstance(value, bool) and value >= 0


class SseUsageScanner:
    """Incremental SSE parser that only decodes `message_start`/`message_delta` events."""

    def __init__(self, usage: RequestUsage) -> None:
        self.usage = usage
        self._partial = b""  # an incomplete line
        self._skipping = False  # the current line grew past MAX_EVENT_BYTES: ignore it
        self._event: bytes | None = None
        self._data: list[bytes] = []
        self._data_len = 0

    def feed(self, chunk: bytes) -> bool:
        """Scan the next bytes of the stream; True if the usage changed."""
        changed = False
        lines = chunk.split(b"\n")
        lines[0] = self._partial + lines[0]
        self._partial = lines.pop()
        if len(self._partial) > MAX_EVENT_BYTES:
            self._partial, self._skipping = b"", True
        for raw in lines:
            if self._skipping:
                self._skipping = False
                continue
            changed |= self._line(raw.removesuffix(b"\r"))
        return changed

    def _line(self, line: bytes) -> bool:
        if not line:
            return self._dispatch()
        if line.startswith(b"event:"):
            self._event = line[6:].strip()
        elif line.startswith(b"data:"):
            if self._event is not None and self._event not in _INTERESTING_EVENTS:
                return False  # content deltas and pings: never decoded
            part = line[5:].removeprefix(b" ")
            self._data_len += len(part)
            if self._data_len <= MAX_EVENT_BYTES:
                self._data.append(part)
        return False

    def _dispatch(self) -> bool:
        data, too_big = b"\n".join(self._data), self._data_len > MAX_EVENT_BYTES
        self._event, self._data, self._data_len = None, [], 0
        if not data or too_big or b"message_" not in data:
            return False
        try:
            event = json.loads(data)
        except ValueError:
            return False
        return self.usage.merge_event(event)


class JsonUsageReader:
    """Collects a JSON answer (up to MAX_JSON_BYTES) and reads its usage at the end."""

    def __init__(self, usage: RequestUsage) -> None:
        self.usage = usage
        self._parts: list[bytes] = []
        self._size = 0

    def feed(self, chunk: bytes) -> bool:
        self._size += len(chunk)
        if self._size <= MAX_JSON_BYTES:
            self._parts.append(chunk)
        return False

    def finish(self) -> bool:
        if self._size > MAX_JSON_BYTES:
            return False
        try:
            body = json.loads(b"".join(self._parts))
        except ValueError:
            return False
        return self.usage.merge_message(body)


class Decompressor:
    """Undo a gzip/deflate content-encoding for metering only (the bytes are passed on as they
    came). The proxy asks upstream for `identity`, so this is for gateways that compress anyway."""

    def __init__(self, encoding: str) -> None:
        self._z = zlib.decompressobj(wbits=zlib.MAX_WBITS | 32 if encoding == "gzip" else zlib.MAX_WBITS)
        self._raw_fallback = encoding == "deflate"

    def feed(self, chunk: bytes) -> bytes:
        try:
            return self._z.decompress(chunk)
        except zlib.error:
            if not self._raw_fallback:
                raise
            self._raw_fallback = False
            self._z = zlib.decompressobj(wbits=-zlib.MAX_WBITS)  # raw deflate without zlib header
            return self._z.decompress(chunk)
