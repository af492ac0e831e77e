"""The checks interface: the target repo's own setup / lint / test commands, run in a worktree."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Literal, Protocol

CheckName = Literal["setup", "lint", "test"]


@dataclass(frozen=True)
class CheckResult:
    """One run of one command. `output` is stdout+stderr interleaved, capped at the configured
    size keeping the END (failures are usually at the end) with a marker where text was cut."""

    name: CheckName
    passed: bool
    exit_code: int | None  # None when killed by the timeout
    output: str
    duration_s: float
    timed_out: bool = False


class Checks(Protocol):
    async def run(self, name: CheckName, cwd: Path, argv: Sequence[str] | None = None) -> CheckResult:
        """Run `argv` - the run's command for `name`, its repository's (None: the configured one) -
        in `cwd` (no shell) with the configured timeout;
        on timeout or cancellation kill the whole process group (no child survives) and return
        `timed_out=True, passed=False`. A missing executable is a failed result, not an
        exception. Never raises for the command's own failure."""
        ...

    async def aclose(self) -> None:
        """Stop what the checks started for their own use (the egress proxy). Idempotent."""
        ...
