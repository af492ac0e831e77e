"""Build the process's `ClaudeCode` from settings (called once, from the lifespan).

`settings.uses_real_claude` (CLAUDE_CLIENT=sdk, or an ANTHROPIC_API_KEY with CLAUDE_CLIENT unset) ->
`SdkClaudeCode` (the real CLI); otherwise `ScriptedClaudeCode`, scripted from the JSON file named by
MOCK_CLAUDE_SCRIPT when set. Cached per (Settings, tracer) identity - Settings is not hashable -
keeping both alive so an id cannot be reused; tests call `cache_clear()`.
"""

from __future__ import annotations

import functools

from app.config import Settings
from app.services.claude_code.base import ClaudeCode
from app.services.claude_code.client import SdkClaudeCode
from app.services.claude_code.mock_client import ScriptedClaudeCode
from app.services.langfuse.base import Tracer


class _ById:
    __slots__ = ("settings", "tracer")

    def __init__(self, settings: Settings, tracer: Tracer | None) -> None:
        self.settings, self.tracer = settings, tracer

    def __hash__(self) -> int:
        return hash((id(self.settings), id(self.tracer)))

    def __eq__(self, other: object) -> bool:
        return isinstance(other, _ById) and other.settings is self.settings and other.tracer is self.tracer


@functools.cache
def _build(key: _ById) -> ClaudeCode:
    if key.settings.uses_real_claude:
        return SdkClaudeCode(key.settings, key.tracer)
    return ScriptedClaudeCode.from_env()


def get_claude_code(settings: Settings, tracer: Tracer | None = None) -> ClaudeCode:
    """The real client or the scripted one for these settings (one instance per settings+tracer)."""
    return _build(_ById(settings, tracer))


def cache_clear() -> None:
    """Forget built instances (tests); close them with `aclose()` first if they may hold processes."""
    _build.cache_clear()
