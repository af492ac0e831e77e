"""The steps that do the work: start, prepare, setup, implement, and a gate's check, fix and end.

Each method is a DBOS step of `TicketRunner` (workflow.py mixes this class in): it takes and returns
the models of models.py, records its row through `self.row(...)`, and fails by raising `StepFailed`
(or a subclass). Long steps are `preemptible` so a cancel interrupts them (our subprocess helpers
kill their process groups on CancelledError). Every text from the agent or a check is redacted
before it is returned (DBOS stores step outputs in the database) or recorded.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

from dbos import DBOS

from app.errors import AgentError, AutoCodeError
from app.prompts import ticket_prompts as prompts
from app.services.claude_code.base import AgentRequest
from app.services.runner.errors import StepFailed
from app.services.runner.gates import GATES, tail
from app.services.runner.models import (
    FixRound,
    GateCheck,
    GateOutcome,
    GateResult,
    GateState,
    ImplementOutcome,
    RunOptions,
    RunRef,
    Usage,
    WorktreeRef,
)
from app.services.runner.repo_steps import RepoSteps


class WorkSteps(RepoSteps):
    @DBOS.step()
    async def start(self, run: RunRef, shaped: RunOptions | None = None) -> RunOptions | None:
        """Mark the run running and fix its shape (RunOptions: recorded, so a replay keeps it):
        `shaped`, what the dispatcher decided before the handoff (repo_steps.decide), recorded on
        the run here; else decided now (a run handed off by an older version). The record is
        intake's, written before the workflow existed; None when it has ended already (cancelled
        while it waited in the queue): the workflow then does nothing."""
        if not await self.d.store.start_run(run.run_id):
            return None
        await self.say(run, "run_started", step="start")
        if shaped is None:
            return await self.shape(run)  # the ticket as Jira has it, its repository, what it brings
        await self.settle(run, shaped)
        return shaped

    @DBOS.step()
    async def prepare(self, run: RunRef, opts: RunOptions | None = None) -> WorktreeRef:
        repository = opts.repository if opts is not None else ""
        async with self.row(run, "prepare") as row:
            try:
                workspace = self.d.repository(repository).workspace  # the routed repository's clone
                wt = WorktreeRef.of(await workspace.prepare(run.key), repository)
            except AutoCodeError as exc:
                raise StepFailed("prepare", exc.detail) from None
            await self.d.store.update_run(run.run_id, branch=wt.branch)
            row.detail = wt.model_dump(mode="json")
        await self.say(run, f"worktree ready at {wt.path} on {wt.branch}", step="prepare")
        return wt

    @DBOS.step(preemptible=True)
    async def setup(self, run: RunRef, wt: WorktreeRef, opts: RunOptions | None = None) -> None:
        async with self.row(run, "setup") as row:
            self.require("setup", wt)
            res = await self.d.checks.run("setup", Path(wt.path), argv=opts.setup_command if opts else None)
            output = self.d.scanner.redact(res.output)
            row.detail = {"exit_code": res.exit_code, "duration_s": round(res.duration_s, 3),
                          "output": tail(output)}
            if not res.passed:
                why = "timed out" if res.timed_out else f"exited {res.exit_code}"
                raise StepFailed("setup", f"setup command {why}: {tail(output, 400)}")

    @DBOS.step(preemptible=True)
    async def implement(self, run: RunRef, wt: WorktreeRef, opts: RunOptions) -> ImplementOutcome:
        d = self.d
        async with self.row(run, "implement") as row:
            self.require("implement", wt)
            cwd = Path(wt.path)
            # Start the CLI (~0.3 s to connect) before building the prompt: the task gets the loop at
            # the sleep(0), spawns the CLI and connects while the prompt is built.
            warming = asyncio.create_task(d.claude.warm(cwd, run.run_id))
            await asyncio.sleep(0)
            prompt = prompts.implementation_prompt(run.ticket, opts.instructions)
            await warming
            req = AgentRequest(cwd=cwd, prompt=prompt, ticket_key=run.key, run_id=run.run_id,
                               log=self.agent_log(run), phase="implement",
                               allowed_commands=opts.allowed_commands, budget_usd=opts.budget_usd)
            try:
                call = await d.claude.implement(req)
            except AgentError as exc:
                raise await self.agent_failed(run, "implement", "implement", exc) from None
            usage = await self.agent_done(run, "implement", call, Usage())
            summary = d.scanner.redact(call.result_text)  # the agent's text is hostile: it may quote a secret
            workspace = d.repository(wt.repository).workspace
            changed = await workspace.has_changes(wt.worktree)
            diff = await workspace.diff_summary(wt.worktree) if changed else ""
            row.detail = {
                "session_id": call.session_id, "turns": call.turns, "cost_usd": call.cost_usd,
                "usage": call.usage, "has_changes": changed, "diff": diff,
                "permission_denials": call.permission_denials, "summary": tail(summary, 2000),
            }
        if not changed:
            await self.say(run, "agent made no changes", step="implement")
        return ImplementOutcome(session_id=call.session_id, has_changes=changed, summary=summary, usage=usage)

    @DBOS.step(preemptible=True)
    async def gate_check(self, run: RunRef, wt: WorktreeRef, state: GateState,
                         opts: RunOptions | None = None) -> GateCheck:
        """One check round of the gate; its step row holds every round so far."""
        async with self.row(run, state.gate, begin=state.checks == 0, end=False) as row:
            self.require(state.gate, wt)
            found = await GATES[state.gate].check(self.d, run, wt, state.checks, self.agent_log(run), opts)
            usage = state.usage
            if found.turns or found.cost_usd:  # the review session is separate: keep the implement id
                usage = usage.plus(found.turns, found.cost_usd)
                await self.record_call(run, f"{state.gate}:{state.checks}", found.turns, found.cost_usd, None,
                                       found.usage)
            state = state.model_copy(update={"rounds": (*state.rounds, found.round), "usage": usage})
            row.detail = state.detail()
        if found.note:
            await self.say(run, found.note, step=state.gate)
        return GateCheck(state=state, verdict=found.verdict, feedback=found.feedback, excerpt=found.excerpt,
                         signature=found.signature)

    @DBOS.step(preemptible=True)
    async def gate_fix(self, run: RunRef, wt: WorktreeRef, state: GateState, feedback: str,
                       opts: RunOptions) -> GateState:
        """Resume the implement session (same cwd, latest session id) with the gate's failure."""
        n = state.fix_rounds + 1
        async with self.row(run, state.gate, begin=False, end=False) as row:
            self.require(state.gate, wt)
            prompt = prompts.fix_prompt(state.gate, feedback, n, self.d.settings.check_output_max_chars)
            req = AgentRequest(cwd=Path(wt.path), prompt=prompt, ticket_key=run.key, run_id=run.run_id,
                               log=self.agent_log(run), phase="fix", gate=state.gate, round=n,
                               allowed_commands=opts.allowed_commands, budget_usd=opts.budget_usd)
            try:
                call = await self.d.claude.fix(req, state.session_id)
            except AgentError as exc:
                failed = await self.agent_failed(run, state.gate, f"{state.gate}:fix:{n}", exc)
                rounds = (*state.rounds, FixRound(round=n, error=failed.reason))
                row.detail = state.model_copy(update={"rounds": rounds}).detail("error")
                raise failed from None
            usage = await self.agent_done(run, f"{state.gate}:fix:{n}", call, state.usage)
            fix = FixRound(round=n, session_id=call.session_id, turns=call.turns, cost_usd=call.cost_usd)
            state = state.model_copy(update={"rounds": (*state.rounds, fix), "session_id": call.session_id,
                                             "usage": usage})
            row.detail = state.detail()
        await self.say(run, f"{state.gate} fix round {n} done", step=state.gate)
        return state

    @DBOS.step()
    async def gate_done(self, run: RunRef, state: GateState, outcome: GateOutcome,
                        findings: str | None = None) -> GateResult:
        """Finish the gate's row. An unreadable review is reported in the PR but does not block it."""
        passed = outcome == "passed" or (state.gate == "review" and outcome == "error")
        async with self.row(run, state.gate, begin=False) as row:
            row.status = "succeeded" if passed else "failed"
            row.detail = state.detail(outcome)
        return GateResult(gate=state.gate, outcome=outcome, fix_rounds=state.fix_rounds,
                          session_id=state.session_id, usage=state.usage, findings=findings)
