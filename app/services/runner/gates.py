"""Gates: review, lint and test, three instances of one `Gate`, driven by one loop (workflow.py).

A gate loops check → fix → re-check. It stops when the check passes, when the round limit is
reached, or when the same failure comes back right after a fix (stagnation: the agent is not making
progress and another round would only spend money). A review that cannot be read is reported, not
blocking. What differs between gates is only how one check round is made and read: `Gate.check`.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from app.prompts import ticket_prompts as prompts
from app.services.checks.base import CheckName
from app.services.claude_code.base import AgentRequest, LogFn
from app.services.runner.deps import PipelineDeps
from app.services.runner.models import (
    CheckRound,
    GateName,
    GateOutcome,
    ReviewRound,
    RunOptions,
    RunRef,
    Verdict,
    WorktreeRef,
)

# Durations, decimals, addresses and clock times change between otherwise identical failures; plain
# integers (line numbers, counts, file names like test_2.py) are kept: when they change, the failure did.
_VOLATILE = re.compile(
    r"0x[0-9a-f]+|\d+:\d\d(?::\d\d)?(?:\.\d+)?|\d+(?:\.\d+)?\s*(?:ms|s|sec|seconds)\b|\d+\.\d+",
    re.IGNORECASE,
)


def failure_signature(text: str) -> str:
    """A short hash of the failure text with volatile numbers and whitespace runs folded, so
    `FAILED test_x (0.12s)` and `FAILED test_x (0.31s)` count as the same failure, while
    `bad1.md: trailing whitespace` and `bad2.md: trailing whitespace` do not."""
    folded = _VOLATILE.sub("N", text)
    folded = re.sub(r"\s+", " ", folded).strip().lower()
    return hashlib.sha256(folded.encode()).hexdigest()[:16]


def tail(text: str, limit: int = 1500) -> str:
    """The end of a (check) output, where the failure usually is."""
    return text if len(text) <= limit else "…" + text[-limit:]


def stop_reason(fixes_done: int, limit: int, signature: str, previous: str | None) -> GateOutcome | None:
    """Why a failing gate stops now, or None to try another fix round. `previous` is the failure
    seen right before the last fix: A → B → B stops (the fix changed nothing), A → B → A does not."""
    if fixes_done >= limit:
        return "round_limit"
    if previous is not None and signature == previous:
        return "stagnation"
    return None


def explain(outcome: GateOutcome, fixes_done: int) -> str:
    if outcome == "stagnation":
        return f"the same failure came back after fix round {fixes_done} (stagnation)"
    return f"still failing after {fixes_done} fix round(s) (round limit)"


@dataclass(frozen=True)
class Finding:
    """What one check round of a gate found (texts already redacted)."""

    round: CheckRound | ReviewRound
    verdict: Verdict
    feedback: str  # what a fix round is given
    excerpt: str  # what the run's error quotes if the gate gives up
    signature: str
    turns: int = 0  # an agent's review session costs turns and money too
    cost_usd: float = 0.0
    usage: dict[str, Any] | None = None  # its tokens by kind, as the model proxy metered them
    note: str | None = None  # a line for the run's log


class Gate(Protocol):
    name: GateName

    async def check(self, d: PipelineDeps, run: RunRef, wt: WorktreeRef, n: int,
                    log: LogFn, opts: RunOptions | None = None) -> Finding:
        """Check round `n` (0-based) of this gate in the worktree (`opts`: the run's, whose
        commands a command gate runs). Never raises for a failing check."""
        ...


class ReviewGate:
    """A separate, read-only Claude session reviews the change against the ticket."""

    name: GateName = "review"

    async def check(self, d: PipelineDeps, run: RunRef, wt: WorktreeRef, n: int,
                    log: LogFn, opts: RunOptions | None = None) -> Finding:
        diff = await d.repository(wt.repository).workspace.diff_summary(wt.worktree)
        req = AgentRequest(cwd=Path(wt.path), prompt=prompts.review_prompt(run.ticket, diff),
                           ticket_key=run.key, run_id=run.run_id, log=log, phase="review", gate="review",
                           round=n, budget_usd=opts.budget_usd if opts else None)
        result = await d.claude.review(req)
        findings = d.scanner.redact(result.findings)
        error = d.scanner.redact(result.error) if result.error else None
        entry = ReviewRound(round=n, ok=result.ok, has_issues=result.has_issues,
                            findings=tail(findings, 2000), error=error)
        verdict: Verdict = "unreadable" if not result.ok else "failed" if result.has_issues else "passed"
        return Finding(
            round=entry, verdict=verdict, feedback=findings if result.ok else entry.error or "",
            excerpt=f"findings: {findings[:500]}", signature=failure_signature(result.findings),
            turns=result.run.turns if result.run else 0, cost_usd=result.run.cost_usd if result.run else 0.0,
            usage=result.run.usage if result.run else None,
        )


class CommandGate:
    """The target repository's own lint or test command, run in the worktree (in the sandbox)."""

    def __init__(self, name: GateName) -> None:
        self.name = name

    async def check(self, d: PipelineDeps, run: RunRef, wt: WorktreeRef, n: int,
                    log: LogFn, opts: RunOptions | None = None) -> Finding:
        check: CheckName = "lint" if self.name == "lint" else "test"
        res = await d.checks.run(check, Path(wt.path), argv=opts.command(check) if opts else None)
        output = d.scanner.redact(res.output)
        entry = CheckRound(round=n, passed=res.passed, exit_code=res.exit_code, timed_out=res.timed_out,
                           duration_s=round(res.duration_s, 3), output=tail(output))
        return Finding(
            round=entry, verdict="passed" if res.passed else "failed", feedback=output,
            excerpt=f"last output: {tail(output, 1000)[-400:]}", signature=failure_signature(res.output),
            note=f"{self.name} round {n}: {'passed' if res.passed else 'failed'}",
        )


GATES: dict[GateName, Gate] = {
    "review": ReviewGate(), "lint": CommandGate("lint"), "test": CommandGate("test"),
}
