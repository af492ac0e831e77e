"""The durable pipeline: `TicketRunner`, one DBOS class whose step methods are the steps.

One DBOS workflow per run (`run_ticket`), one DBOS step per unit of work. DBOS records each step's
output; after a crash the workflow is replayed and every finished step returns its recorded output
instead of running again, so work resumes at the first unfinished step. Hence:
- `pipeline` (the walk) must be deterministic given the step outputs: no clock, no I/O outside
  steps. It is a plain method: outside a DBOS workflow the step methods run as plain coroutines,
  so the fast tests call `pipeline` with in-memory collaborators and no DBOS at all;
- steps take and return the frozen models of models.py (DBOS pickles the outputs) and fail by
  raising the picklable `StepFailed` family of errors.py, which DBOS records and raises again on
  replay; the workflow catches them, reports and finishes the run;
- the run's shape comes from the recorded `start` step (RunOptions), never from live settings.
Step rows in the run record use DESIGN's names: prepare, setup, implement, review, lint, test,
commit, push, pull_request, report, cleanup (a gate's rounds are in its step's detail).
"""

from __future__ import annotations

import logging

from dbos import DBOS, DBOSConfiguredInstance

from app.followups.walk import FollowupWalk
from app.logger import bind_run
from app.models import Ticket
from app.services.runner.delivery import DeliverySteps
from app.services.runner.deps import PipelineDeps
from app.services.runner.errors import GateFailed, StepFailed
from app.services.runner.gates import explain, stop_reason
from app.services.runner.hold import HoldSteps
from app.services.runner.models import (
    GateName,
    GateResult,
    GateState,
    ImplementOutcome,
    Report,
    RunOptions,
    RunRef,
    Usage,
    WorktreeRef,
)
from app.services.runner.steps import WorkSteps

log = logging.getLogger(__name__)

# The workflow input's key for the dispatcher's RunOptions, beside the ticket's fields (no Ticket
# field has this name; an older version's Ticket.model_validate ignores it).
OPTIONS_KEY = "run_options"


