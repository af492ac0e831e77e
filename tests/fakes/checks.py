"""ScriptedChecks: a `Checks` whose results come from a script, for offline tests.

`script` maps a check name to a queue of outcomes, consumed one per call:
- `True` → passed; `False` → failed with a generic output;
- a `str` → failed with that output (repeat the same text to exercise stagnation);
- a `CheckResult` → returned as is (name/timeouts as you like);
- a callable `(cwd) -> bool | str` → decided by looking at the worktree now (e.g. "passes once the
  agent removed the trailing whitespace"), so the fake really checks something.
When a queue is empty the check passes (`default=True`) or fails (`default=False`).
Every call is recorded in `calls` as `(name, cwd)`.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path

from app.services.checks.base import CheckName, CheckResult

Outcome = bool | str | CheckResult | Callable[[Path], bool | str]


class ScriptedChecks:
    """See the module docstring."""

    def __init__(self, script: Mapping[CheckName, Iterable[Outcome]] | None = None, *,
                 default: bool = True) -> None:
        self.script: dict[str, deque[Outcome]] = {k: deque(v) for k, v in (script or {}).items()}
        self.default = default
        self.calls: list[tuple[CheckName, Path]] = []
        self.argvs: list[tuple[CheckName, tuple[str, ...] | None]] = []  # the command each call was given

    def push(self, name: CheckName, *outcomes: Outcome) -> None:
        self.script.setdefault(name, deque()).extend(outcomes)

    async def aclose(self) -> None:
        return None

    async def run(self, name: CheckName, cwd: Path, argv: Sequence[str] | None = None) -> CheckResult:
        self.calls.append((name, cwd))
        self.argvs.append((name, tuple(argv) if argv is not None else None))
        queue = self.script.get(name)
        outcome: Outcome = queue.popleft() if queue else self.default
        if isinstance(outcome, CheckResult):
            return outcome
        if callable(outcome):
            outcome = outcome(cwd)
        if outcome is True:
            return CheckResult(name=name, passed=True, exit_code=0, output=f"{name}: ok", duration_s=0.0)
        text = outcome if isinstance(outcome, str) else f"{name}: failed"
        return CheckResult(name=name, passed=False, exit_code=1, output=text, duration_s=0.0)

    def count(self, name: CheckName) -> int:
        return sum(1 for n, _ in self.calls if n == name)
