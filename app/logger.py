"""JSON logging: one object per line, INFO and below on stdout, WARNING and up on stderr.

`ticket` and `run_id` come from context variables (`bind_run`) so every line logged while a run is
being worked on carries them without each call passing them. uvicorn's and DBOS's loggers are routed
through the same handlers; DBOS is held at WARNING (it prints ~77 INFO lines on a first launch).
"""

from __future__ import annotations

import contextlib
import contextvars
import json
import logging
import sys
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any, TextIO

_ticket: contextvars.ContextVar[str | None] = contextvars.ContextVar("ticket", default=None)
_run_id: contextvars.ContextVar[str | None] = contextvars.ContextVar("run_id", default=None)

# LogRecord attributes that are not user fields passed through `extra=`.
# `color_message` is uvicorn's ANSI-coloured duplicate of the message.
_RESERVED = set(vars(logging.LogRecord("", 0, "", 0, "", None, None))) | {
    "message", "asctime", "color_message"}


@contextlib.contextmanager
def bind_run(ticket: str | None, run_id: str | None) -> Iterator[None]:
    """Tag every log line emitted inside the block (same task/thread) with ticket and run_id."""
    t1, t2 = _ticket.set(ticket), _run_id.set(run_id)
    try:
        yield
    finally:
        _ticket.reset(t1)
        _run_id.reset(t2)


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        payload: dict[str, Any] = {
            "ts": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "event": record.getMessage(),
        }
        if (ticket := getattr(record, "ticket", None) or _ticket.get()) is not None:
            payload["ticket"] = ticket
        if (run_id := getattr(record, "run_id", None) or _run_id.get()) is not None:
            payload["run_id"] = run_id
        for key, value in record.__dict__.items():
            if key not in _RESERVED and key not in payload and not key.startswith("_"):
                payload[key] = value
        if record.exc_info:
            payload["exc"] = self.formatException(record.exc_info)
        return json.dumps(payload, default=str)


class _MaxLevel(logging.Filter):
    def __init__(self, below: int) -> None:
        super().__init__()
        self.below = below

    def filter(self, record: logging.LogRecord) -> bool:
        return record.levelno < self.below


class _OwnHandler(logging.StreamHandler[TextIO]):
    """A stream handler marked as ours, so a second `configure_logging` replaces it."""

    _auto_code = True


def configure_logging(level: str = "INFO") -> None:
    """Install the JSON handlers on the root logger and route uvicorn/DBOS through them.
    Idempotent: calling it again replaces our handlers instead of doubling them."""
    fmt = JsonFormatter()
    out = _OwnHandler(sys.stdout)
    out.setFormatter(fmt)
    out.addFilter(_MaxLevel(logging.WARNING))
    err = _OwnHandler(sys.stderr)
    err.setFormatter(fmt)
    err.setLevel(logging.WARNING)
    root = logging.getLogger()
    # Replace only our own handlers: one installed by a host process (pytest's caplog, an embedding
    # application) keeps receiving records.
    root.handlers = [h for h in root.handlers if not getattr(h, "_auto_code", False)] + [out, err]
    root.setLevel(level.upper())
    for name in ("uvicorn", "uvicorn.error", "uvicorn.access", "dbos", "httpx", "httpcore"):
        lg = logging.getLogger(name)
        lg.handlers = []
        lg.propagate = True
    # Access lines at INFO for every webhook are noise at this volume; errors still show.
    logging.getLogger("uvicorn.access").setLevel(logging.WARNING)
    logging.getLogger("dbos").setLevel(logging.WARNING)
    # DBOS adds its own plain-text console handler (and stops propagation) when its logger has no
    # handler at all; a NullHandler keeps it from doing so, so its lines come out as JSON here.
    logging.getLogger("dbos").handlers = [logging.NullHandler()]
    logging.getLogger("httpx").setLevel(logging.WARNING)
    logging.getLogger("httpcore").setLevel(logging.WARNING)
