"""Build the process's `Tracer` from settings (called once, from the lifespan).

`settings.langfuse_enabled` (LANGFUSE_PUBLIC_KEY and LANGFUSE_SECRET_KEY set) → `LangfuseTracer`
exporting to LANGFUSE_BASE_URL; otherwise `NoopTracer`. Cached per Settings object (Settings is not
hashable, so the key is its identity); tests call `cache_clear()` after shutting the tracer down.
"""

from __future__ import annotations

import functools

from app.config import Settings
from app.services.langfuse.base import Tracer
from app.services.langfuse.client import LangfuseTracer
from app.services.langfuse.mock_client import NoopTracer


class _ById:
    """Hashes a Settings object by identity and keeps it alive, so its id cannot be reused."""

    __slots__ = ("settings",)

    def __init__(self, settings: Settings) -> None:
        self.settings = settings

    def __hash__(self) -> int:
        return id(self.settings)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, _ById) and other.settings is self.settings


@functools.cache
def _build(key: _ById) -> Tracer:
    if key.settings.langfuse_enabled:
        return LangfuseTracer(key.settings)
    return NoopTracer()


def get_tracer(settings: Settings) -> Tracer:
    """The Langfuse tracer, or the no-op one when the keys are unset (one instance per Settings)."""
    return _build(_ById(settings))


def cache_clear() -> None:
    """Forget built tracers (tests); call `shutdown()` on them first to stop their export thread."""
    _build.cache_clear()
