"""`Unsandboxed`: `SANDBOX=none`, development only. Runs the command as it is, with `call.env`.

No isolation at all: the agent's code runs as the service's user and sees what it sees. The
production check refuses this mode; start-up and every run log a warning (`sandbox_disabled`).
Endpoints are not bridged (there is no network namespace to bridge into): callers that need the
model talk to it directly in this mode.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Sequence

from app.proc import CommandResult, run_command
from app.services.sandbox.base import SandboxCall

log = logging.getLogger(__name__)


class Unsandboxed:
    """See `base.Sandbox`; isolates nothing."""

    name = "none"

    def wrap(self, argv: Sequence[str], call: SandboxCall) -> tuple[list[str], dict[str, str]]:
        env = dict(call.env)
        env.setdefault("PATH", os.environ.get("PATH", os.defpath))
        return list(argv), env

    async def run(self, argv: Sequence[str], call: SandboxCall, *, timeout: float,  # noqa: ASYNC109
                  max_output_chars: int) -> CommandResult:
        log.warning("sandbox_disabled: running %s without isolation (SANDBOX=none)", list(argv)[:1])
        full, env = self.wrap(argv, call)
        return await run_command(full, cwd=call.worktree, env=env, timeout=timeout,
                                 max_output_chars=max_output_chars)
