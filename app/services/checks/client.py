"""CommandChecks: the real `Checks`, running the target repo's own commands in a worktree.

`SETUP_COMMAND`, `LINT_COMMAND`, `TEST_COMMAND` are argument lists (never a shell) run through
`app.proc.run_command` with `CHECK_TIMEOUT_SEC`, the scrubbed environment plus `CI=true` (tools
then run once, non-interactively: no watch mode, no prompts), Python bytecode caching kept out of
the worktree (see `_python_cache_env`), and output capped at `CHECK_OUTPUT_MAX_CHARS` keeping the
end. An empty command means "not configured" and passes with a note, so a gate switched on without
a command does not loop on a failure nobody can fix.
"""

from __future__ import annotations

import logging
import tempfile
from pathlib import Path

from app.config import Settings
from app.proc import run_command, scrubbed_env
from app.services.checks.base import CheckName, CheckResult

logger = logging.getLogger(__name__)

# Room kept under the cap for the note appended when a command is killed by its timeout.
_NOTE_ROOM = 200


def _python_cache_env(empty_dir: str) -> dict[str, str]:
    """Why: Python trusts a cached `.pyc` whose recorded source size and mtime (whole seconds) match.
    An agent's edit that keeps a file's size within the same second (`return 3` → `return 2`) would
    be judged by stale bytecode: the one a previous check wrote, or one the agent's own test run left
    in the worktree's `__pycache__`. So no check writes bytecode (`PYTHONDONTWRITEBYTECODE`), and the
    cache Python looks in is an empty throwaway directory (`PYTHONPYCACHEPREFIX`), never the tree."""
    return {"PYTHONDONTWRITEBYTECODE": "1", "PYTHONPYCACHEPREFIX": empty_dir}


class CommandChecks:
    """See `base.Checks.run` for the contract."""

    def __init__(self, settings: Settings) -> None:
        self._commands: dict[CheckName, list[str]] = {
            "setup": list(settings.setup_command),
            "lint": list(settings.lint_command),
            "test": list(settings.test_command),
        }
        self.timeout = settings.check_timeout_sec
        self.max_output_chars = settings.check_output_max_chars

    async def run(self, name: CheckName, cwd: Path) -> CheckResult:
        argv = self._commands[name]
        if not argv:
            return CheckResult(name=name, passed=True, exit_code=0, duration_s=0.0,
                               output=f"no {name} command configured; skipped")
        with tempfile.TemporaryDirectory(prefix="auto-code-pycache-", ignore_cleanup_errors=True) as empty:
            res = await run_command(
                argv,
                cwd=cwd,
                env=scrubbed_env({"CI": "true", **_python_cache_env(empty)}),
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
