"""Build the process's `ClaudeCode` from settings (called once, from the lifespan).

`settings.uses_real_claude` (CLAUDE_CLIENT=sdk, or an ANTHROPIC_API_KEY with CLAUDE_CLIENT unset) ->
`SdkClaudeCode` (the real CLI); otherwise `ScriptedClaudeCode`, scripted from the JSON file named by
MOCK_CLAUDE_SCRIPT when set. One instance per (settings, tracer) pair (`per_settings`); tests call
`cache_clear()`, after `aclose()` if the instance may hold CLI processes.
"""

from __future__ import annotations

from app.config import Settings
from app.services.claude_code.base import ClaudeCode
from app.services.claude_code.client import SdkClaudeCode
from app.services.claude_code.scripted import ScriptedClaudeCode
from app.services.langfuse.base import Tracer
from app.services.singleton import per_settings


@per_settings
def _build(settings: Settings, tracer: Tracer | None) -> ClaudeCode:
    if settings.uses_real_claude:
        return SdkClaudeCode(settings, tracer)
    return ScriptedClaudeCode.from_env()


def get_claude_code(settings: Settings, tracer: Tracer | None = None) -> ClaudeCode:
    """The real client or the scripted one for these settings (one instance per settings+tracer)."""
    return _build(settings, tracer)


cache_clear = _build.cache_clear
