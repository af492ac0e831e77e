"""`NoopTracer`: the tracer that sends nothing (Langfuse keys unset).

`NoopTracer` is what the factory gives without LANGFUSE_PUBLIC_KEY/LANGFUSE_SECRET_KEY: the pipeline
calls the tracer the same way either way, nothing leaves the machine and nothing can fail.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any


class NoopTracer:
    """The `Tracer` for an unconfigured Langfuse: yields a dict to fill and forgets it."""

    @contextlib.contextmanager
    def agent_span(self, *, ticket_key: str, run_id: str, phase: str) -> Iterator[dict[str, Any]]:
        yield {}

    def flush(self) -> None:
        return None

    def shutdown(self) -> None:
        return None
