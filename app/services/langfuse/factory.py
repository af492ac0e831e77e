"""Build a `Tracer` from settings (the composition root calls it once per service lifetime).

`settings.langfuse_enabled` (LANGFUSE_PUBLIC_KEY and LANGFUSE_SECRET_KEY set) → `LangfuseTracer`
exporting to LANGFUSE_BASE_URL; otherwise `NoopTracer`. Nothing is cached: each call builds a new
tracer, and whoever built it shuts it down.
"""

from __future__ import annotations

from app.config import Settings
from app.services.langfuse.base import Tracer
from app.services.langfuse.client import LangfuseTracer
from app.services.langfuse.noop import NoopTracer


def build_tracer(settings: Settings) -> Tracer:
    """The Langfuse tracer, or the no-op one when the keys are unset."""
    if settings.langfuse_enabled:
        return LangfuseTracer(settings)
    return NoopTracer()

