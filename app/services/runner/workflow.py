"""The durable pipeline: one DBOS workflow per run, one DBOS step per unit of work.

DBOS records each step's output; after a crash the workflow is replayed and every finished step
returns its recorded output instead of running again, so work resumes at the first unfinished step.
Consequences for this code:
- the workflow body must be deterministic given step outputs (no clock, no I/O outside steps);
- step outputs are plain dicts (pickled by DBOS): failures are returned as `{"error": ...}`
  rather than raised, because our exception classes carry keyword fields that do not round-trip;
- long steps are `preemptible` so a cancel interrupts them (our subprocess helpers kill their
  process groups on CancelledError).
Step names in the run record are DESIGN's: prepare, setup, implement, review, lint, test, commit,
push, pull_request, report, cleanup.
"""

from __future__ import annotations

import logging
from typing import Any

from dbos import DBOS, DBOSConfiguredInstance

from app.logger import bind_run
from app.models import Ticket
from app.services.runner import steps as S
from app.services.runner.deps import PipelineDeps

log = logging.getLogger(__name__)


class PipelineFailed(Exception):
    """Internal: a step returned an error; the workflow records it and reports."""

    def __init__(self, step: str, error: str) -> None:
        super().__init__(f"{step}: {error}")
        self.step = step
        self.error = error


