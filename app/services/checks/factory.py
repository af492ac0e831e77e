"""Builds the `Checks` from Settings (the composition root calls it once, never at import).

The commands always run for real (the demo points them at its seed project's python scripts);
`ScriptedChecks` (tests/fakes/checks.py) is for tests, which inject it through `Collaborators`.
Each call builds a new one.
"""

from __future__ import annotations

from app.config import Settings
from app.services.checks.base import Checks
from app.services.checks.client import CommandChecks
from app.services.sandbox.base import Sandbox


def build_checks(settings: Settings, sandbox: Sandbox | None = None) -> Checks:
    """The commands of these settings, run in `sandbox` (built from settings when None)."""
    return CommandChecks(settings, sandbox=sandbox)