@DBOS.dbos_class()
class TicketRunner(WorkSteps, HoldSteps, FollowupWalk, DeliverySteps, DBOSConfiguredInstance):
    """One instance per process under the config name "runner" (DBOS finds it again on recovery by
    that name). Its collaborators are bound by the engine before DBOS launches (`deps`)."""

    def __init__(self, deps: PipelineDeps | None = None, *, config_name: str = "runner") -> None:
        self.deps = deps
        super().__init__(config_name=config_name)

    @DBOS.workflow()
    async def run_ticket(self, ticket_data: dict[str, object]) -> str:
        """The DBOS boundary: the ticket as the JSON-able data the dispatcher enqueued, with the
        options it decided (repo_steps.decide) under OPTIONS_KEY (absent: enqueued by an older
        version). One argument, as before the options existed: a host of the version before that
        dequeues this run in a rolling upgrade reads it as a ticket (the key is an extra field it
        ignores) and decides the run in its own `start`."""
        data = dict(ticket_data)
        shaped = data.pop(OPTIONS_KEY, None)
        run = RunRef(run_id=DBOS.workflow_id or "?", ticket=Ticket.model_validate(data))
        with bind_run(run.key, run.run_id):
            return await self.pipeline(run, RunOptions.model_validate(shaped) if shaped else None)

    async def pipeline(self, run: RunRef, shaped: RunOptions | None = None) -> str:
        """The walk of one ticket; returns the run's final status."""
        opts = await self.start(run, shaped)
        if opts is None:  # its record ended before it started (a cancel while queued): no work
            log.info("run_not_started", extra={"reason": "record already final"})
            return "cancelled"
        if opts.ticket is not None:  # the ticket as Jira has it (start read it), not the delivery's copy
            run = run.model_copy(update={"ticket": opts.ticket})
        if opts.unroutable is not None or opts.not_started is not None:
            return await self.not_started(run, opts)  # needs_routing (with how to fix it), or failed
        await self.wait_while_held(run)  # a spend cap reached: `waiting` until there is room (hold.py)
        release = await self.d.slots.acquire(opts.repository)  # its repository's share (fairness.py)
        wt: WorktreeRef | None = None
        try:
            if opts.kind != "ticket":  # a follow-up on the open PR: its own walk (app/followups/walk.py)
                return await self.followup(run, opts)
            wt = await self.prepare(run, opts)
            opts = await self.configure(run, wt, opts)  # the repository's own file, on its base branch
            if opts.enable_setup:
                await self.setup(run, wt, opts)
            impl = await self.implement(run, wt, opts)
            if not impl.has_changes:
                await self.report(run, Report(outcome="no_changes", text=impl.summary))
                await self.cleanup(run, wt, False)
                return await self.finish(run, "no_changes", None)
            gates, usage = await self._gates(run, wt, opts, impl)
            if opts.dry_run:
                for name in ("commit", "push", "pull_request"):
                    await self.skip(run, name, "DRY_RUN")
                await self.report(run, Report(outcome="dry_run", text=impl.summary))
                await self.cleanup(run, wt, True)
                return await self.finish(run, "succeeded", None)
            await self.commit(run, wt)
            await self.push(run, wt)
            pr = await self.pull_request(run, wt, impl, gates, usage)
            await self.report(run, Report(outcome="succeeded", pr_url=pr.url))
            await self.cleanup(run, wt, False)
            return await self.finish(run, "succeeded", None)
        except StepFailed as failed:
            message = str(failed)
            await self.report(run, Report(outcome="failed", text=message))
            if wt is not None:
                await self.cleanup(run, wt, True)  # keep the worktree for a post-mortem
            return await self.finish(run, "failed", message)
        except Exception as exc:
            # A bug or an unexpected error in a step: the run must still end visibly failed, never
            # stay "running". (A DBOS cancel is a BaseException and passes through.) While the
            # service is stopping, errors are side effects of the shutdown: leave the run to recovery.
            if self.d.stopping:
                raise
            log.exception("pipeline_crashed")
            return await self.finish(run, "failed", f"internal error: {type(exc).__name__}: {exc}")
        finally:
            release()

    async def _gates(self, run: RunRef, wt: WorktreeRef, opts: RunOptions,
                     impl: ImplementOutcome) -> tuple[tuple[GateResult, ...], Usage]:
        """The enabled gates in order, each resuming the session the previous one left."""
        results: list[GateResult] = []
        session, usage = impl.session_id, impl.usage
        for gate in opts.gates:
            result = await self._gate(run, wt, opts, gate, session, usage)
            results.append(result)
            session, usage = result.session_id, result.usage
        return tuple(results), usage

    async def _gate(self, run: RunRef, wt: WorktreeRef, opts: RunOptions, gate: GateName,
                    session_id: str, usage: Usage) -> GateResult:
        """The one gate loop: check; passed → done; unreadable review → done, reported; else stop
        at the round limit or on stagnation, or feed the failure to a fix round and check again."""
        state = GateState(gate=gate, session_id=session_id, usage=usage)
        previous: str | None = None
        while True:
            check = await self.gate_check(run, wt, state, opts)
            state = check.state
            if check.verdict == "passed":  # a clean review's own words still go into the PR
                findings = (check.feedback or None) if gate == "review" else None
                return await self.gate_done(run, state, "passed", findings)
            if check.verdict == "unreadable":
                return await self.gate_done(run, state, "error",
                                            f"Review could not be completed: {check.feedback}")
            outcome = stop_reason(state.fix_rounds, opts.gate_max_rounds, check.signature, previous)
            if outcome is not None:
                await self.gate_done(run, state, outcome)
                raise GateFailed(gate, f"{explain(outcome, state.fix_rounds)}; {check.excerpt}", outcome,
                                 state.fix_rounds)
            previous = check.signature
            state = await self.gate_fix(run, wt, state, check.feedback, opts)