@DBOS.dbos_class()
class TicketRunner(DBOSConfiguredInstance):
    """One instance per process (DBOS finds it again on recovery by its config name). Its
    collaborators are swapped in by the lifespan through `deps`."""

    def __init__(self) -> None:
        self.deps: PipelineDeps | None = None
        super().__init__(config_name="runner")

    @property
    def d(self) -> PipelineDeps:
        if self.deps is None:  # pragma: no cover - the lifespan always sets it before launch
            raise RuntimeError("TicketRunner used before its dependencies were injected")
        return self.deps

    # ------------------------------------------------------------------ workflow
    @DBOS.workflow()
    async def run_ticket(self, ticket_data: dict[str, Any]) -> str:
        run_id = DBOS.workflow_id or "?"
        ticket = Ticket.model_validate(ticket_data)
        with bind_run(ticket.key, run_id):
            return await self._pipeline(run_id, ticket)

    async def _pipeline(self, run_id: str, ticket: Ticket) -> str:
        td = ticket.model_dump()
        # The run's shape comes from the recorded start step, never from the live settings.
        opts = await self.step_start(run_id, td)
        rounds = opts["gate_max_rounds"]
        wt: dict[str, Any] | None = None
        gates: dict[str, dict[str, Any]] = {}
        try:
            wt = _ok("prepare", await self.step_prepare(run_id, td))
            if opts["enable_setup"]:
                _ok("setup", await self.step_setup(run_id, wt))
            impl = _ok("implement", await self.step_implement(run_id, td, wt))
            session_id = impl["session_id"]
            if not impl["has_changes"]:
                await self.step_report(run_id, td, "no_changes", None, impl.get("result_text", ""))
                await self.step_cleanup(run_id, wt, False)
                return await self.step_finish(run_id, "no_changes", None)
            review_findings: str | None = None
            if opts["enable_review"]:
                gates["review"], session_id, review_findings = await self._review_gate(
                    run_id, td, wt, session_id, rounds
                )
            for gate, enabled in (("lint", opts["enable_lint"]), ("test", opts["enable_tests"])):
                if enabled:
                    gates[gate], session_id = await self._check_gate(run_id, gate, wt, session_id, rounds)
            if opts["dry_run"]:
                for name in ("commit", "push", "pull_request"):
                    await self.step_skip(run_id, name, "DRY_RUN")
                await self.step_report(run_id, td, "dry_run", None, impl.get("result_text", ""))
                await self.step_cleanup(run_id, wt, True)
                return await self.step_finish(run_id, "succeeded", None)
            _ok("commit", await self.step_commit(run_id, td, wt))
            _ok("push", await self.step_push(run_id, wt))
            pr = _ok(
                "pull_request",
                await self.step_pull_request(run_id, td, wt, impl.get("result_text", ""), gates,
                                             review_findings),
            )
            await self.step_report(run_id, td, "succeeded", pr["pr_url"], None)
            await self.step_cleanup(run_id, wt, False)
            return await self.step_finish(run_id, "succeeded", None)
        except PipelineFailed as failed:
            message = f"{failed.step}: {failed.error}"
            await self.step_report(run_id, td, "failed", None, message)
            if wt is not None:
                await self.step_cleanup(run_id, wt, True)  # keep the worktree for a post-mortem
            return await self.step_finish(run_id, "failed", message)
        except Exception as exc:
            # A bug or an unexpected error in a step: the run must still end visibly failed, never
            # stay "running". (A DBOS cancel is a BaseException and passes through.) While the
            # service is stopping, errors are side effects of the shutdown: leave the run to recovery.
            if self.d.stopping:
                raise
            log.exception("pipeline_crashed")
            return await self.step_finish(run_id, "failed", f"internal error: {type(exc).__name__}: {exc}")

    async def _review_gate(
        self, run_id: str, td: dict[str, Any], wt: dict[str, Any], session_id: str, limit: int
    ) -> tuple[dict[str, Any], str, str | None]:
        rounds: list[dict[str, Any]] = []
        last_sig: str | None = None
        for n in range(limit + 1):
            res = await self.step_review_round(run_id, td, wt, n, rounds)
            rounds = res["rounds"]
            if not res["ok"]:
                # A review that could not be read does not block the PR; it is reported in it.
                return await self.step_gate_done(run_id, "review", rounds, "error"), session_id, (
                    f"Review could not be completed: {res['error']}"
                )
            if not res["has_issues"]:
                done = await self.step_gate_done(run_id, "review", rounds, "passed")
                return done, session_id, res["findings"] or None
            outcome = _stop_reason(n, limit, res["signature"], last_sig)
            if outcome:
                await self.step_gate_done(run_id, "review", rounds, outcome)
                raise PipelineFailed("review", f"{_explain(outcome, n)}; findings: {res['findings'][:500]}")
            last_sig = res["signature"]
            fix = _ok("review", await self.step_fix(run_id, "review", wt, session_id, res["findings"], n + 1,
                                                    rounds))
            rounds, session_id = fix["rounds"], fix["session_id"]
        raise AssertionError("unreachable")  # pragma: no cover

    async def _check_gate(
        self, run_id: str, gate: str, wt: dict[str, Any], session_id: str, limit: int
    ) -> tuple[dict[str, Any], str]:
        rounds: list[dict[str, Any]] = []
        last_sig: str | None = None
        for n in range(limit + 1):
            res = await self.step_check_round(run_id, gate, wt, n, rounds)
            rounds = res["rounds"]
            if res["passed"]:
                return await self.step_gate_done(run_id, gate, rounds, "passed"), session_id
            outcome = _stop_reason(n, limit, res["signature"], last_sig)
            if outcome:
                await self.step_gate_done(run_id, gate, rounds, outcome)
                raise PipelineFailed(gate, f"{_explain(outcome, n)}; last output: {res['tail'][-400:]}")
            last_sig = res["signature"]
            fix = _ok(gate, await self.step_fix(run_id, gate, wt, session_id, res["output"], n + 1, rounds))
            rounds, session_id = fix["rounds"], fix["session_id"]
        raise AssertionError("unreachable")  # pragma: no cover

    # ------------------------------------------------------------------ steps
    @DBOS.step()
    async def step_start(self, run_id: str, td: dict[str, Any]) -> dict[str, Any]:
        return await S.start(self.d, run_id, td)

    @DBOS.step()
    async def step_prepare(self, run_id: str, td: dict[str, Any]) -> dict[str, Any]:
        return await S.prepare(self.d, run_id, td)

    @DBOS.step(preemptible=True)
    async def step_setup(self, run_id: str, wt: dict[str, Any]) -> dict[str, Any]:
        return await S.setup(self.d, run_id, wt)

    @DBOS.step(preemptible=True)
    async def step_implement(self, run_id: str, td: dict[str, Any], wt: dict[str, Any]) -> dict[str, Any]:
        return await S.implement(self.d, run_id, td, wt)

    @DBOS.step(preemptible=True)
    async def step_review_round(
        self, run_id: str, td: dict[str, Any], wt: dict[str, Any], n: int, rounds: list[dict[str, Any]]
    ) -> dict[str, Any]:
        return await S.review_round(self.d, run_id, td, wt, n, rounds)

    @DBOS.step(preemptible=True)
    async def step_check_round(
        self, run_id: str, gate: str, wt: dict[str, Any], n: int, rounds: list[dict[str, Any]]
    ) -> dict[str, Any]:
        return await S.check_round(self.d, run_id, gate, wt, n, rounds)

    @DBOS.step(preemptible=True)
    async def step_fix(
        self, run_id: str, gate: str, wt: dict[str, Any], session_id: str, failure: str, n: int,
        rounds: list[dict[str, Any]],
    ) -> dict[str, Any]:
        return await S.fix(self.d, run_id, gate, wt, session_id, failure, n, rounds)

    @DBOS.step()
    async def step_gate_done(
        self, run_id: str, gate: str, rounds: list[dict[str, Any]], outcome: str
    ) -> dict[str, Any]:
        return await S.gate_done(self.d, run_id, gate, rounds, outcome)

    @DBOS.step()
    async def step_skip(self, run_id: str, name: str, reason: str) -> None:
        await self.d.store.finish_step(run_id, name, "skipped", {"reason": reason})

    @DBOS.step()
    async def step_commit(self, run_id: str, td: dict[str, Any], wt: dict[str, Any]) -> dict[str, Any]:
        return await S.commit(self.d, run_id, td, wt)

    @DBOS.step(preemptible=True)
    async def step_push(self, run_id: str, wt: dict[str, Any]) -> dict[str, Any]:
        return await S.push(self.d, run_id, wt)

    @DBOS.step()
    async def step_pull_request(
        self, run_id: str, td: dict[str, Any], wt: dict[str, Any], summary: str,
        gates: dict[str, dict[str, Any]], review_findings: str | None,
    ) -> dict[str, Any]:
        return await S.pull_request(self.d, run_id, td, wt, summary, gates, review_findings)

    @DBOS.step()
    async def step_report(
        self, run_id: str, td: dict[str, Any], outcome: str, pr_url: str | None, text: str | None
    ) -> None:
        await S.report(self.d, run_id, td, outcome, pr_url, text)

    @DBOS.step()
    async def step_cleanup(self, run_id: str, wt: dict[str, Any], keep: bool) -> None:
        await S.cleanup(self.d, run_id, wt, keep)

    @DBOS.step()
    async def step_finish(self, run_id: str, status: str, error: str | None) -> str:
        return await S.finish(self.d, run_id, status, error)


def _ok(step: str, out: dict[str, Any]) -> dict[str, Any]:
    if out.get("error"):
        raise PipelineFailed(step, out["error"])
    return out


def _stop_reason(n: int, limit: int, sig: str, last_sig: str | None) -> str | None:
    if n >= limit:
        return "round_limit"
    if last_sig is not None and sig == last_sig:
        return "stagnation"
    return None


def _explain(outcome: str, n: int) -> str:
    if outcome == "stagnation":
        return f"the same failure came back after fix round {n} (stagnation)"
    return f"still failing after {n} fix round(s) (round limit)"
