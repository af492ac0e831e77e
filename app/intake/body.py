"""Reading the webhook body safely: JSON media type only, and never more than MAX_BODY_BYTES.

The size check happens twice: on `Content-Length` before any byte is read, and while streaming (a
chunked body has no length, and a client may lie), so an oversized body is refused after at most
`max_bytes` + one chunk is held in memory.
"""

from __future__ import annotations

from starlette.requests import Request

from app.errors import BadRequest, PayloadTooLarge, UnsupportedMediaType


def check_content_type(value: str | None) -> None:
    """Accept `application/json` and `application/<x>+json`, any parameters (`; charset=UTF-8`)."""
    media = (value or "").split(";", 1)[0].strip().lower()
    if media == "application/json" or (media.startswith("application/") and media.endswith("+json")):
        return
    shown = media or "none"
    raise UnsupportedMediaType(
        f"Content-Type must be application/json, got {shown[:80]}", code="unsupported_media_type"
    )


def _too_large(max_bytes: int) -> PayloadTooLarge:
    return PayloadTooLarge(f"body larger than {max_bytes} bytes", code="payload_too_large")


async def read_body_limited(request: Request, max_bytes: int) -> bytes:
    """The raw body, or PayloadTooLarge (413) past `max_bytes`, BadRequest for a bad Content-Length."""
    declared = request.headers.get("content-length")
    if declared is not None:
        declared = declared.strip()
        if not (declared.isascii() and declared.isdigit()):
            raise BadRequest("invalid Content-Length header", code="bad_request")
        if int(declared) > max_bytes:
            raise _too_large(max_bytes)
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > max_bytes:
            raise _too_large(max_bytes)
        chunks.append(chunk)
    return b"".join(chunks)
