"""Builds the process's one `Workspace` from Settings (called from the lifespan, never at import).

There is one real implementation (git); the in-memory fake (tests/fakes/workspace.py) is for
tests, which construct it directly. The cache is keyed on the Settings object's identity
(Settings is not hashable); tests call `cache_clear()`.
"""

from __future__ import annotations

from app.config import Settings
from app.services.singleton import per_settings
from app.services.workspace.base import Workspace
from app.services.workspace.client import GitWorkspace


@per_settings
def get_workspace(settings: Settings) -> Workspace:
    """The cached `Workspace` for these settings (one per Settings object)."""
    return GitWorkspace(settings)


cache_clear = get_workspace.cache_clear
