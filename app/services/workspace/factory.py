"""Builds the process's one `Workspace` from Settings (called from the lifespan, never at import).

There is one real implementation (git); the in-memory fake is for tests, which construct it
directly. The cache is keyed on the Settings object's identity (Settings is not hashable);
tests call `cache_clear()`.
"""

from __future__ import annotations

import functools

from app.config import Settings
from app.services.workspace.base import Workspace
from app.services.workspace.client import GitWorkspace


class _ById:
    """Hashes a Settings object by identity (and keeps it alive so the id is not reused)."""

    __slots__ = ("settings",)

    def __init__(self, settings: Settings) -> None:
        self.settings = settings

    def __hash__(self) -> int:
        return id(self.settings)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, _ById) and other.settings is self.settings


@functools.cache
def _build(key: _ById) -> Workspace:
    return GitWorkspace(key.settings)


def get_workspace(settings: Settings) -> Workspace:
    """The cached `Workspace` for these settings (one per Settings object)."""
    return _build(_ById(settings))


def cache_clear() -> None:
    """Forget built instances (tests)."""
    _build.cache_clear()
