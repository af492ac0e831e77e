"""Replay after a crash, with the cheapest real DBOS: an SQLite file, no app, no queue of ours, the
bench's in-memory collaborators. DBOS replays a workflow by position: every step before the replay
point returns its recorded output (or raises its recorded error) without running again. Also: the
step outputs and errors survive pickling, which is how DBOS records them."""

from __future__ import annotations

import pickle
import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from dbos import DBOS, SetWorkflowID

from app.models import Ticket
from app.services.runner.engine import dbos_config, get_ticket_runner
from app.services.runner.errors import AgentFailed, GateFailed, OutboundBlocked, StepFailed
from app.services.runner.models import GateState, ImplementOutcome, ReviewRound, RunOptions, Usage
from app.services.runner.workflow import TicketRunner
from tests.services.runner.bench import WRITE, Bench, bench, ticket_script


@pytest.fixture
async def dbos_bench(tmp_path: Path) -> AsyncIterator[tuple[Bench, TicketRunner]]:
    """The process's one "runner" (DBOS allows one instance per config name) on the bench's fakes,
    DBOS launched on a fresh SQLite file."""
    b = bench(tmp_path, ticket_script(implement=WRITE), {"lint": ["E1 bad", True, True]},
              ENABLE_LINT=1, DRY_RUN=1)  # DRY_RUN keeps the worktree for the replay
    b.deps.settings.workspace_dir.mkdir(parents=True, exist_ok=True)
    runner = get_ticket_runner()
    previous, runner.deps = runner.deps, b.deps
    DBOS(config=dbos_config(b.deps.settings))
    DBOS.launch()
    try:
        yield b, runner
    finally:
        DBOS.destroy(destroy_registry=False)
        runner.deps = previous


async def _run(b: Bench, runner: TicketRunner, key: str = "PROJ-1") -> str:
    run_id = f"{key}:{uuid.uuid4()}"
    ticket = Ticket(key=key, summary="Replay me")
    await b.store.create_run(run_id, key, ticket.model_dump_json())
    with SetWorkflowID(run_id):
        assert await runner.run_ticket(ticket.model_dump()) in ("succeeded", "failed")
    return run_id


async def _steps(workflow_id: str) -> list[str]:
    return [s["function_name"].rsplit(".", 1)[-1] for s in await DBOS.list_workflow_steps_async(workflow_id)]


def _step_id(names: list[str], index: int) -> int:
    """DBOS numbers a workflow's steps from 1; `fork_workflow_async(id, n)` re-runs step n on."""
    return index + 1


async def test_recorded_steps_are_not_run_again(dbos_bench: tuple[Bench, TicketRunner]) -> None:
    b, runner = dbos_bench
    run_id = await _run(b, runner)
    names = await _steps(run_id)
    assert names[:8] == ["start", "hold_for_spend", "prepare", "configure", "implement", "gate_check",
                         "gate_fix", "gate_check"]
    agent_calls, prepared, checks = len(b.claude.calls), len(b.workspace.prepared), b.checks.count("lint")

    # Replay from the second lint check: start..gate_fix come from the record.
    handle = await DBOS.fork_workflow_async(run_id, _step_id(names, names.index("gate_check", 6)))
    assert await handle.get_result() == "succeeded"
    assert len(b.claude.calls) == agent_calls  # implement and the fix were not run again
    assert len(b.workspace.prepared) == prepared
    assert b.checks.count("lint") == checks + 1  # the first unrecorded step ran
    assert await _steps(handle.get_workflow_id()) == names


async def test_a_recorded_failure_is_raised_again_on_replay(dbos_bench: tuple[Bench, TicketRunner]) -> None:
    b, runner = dbos_bench
    b.claude.script = ticket_script(errors={"implement": "max_turns"})
    run_id = await _run(b, runner, "PROJ-2")
    assert b.store.run(run_id)["error"].startswith("implement: agent max_turns")
    names = await _steps(run_id)
    assert names[:5] == ["start", "hold_for_spend", "prepare", "configure", "implement"]
    calls = len(b.claude.calls)

    handle = await DBOS.fork_workflow_async(run_id, _step_id(names, names.index("implement") + 1))
    assert await handle.get_result() == "failed"  # the unpickled AgentFailed, caught again
    assert len(b.claude.calls) == calls
    assert handle.get_workflow_id() not in b.store.runs  # its start step was replayed, not run


@pytest.mark.parametrize("error", [
    StepFailed("push", "refused"),
    AgentFailed("implement", "agent max_turns: 50", "max_turns"),
    OutboundBlocked("commit", "outbound check: ..."),
    GateFailed("lint", "still failing (round limit)", "round_limit", 3),
])
def test_step_errors_pickle_with_their_fields(error: StepFailed) -> None:
    back = pickle.loads(pickle.dumps(error))  # noqa: S301 - our own bytes, as DBOS records them
    assert type(back) is type(error) and vars(back) == vars(error) and str(back) == str(error)


def test_step_outputs_pickle() -> None:
    state = GateState(gate="review", session_id="s", usage=Usage(turns=2, cost_usd=0.5),
                      rounds=(ReviewRound(round=0, ok=True, has_issues=False, findings="none", error=None),))
    for value in (state, ImplementOutcome(session_id="s", has_changes=True, summary="x", usage=Usage()),
                  RunOptions(enable_setup=False, enable_review=True, enable_lint=False, enable_tests=False,
                             dry_run=False, gate_max_rounds=3, allowed_commands=(("pnpm", "lint"),))):
        assert pickle.loads(pickle.dumps(value)) == value  # noqa: S301 - our own bytes
