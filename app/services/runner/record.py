"""What every step shares: its injected collaborators, the context manager that records its row
in the run store, the run's log, and the outbound check.

`row(...)` is the one place a step row is written: it marks the step running, lets the step fill
its `detail` and `status`, and on the way out finishes the row - or, when the step raises
`StepFailed`, records it failed (with the detail the step set, else `{"error": reason}`) and lets the
failure go on to the workflow. Any other exception leaves the row as it is: a bug is closed by the
finish step (`fail_running_steps`), a cancel by the engine (`cancelled`), a shutdown by the replay.

The outbound check (app/services/outbound_scan.py, `deps.scanner`): `outbound_check` names which
secret values, in which form, are in what would leave; a hit fails the step before anything leaves.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from app.errors import AgentError
from app.models import StepStatus
from app.services.claude_code.base import AgentRun, LogFn
from app.services.outbound_scan import describe
from app.services.runner.deps import PipelineDeps
from app.services.runner.errors import AgentFailed, OutboundBlocked, StepFailed
from app.services.runner.models import RunRef, Usage, WorktreeRef

log = logging.getLogger(__name__)


@dataclass
class StepRow:
    """What a step puts in its row while it runs."""

    detail: dict[str, object] | None = None
    status: StepStatus = "succeeded"


class StepBase:
    """The collaborators and helpers of the step methods (TicketRunner mixes the steps in)."""

    deps: PipelineDeps | None

    @property
    def d(self) -> PipelineDeps:
        if self.deps is None:  # pragma: no cover - the engine always binds them before launch
            raise RuntimeError("TicketRunner used before its dependencies were injected")
        return self.deps

    @contextlib.asynccontextmanager
    async def row(self, run: RunRef, name: str, *, begin: bool = True,
                  end: bool = True) -> AsyncIterator[StepRow]:
        """Record step `name` of the run. `begin=False`/`end=False`: a gate's row spans several DBOS
        steps (its check and fix rounds): only the first starts it and the last finishes it; the
        others update its detail."""
        store = self.d.store
        began = time.monotonic()
        if begin:
            await store.start_step(run.run_id, name)
            self.progressed(run, name)
        row = StepRow()
        try:
            yield row
        except StepFailed as failed:
            await store.finish_step(run.run_id, name, "failed",
                                    row.detail if row.detail is not None else {"error": failed.reason})
            self.observed(run, name, "failed", began)
            raise
        if end:
            await store.finish_step(run.run_id, name, row.status, row.detail or {})
        elif row.detail is not None:
            await store.update_step_detail(run.run_id, name, row.detail)
        self.observed(run, name, row.status if end else "round", began)

    def observed(self, run: RunRef, name: str, status: str, began: float) -> None:
        """Hooks after a step row changed: the step-duration histogram (this DBOS step's wall time; a
        gate's check and fix rounds are `status="round"`) and the run's Jira progress comment
        (background, never waits)."""
        if self.d.metrics is not None:
            self.d.metrics.step_done(name, status, time.monotonic() - began)
        self.progressed(run, name)

    def progressed(self, run: RunRef, step: str | None = None) -> None:
        if self.d.progress is not None:
            self.d.progress.notify(run.run_id, run.key, step)

    async def say(self, run: RunRef, message: str, level: str = "info", **fields: object) -> None:
        message = self.d.scanner.redact(message)
        log.log(logging.WARNING if level == "warning" else logging.INFO, message, extra=fields)
        await self.d.store.add_log(run.run_id, message, level)

    def agent_log(self, run: RunRef) -> LogFn:
        """A log callback for sync callers (CLI stderr): the line goes to the run's log off-loop."""
        loop = asyncio.get_running_loop()
        store = self.d.store

        def emit(line: str) -> None:
            line = line.rstrip()
            if line:
                loop.call_soon_threadsafe(lambda: loop.create_task(store.add_log(run.run_id, line)))

        return emit

    def require(self, step: str, wt: WorktreeRef) -> None:
        if not Path(wt.path).is_dir():
            raise StepFailed(step, f"worktree {wt.path} is gone (run resumed on another host?); "
                                   "retry the run")

    async def record_call(self, run: RunRef, call_id: str, turns: int, cost_usd: float,
                          session_id: str | None, usage: Mapping[str, Any] | None = None) -> None:
        """One agent call's turns and cost, under an id unique in the run (`implement`, `review:0`,
        `lint:fix:2`): a step re-run after a crash records its call again under the same id, which
        replaces the figures instead of adding them. `session_id`: the run's latest, or None (the
        review session is separate: the implement session stays the one to resume)."""
        await self.d.store.add_usage(run.run_id, turns=turns, cost_usd=cost_usd, session_id=session_id,
                                     call_id=call_id)
        if self.d.spend is not None:  # the ledger by token kind, and the caps' 80% warning
            await self.d.spend.record_call(run.run_id, run.key, call_id, cost_usd, usage)

    async def agent_failed(self, run: RunRef, step: str, call_id: str, err: AgentError) -> AgentFailed:
        """The failure to raise for a failed agent call, after recording what the call spent: its
        turns, cost and tokens, like `agent_done` (the ledger's tokens are the model proxy's)."""
        if self.d.stopping:
            # The CLI was killed by our own shutdown: not the run's failure. Cancellation is not
            # recorded as the step's outcome, so the step runs again after the restart.
            raise asyncio.CancelledError(f"service stopping during an agent call ({err.terminal_reason})")
        await self.record_call(run, call_id, err.turns, err.cost_usd, err.session_id, err.usage)
        reason = self.d.scanner.redact(f"agent {err.terminal_reason}: {err.detail}")
        return AgentFailed(step, reason, err.terminal_reason)

    async def agent_done(self, run: RunRef, call_id: str, call: AgentRun, usage: Usage) -> Usage:
        """Record a finished call; the run's usage after it (what the PR body shows)."""
        await self.record_call(run, call_id, call.turns, call.cost_usd, call.session_id, call.usage)
        return usage.plus(call.turns, call.cost_usd)

    def outbound_check(self, step: str, what: str, items: list[tuple[str, str | bytes]],
                       nothing: str) -> None:
        """Raise OutboundBlocked when a secret value is in `items` (label, content) or in a label:
        which variables, in which form, where, and what did not happen. Labels (file names) are
        shown redacted: a file may be named after a secret."""
        scanner = self.d.scanner
        hits: dict[str, set[tuple[str, str]]] = {}
        for label, content in items:
            for hit in [*scanner.find_forms(label), *scanner.find_forms(content)]:
                hits.setdefault(scanner.redact(label), set()).add(hit)
        if not hits:
            return
        found = describe(sorted({h for where in hits.values() for h in where}))
        places = sorted(hits)
        shown = ", ".join(places[:5]) + (f" and {len(places) - 5} more" if len(places) > 5 else "")
        plural = "values" if len({n for where in hits.values() for n, _ in where}) > 1 else "value"
        raise OutboundBlocked(
            step, f"outbound check: {what} contains the {plural} of {found} in {shown}; {nothing}")
