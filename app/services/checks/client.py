"""CommandChecks: the real `Checks`, running the target repo's own commands in a worktree.

`SETUP_COMMAND`, `LINT_COMMAND`, `TEST_COMMAND` are argument lists (never a shell) run inside the
sandbox (`app.services.sandbox`: they execute code the agent may have written, so they get no
secret, no network - the setup alone may reach the egress proxy when SETUP_ALLOWED_HOSTS is set -,
no view of the workspace beyond their worktree, and nothing they start outlives them) with
`CHECK_TIMEOUT_SEC`, the scrubbed environment plus `CI=true` (tools
then run once, non-interactively: no watch mode, no prompts), Python bytecode caching kept out of
the worktree (bytecode.py), and output capped at `CHECK_OUTPUT_MAX_CHARS` keeping the
end. An empty command means "not configured" and passes with a note, so a gate switched on without
a command does not loop on a failure nobody can fix.
"""

from __future__ import annotations

import asyncio
import logging
import shutil
import tempfile
from collections.abc import Sequence
from pathlib import Path

from app.config import Settings
from app.proc import scrubbed_env
from app.services.checks.base import CheckName, CheckResult
from app.services.checks.bytecode import BYTECODE_ENV, purge_tree_bytecode
from app.services.egress_proxy import EgressProxyServer
from app.services.sandbox import Endpoint, Sandbox, SandboxCall, build_sandbox
from app.services.workspace.gitenv import sandbox_git_env

logger = logging.getLogger(__name__)

EGRESS_PORT = 3128  # the egress proxy's loopback port inside the sandbox's own network namespace
# Room kept under the cap for the note appended when a command is killed by its timeout.
_NOTE_ROOM = 200


def _proxy_env(endpoints: tuple[Endpoint, ...]) -> dict[str, str]:
    """Point HTTP clients (pip, npm, pnpm, curl) at the egress proxy's loopback port, if any."""
    if not endpoints:
        return {}
    url = f"http://127.0.0.1:{endpoints[0].port}"
    return {name: url for name in ("HTTP_PROXY", "HTTPS_PROXY", "http_proxy", "https_proxy")}


def _git_env(networked: bool) -> dict[str, str]:
    """Why: a check runs the worktree's code, and whatever git that code starts (a test helper, a
    lint that lists files, a VCS install) inherits this environment. Without the pinning the agent's
    own git gets, that git reads the system and global config and uses an implicit bare repository
    the agent wrote (`sub/HEAD`, `sub/config`, `objects/`, `refs/`), running its `core.fsmonitor`:
    measured with the real CLI (tests/e2e/test_attack_persistence.py, the lint gate's `git status`
    in `sub/` ran the planted command inside the sandbox and its output was committed and pushed).
    A setup that downloads through the egress proxy may still fetch over https."""
    env = sandbox_git_env()
    if networked:  # `protocol.allow=never` stays the default; https is allowed by name
        n = int(env["GIT_CONFIG_COUNT"])
        env.update({f"GIT_CONFIG_KEY_{n}": "protocol.https.allow", f"GIT_CONFIG_VALUE_{n}": "always",
                    "GIT_CONFIG_COUNT": str(n + 1)})
    return env


class CommandChecks:
    """See `base.Checks.run` for the contract."""

    def __init__(self, settings: Settings, sandbox: Sandbox | None = None) -> None:
        self.sandbox = sandbox if sandbox is not None else build_sandbox(settings)
        # The one way out for a setup that must download dependencies: an allowlisting proxy of the
        # service, started on first use (SETUP_ALLOWED_HOSTS; nothing without it).
        self._egress_server: EgressProxyServer | None = None
        self.egress: Endpoint | None = None
        if settings.setup_allowed_hosts and self.sandbox.name != "none":
            sock = Path(tempfile.mkdtemp(prefix="auto-code-egress-")) / "egress.sock"  # short: 108 bytes max
            self._egress_server = EgressProxyServer(sock, settings.setup_allowed_hosts)
            self.egress = Endpoint("egress", sock, EGRESS_PORT)
        self._commands: dict[CheckName, list[str]] = {
            "setup": list(settings.setup_command),
            "lint": list(settings.lint_command),
            "test": list(settings.test_command),
        }
        self.timeout = settings.check_timeout_sec
        self.max_output_chars = settings.check_output_max_chars

    async def run(self, name: CheckName, cwd: Path, argv: Sequence[str] | None = None) -> CheckResult:
        argv = list(argv) if argv is not None else self._commands[name]
        if not argv:
            return CheckResult(name=name, passed=True, exit_code=0, duration_s=0.0,
                               output=f"no {name} command configured; skipped")
        endpoints: tuple[Endpoint, ...] = ()
        if name == "setup" and self.egress is not None and self._egress_server is not None:
            self._egress_server.start()  # idempotent; serves on its own thread
            endpoints = (self.egress,)
        try:  # no bytecode from the tree is trusted (bytecode.py)
            await asyncio.to_thread(purge_tree_bytecode, cwd)
        except OSError as exc:
            return CheckResult(name=name, passed=False, exit_code=None, duration_s=0.0,
                               output=f"cannot remove Python bytecode from the worktree: {exc}")
        env = scrubbed_env({"CI": "true", **BYTECODE_ENV, **_proxy_env(endpoints),
                            **_git_env(bool(endpoints))})
        res = await self.sandbox.run(
            argv,
            SandboxCall(worktree=cwd, env=env, endpoints=endpoints),
            timeout=self.timeout,
            max_output_chars=max(self.max_output_chars - _NOTE_ROOM, 100),
        )
        output = res.output
        if res.timed_out:
            output += f"\n[{name} command killed after its {self.timeout:g}s timeout]"
        result = CheckResult(
            name=name,
            passed=res.ok,
            exit_code=res.exit_code,
            output=output,
            duration_s=round(res.duration_s, 3),
            timed_out=res.timed_out,
        )
        logger.info("check_finished", extra={"check": name, "passed": result.passed,
                                             "exit_code": res.exit_code, "timed_out": res.timed_out,
                                             "duration_s": result.duration_s})
        return result

    async def aclose(self) -> None:
        if self._egress_server is not None:
            self._egress_server.close()
            shutil.rmtree(self._egress_server.socket_path.parent, ignore_errors=True)

