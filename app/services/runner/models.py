"""What the pipeline's steps take and return: small frozen pydantic models.

At the DBOS boundary these models are the step outputs themselves: DBOS pickles a step's return
value (its default serializer) and hands the same object back when it replays a finished step, so a
model is converted to plain data only there, by pickle, and nowhere in our code. That is why every
class here lives at module level and holds only plain values (str, int, float, bool, tuples and
other models). A change to a model's fields is a change of the recorded step outputs: like any
change to the sequence of steps it needs a new APP_VERSION (runs of the old version must drain).

The workflow's own input stays the ticket as JSON-able data (`Ticket.model_dump()`): intake
enqueues it, and `recover_executor` and the run record read it back.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict

from app.config import Settings
from app.models import RunKind, Ticket
from app.services.workspace.base import Worktree

GateName = Literal["review", "lint", "test"]
GateOutcome = Literal["passed", "round_limit", "stagnation", "error"]
Verdict = Literal["passed", "failed", "unreadable"]
FinalStatus = Literal["succeeded", "failed", "no_changes"]
ReportOutcome = Literal["succeeded", "failed", "no_changes", "dry_run"]
Command = tuple[str, ...]


class Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class RunRef(Frozen):
    """Which run a step works for. The ticket key is a field: never recovered from the run id."""

    run_id: str
    ticket: Ticket

    @property
    def key(self) -> str:
        return self.ticket.key


class Unrouted(Frozen):
    """Why no single repository takes the ticket, and how to fix that (the Jira comment says it)."""

    reason: str
    help: str


class RunOptions(Frozen):
    """The run's shape, fixed and recorded by the start step: a run resumed after a restart under
    another configuration replays the same steps in the same order (DBOS matches recorded steps by
    position, so a gate switched on mid-run would otherwise be fed another step's output)."""

    enable_setup: bool
    enable_review: bool
    enable_lint: bool
    enable_tests: bool
    dry_run: bool
    gate_max_rounds: int
    allowed_commands: tuple[Command, ...] = ()  # argv of the enabled setup/lint/test checks
    # The repository the ticket was routed to (app/repositories/) and what it brings, resolved when
    # the run started (and its commands again by `configure`, from the repository's own file on
    # its base branch): a replay works on the same repository with the same commands.
    repository: str = ""  # "" = the one repository of the settings (runs recorded before routing)
    routed_by: str = ""  # the rule that chose it: "component=api", "default"
    base_branch: str = ""  # "" = BASE_BRANCH
    setup_command: Command | None = None  # None = the Checks' configured command
    lint_command: Command | None = None
    test_command: Command | None = None
    budget_usd: float | None = None  # model spend per run; None = CLAUDE_MAX_BUDGET_USD
    instructions: str = ""  # the operator's (and, where allowed, the repository's) for the agent
    in_repo_overrides: tuple[str, ...] = ()  # what the repository's own file may set (configure)
    unroutable: Unrouted | None = None  # no single repository: the run ends needs_routing
    not_started: str | None = None  # why the run cannot start (the ticket could not be read)
    # The ticket as Jira's REST API has it (start reads it when Jira credentials are set); None:
    # the delivery's copy is the ticket.
    ticket: Ticket | None = None
    # A follow-up on the PR the ticket's run opened (issue 11, app/followups/walk.py), from the record.
    kind: RunKind = "ticket"
    # What routing has to say on the run's log when it starts ((level, text): "routed to ...").
    notes: tuple[tuple[str, str], ...] = ()

    @property
    def routed(self) -> str | None:
        """The repository the run works in; None for a run that ends without starting work
        (needs_routing, or a ticket that could not be read or decided)."""
        if self.repository and self.unroutable is None and self.not_started is None:
            return self.repository
        return None

    @classmethod
    def from_settings(cls, s: Settings) -> RunOptions:
        checks = ((s.setup_command, s.enable_setup), (s.lint_command, s.enable_lint),
                  (s.test_command, s.enable_tests))
        return cls(enable_setup=s.enable_setup, enable_review=s.enable_review, enable_lint=s.enable_lint,
                   enable_tests=s.enable_tests, dry_run=s.dry_run, gate_max_rounds=s.gate_max_rounds,
                   allowed_commands=tuple(tuple(argv) for argv, on in checks if on and argv))

    def command(self, name: Literal["setup", "lint", "test"]) -> Command | None:
        return {"setup": self.setup_command, "lint": self.lint_command, "test": self.test_command}[name]

    def with_commands(self, setup: Command, lint: Command, test: Command, instructions: str) -> RunOptions:
        """These commands (and the agent's allow rules for the enabled ones) and instructions."""
        checks = ((setup, self.enable_setup), (lint, self.enable_lint), (test, self.enable_tests))
        return self.model_copy(update={
            "setup_command": setup, "lint_command": lint, "test_command": test, "instructions": instructions,
            "allowed_commands": tuple(argv for argv, on in checks if on and argv)})

    @property
    def gates(self) -> tuple[GateName, ...]:
        """The enabled gates, in the walk's order."""
        enabled: tuple[tuple[GateName, bool], ...] = (
            ("review", self.enable_review), ("lint", self.enable_lint), ("test", self.enable_tests))
        return tuple(name for name, on in enabled if on)


class WorktreeRef(Frozen):
    """A prepared worktree, as the steps pass it around (`Worktree` is the workspace's own type)."""

    path: str
    branch: str
    base_sha: str
    repository: str = ""  # whose workspace made it ("" = the one repository of the settings)

    @classmethod
    def of(cls, wt: Worktree, repository: str = "") -> WorktreeRef:
        return cls(path=str(wt.path), branch=wt.branch, base_sha=wt.base_sha, repository=repository)

    @property
    def worktree(self) -> Worktree:
        return Worktree(path=Path(self.path), branch=self.branch, base_sha=self.base_sha)


class Usage(Frozen):
    """The run's agent turns and cost so far: carried from step output to step input, and written
    as totals (so a step that runs again after a crash writes the same numbers, never adds twice)."""

    turns: int = 0
    cost_usd: float = 0.0

    def plus(self, turns: int, cost_usd: float) -> Usage:
        return Usage(turns=self.turns + turns, cost_usd=self.cost_usd + cost_usd)


class ImplementOutcome(Frozen):
    session_id: str
    has_changes: bool
    summary: str  # the agent's closing text, redacted (it goes into the PR or the Jira comment)
    usage: Usage  # the run's totals after this step


class CheckRound(Frozen):
    """One run of a lint/test command."""

    kind: Literal["check"] = "check"
    round: int
    passed: bool
    exit_code: int | None
    timed_out: bool
    duration_s: float
    output: str

    def record(self) -> dict[str, object]:
        return self.model_dump(mode="json")


class ReviewRound(Frozen):
    """One read-only review."""

    kind: Literal["check"] = "check"
    round: int
    ok: bool
    has_issues: bool
    findings: str
    error: str | None

    def record(self) -> dict[str, object]:
        return self.model_dump(mode="json")


class FixRound(Frozen):
    """One fix round in the resumed implement session (`error` when the agent call failed)."""

    kind: Literal["fix"] = "fix"
    round: int
    session_id: str | None = None
    turns: int | None = None
    cost_usd: float | None = None
    error: str | None = None

    def record(self) -> dict[str, object]:
        return self.model_dump(mode="json", exclude_none=True)


GateRound = CheckRound | ReviewRound | FixRound


class GateState(Frozen):
    """A gate between its steps: the rounds so far, the session to resume, the run's usage."""

    gate: GateName
    session_id: str
    usage: Usage
    rounds: tuple[GateRound, ...] = ()

    @property
    def checks(self) -> int:
        return sum(1 for r in self.rounds if r.kind == "check")

    @property
    def fix_rounds(self) -> int:
        return sum(1 for r in self.rounds if r.kind == "fix")

    def detail(self, outcome: GateOutcome | None = None) -> dict[str, object]:
        """The `detail` of the gate's step row: every check and fix round so far, and the outcome."""
        detail: dict[str, object] = {"rounds": [r.record() for r in self.rounds],
                                     "fix_rounds": self.fix_rounds}
        if outcome is not None:
            detail["outcome"] = outcome
        return detail


class GateCheck(Frozen):
    """What a gate's check round found. `feedback` is what a fix round is given (redacted);
    `excerpt` what the run's error quotes if the gate gives up; `signature` is for stagnation."""

    state: GateState
    verdict: Verdict
    feedback: str
    excerpt: str
    signature: str


class GateResult(Frozen):
    """A gate's end, for the PR body. `findings`: what the PR's "Review findings" shows."""

    gate: GateName
    outcome: GateOutcome
    fix_rounds: int
    session_id: str
    usage: Usage
    findings: str | None = None


class PrRef(Frozen):
    number: int
    url: str
    created: bool


class Report(Frozen):
    """What the report step tells the ticket."""

    outcome: ReportOutcome
    pr_url: str | None = None
    text: str | None = None
