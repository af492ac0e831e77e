"""Build the `ClaudeCode` from settings (the composition root calls it once per service lifetime).

`settings.uses_real_claude` (CLAUDE_CLIENT=sdk, or an ANTHROPIC_API_KEY with CLAUDE_CLIENT unset) ->
`SdkClaudeCode` (the real CLI); otherwise `ScriptedClaudeCode`, scripted from the JSON file named by
MOCK_CLAUDE_SCRIPT when set. Each call builds a new one; whoever built it closes it (`aclose`).
"""

from __future__ import annotations

from app.config import Settings
from app.services.claude_code.base import ClaudeCode
from app.services.claude_code.client import SdkClaudeCode
from app.services.claude_code.scripted import ScriptedClaudeCode
from app.services.langfuse.base import Tracer
from app.services.sandbox.base import Sandbox


def build_claude_code(
    settings: Settings, tracer: Tracer | None = None, sandbox: Sandbox | None = None
) -> ClaudeCode:
    """The real client (its CLI calls run in `sandbox`, built from settings when None) or the
    scripted one for these settings; a new instance per call."""
    if settings.uses_real_claude:
        return SdkClaudeCode(settings, tracer, sandbox=sandbox)
    return ScriptedClaudeCode.from_env()

