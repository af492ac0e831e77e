"""Builds the process's one `Checks` from Settings (called from the lifespan, never at import).

The commands always run for real (the demo points them at its seed project's python scripts);
`ScriptedChecks` is for tests, which construct it directly. Cached per Settings object (Settings is
not hashable, so the key is its identity); tests call `cache_clear()`.
"""

from __future__ import annotations

import functools

from app.config import Settings
from app.services.checks.base import Checks
from app.services.checks.client import CommandChecks


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
def _build(key: _ById) -> Checks:
    return CommandChecks(key.settings)


def get_checks(settings: Settings) -> Checks:
    """The cached `Checks` for these settings (one per Settings object)."""
    return _build(_ById(settings))


def cache_clear() -> None:
    """Forget built instances (tests)."""
    _build.cache_clear()
