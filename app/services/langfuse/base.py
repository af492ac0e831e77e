"""The tracing interface: one trace per ticket run, one span per SDK session (Langfuse)."""

from __future__ import annotations

from contextlib import AbstractContextManager
from typing import Any, Protocol


class Tracer(Protocol):
    def agent_span(
        self, *, ticket_key: str, run_id: str, phase: str
    ) -> AbstractContextManager[dict[str, Any]]:
        """A span around one SDK session (`phase` = implement | review | fix:<gate>). The yielded
        dict is filled by the caller with `session_id`, `turns`, `cost_usd`, `usage`, `error`;
        they are set as span attributes on exit. Never raises into the pipeline."""
        ...

    def flush(self) -> None:
        """Export what is buffered (called after each ticket and at shutdown). Never raises. It may
        block for a few seconds while the backend answers: from async code use `asyncio.to_thread`."""
        ...

    def shutdown(self) -> None:
        """Flush, then stop the exporter's background thread (lifespan teardown). Never raises."""
        ...
