"""Builds the `Workspace` from Settings (the composition root calls it once, never at import).

There is one real implementation (git); the in-memory fake (tests/fakes/workspace.py) is for
tests, which inject it through `Collaborators`. Each call builds a new one.
"""

from __future__ import annotations

from app.config import Settings
from app.services.workspace.base import Workspace
from app.services.workspace.client import GitWorkspace


def build_workspace(settings: Settings) -> Workspace:
    """A git workspace for these settings."""
    return GitWorkspace(settings)

