"""Builds the process's one `Checks` from Settings (called from the lifespan, never at import).

The commands always run for real (the demo points them at its seed project's python scripts);
`ScriptedChecks` (tests/fakes/checks.py) is for tests, which construct it directly. Cached per
Settings object (Settings is not hashable, so the key is its identity); tests call `cache_clear()`.
"""

from __future__ import annotations

from app.config import Settings
from app.services.checks.base import Checks
from app.services.checks.client import CommandChecks
from app.services.singleton import per_settings


@per_settings
def get_checks(settings: Settings) -> Checks:
    """The cached `Checks` for these settings (one per Settings object)."""
    return CommandChecks(settings)


cache_clear = get_checks.cache_clear
