"""Builds a `Sandbox` from Settings. The composition root (app/composition.py) calls it once and
hands the one sandbox to the collaborators that start untrusted processes (checks, the Claude
client); each call builds a new one.
"""

from __future__ import annotations

import logging

from app.config import Settings
from app.services.sandbox.base import Sandbox
from app.services.sandbox.bwrap import BwrapSandbox
from app.services.sandbox.unsandboxed import Unsandboxed

log = logging.getLogger(__name__)


def build_sandbox(settings: Settings) -> Sandbox:
    """`SANDBOX=bwrap` -> BwrapSandbox (raises SandboxError when bubblewrap is missing);
    `SANDBOX=none` -> Unsandboxed, with a loud warning."""
    if settings.sandbox == "none":
        log.warning("sandbox_disabled: SANDBOX=none - the agent and the checks run WITHOUT isolation "
                    "(development only)")
        return Unsandboxed()
    return BwrapSandbox(settings)

