"""Build the process's `Tracer` from settings (called once, from the lifespan).

`settings.langfuse_enabled` (LANGFUSE_PUBLIC_KEY and LANGFUSE_SECRET_KEY set) → `LangfuseTracer`
exporting to LANGFUSE_BASE_URL; otherwise `NoopTracer`. Cached per Settings object (Settings is not
hashable, so the key is its identity); tests call `cache_clear()` after shutting the tracer down.
"""

from __future__ import annotations

from app.config import Settings
from app.services.langfuse.base import Tracer
from app.services.langfuse.client import LangfuseTracer
from app.services.langfuse.noop import NoopTracer
from app.services.singleton import per_settings


@per_settings
def get_tracer(settings: Settings) -> Tracer:
    """The Langfuse tracer, or the no-op one when the keys are unset (one instance per Settings)."""
    if settings.langfuse_enabled:
        return LangfuseTracer(settings)
    return NoopTracer()


cache_clear = get_tracer.cache_clear
