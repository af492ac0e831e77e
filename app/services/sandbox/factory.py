"""Builds the process's one `Sandbox` from Settings (called from the lifespan and the factories of
the collaborators that start untrusted processes: checks and the Claude client)."""

from __future__ import annotations

import logging

from app.config import Settings
from app.services.sandbox.base import Sandbox
from app.services.sandbox.bwrap import BwrapSandbox
from app.services.sandbox.unsandboxed import Unsandboxed
from app.services.singleton import per_settings

log = logging.getLogger(__name__)


@per_settings
def get_sandbox(settings: Settings) -> Sandbox:
    """`SANDBOX=bwrap` -> BwrapSandbox (raises SandboxError when bubblewrap is missing);
    `SANDBOX=none` -> Unsandboxed, with a loud warning."""
    if settings.sandbox == "none":
        log.warning("sandbox_disabled: SANDBOX=none - the agent and the checks run WITHOUT isolation "
                    "(development only)")
        return Unsandboxed()
    return BwrapSandbox(settings)


cache_clear = get_sandbox.cache_clear
