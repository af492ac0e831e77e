"""The failures a step raises and the workflow catches: picklable, with typed fields.

DBOS records a step's exception (pickled, like its outputs) and raises it again when the workflow
is replayed, so these must survive `pickle`: each `__reduce__` rebuilds it from its own fields
(the default would call `__init__` with the message alone). The workflow branches on the class
and its fields, never on the message.
"""

from __future__ import annotations

from typing import Any

from app.errors import StepError
from app.services.runner.models import GateName, GateOutcome


class StepFailed(StepError):
    """`step` failed for `reason` (already redacted): the run ends failed with `"<step>: <reason>"`."""

    code = "step_failed"

    def __init__(self, step: str, reason: str) -> None:
        super().__init__(f"{step}: {reason}")
        self.step = step
        self.reason = reason

    def __reduce__(self) -> tuple[Any, ...]:
        return (type(self), (self.step, self.reason))


class AgentFailed(StepFailed):
    """The agent's session failed (`terminal_reason` is the CLI's: max_turns, budget_exhausted...)."""

    code = "agent_failed"

    def __init__(self, step: str, reason: str, terminal_reason: str) -> None:
        super().__init__(step, reason)
        self.terminal_reason = terminal_reason

    def __reduce__(self) -> tuple[Any, ...]:
        return (type(self), (self.step, self.reason, self.terminal_reason))


class OutboundBlocked(StepFailed):
    """The outbound check found a secret value in what `step` would send; nothing left."""

    code = "outbound_blocked"


class GateFailed(StepFailed):
    """A gate gave up (`outcome`: round_limit or stagnation) after `fix_rounds` fix rounds."""

    code = "gate_failed"

    def __init__(self, gate: GateName, reason: str, outcome: GateOutcome, fix_rounds: int) -> None:
        super().__init__(gate, reason)
        self.gate: GateName = gate
        self.outcome: GateOutcome = outcome
        self.fix_rounds = fix_rounds

    def __reduce__(self) -> tuple[Any, ...]:
        return (type(self), (self.gate, self.reason, self.outcome, self.fix_rounds))
