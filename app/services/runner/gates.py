"""Gate bookkeeping: failure signatures for stagnation, and what a gate's step row records.

A gate (review, lint, test) loops check → fix → re-check. It stops when the check passes, when the
round limit is reached, or when the same failure comes back after a fix (stagnation: the agent is
not making progress and another round would only spend money).
"""

from __future__ import annotations

import hashlib
import re
from typing import Any, Literal

GateOutcome = Literal["passed", "round_limit", "stagnation", "error"]

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


def gate_detail(
    rounds: list[dict[str, Any]], outcome: GateOutcome | None = None
) -> dict[str, Any]:
    """The `detail` of a gate's step row: every check and fix round so far, and the outcome."""
    detail: dict[str, Any] = {"rounds": rounds, "fix_rounds": sum(1 for r in rounds if r["kind"] == "fix")}
    if outcome is not None:
        detail["outcome"] = outcome
    return detail


def tail(text: str, limit: int = 1500) -> str:
    """The end of a (check) output, where the failure usually is."""
    return text if len(text) <= limit else "…" + text[-limit:]
