"""`RecordingTracer`: a `Tracer` for tests that keeps each finished span's fields in `spans`, so a
test can assert that a session was traced with its ticket, phase, turns and cost without a collector."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any


class RecordingTracer:
    """A `Tracer` that records `{ticket_key, run_id, phase, **filled fields}` per span, in memory."""

    def __init__(self) -> None:
        self.spans: list[dict[str, Any]] = []
        self.flushes = 0

    @contextlib.contextmanager
    def agent_span(self, *, ticket_key: str, run_id: str, phase: str) -> Iterator[dict[str, Any]]:
        info: dict[str, Any] = {}
        try:
            yield info
        except BaseException as exc:
            info.setdefault("error", f"{type(exc).__name__}: {exc}")
            raise
        finally:
            self.spans.append({"ticket_key": ticket_key, "run_id": run_id, "phase": phase, **info})

    def flush(self) -> None:
        self.flushes += 1

    def shutdown(self) -> None:
        self.flush()
