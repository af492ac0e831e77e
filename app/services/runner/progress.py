"""`ProgressHub`: keeps each run's Jira progress comment current, off the pipeline's critical path.

The step recorder (record.py) calls `notify(run)` whenever a step row changes; `notify` never waits.
Per run there is at most one background task: it reads the run's record (the store is the source
of truth, so coalescing is free: one publish shows every change since the last) and publishes it
through `ProgressComments`; notifications that arrive meanwhile mark the run dirty and cause one
more publish, not one each. Every publish is bounded by JIRA_PROGRESS_TIMEOUT_SEC, and a failure is
logged (once per run and kind) and dropped: Jira being down never fails or slows a run.

The end is different: `final(...)` is awaited by the durable `report` step (DBOS records it, so the
final state survives a kill -9 and a replay edits the same comment, found by its marker). It
lets the run's background publish in flight finish first (or cancels it past the timeout), so a
late live update cannot overwrite the final state, and live updates of a run whose report step has
run are never published. An operator's cancel ends the run without a report step: `cancelled(...)`
(called by the cancel's route, runner/operations.py) closes the comment the same way, in the
background.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable, Coroutine
from dataclasses import dataclass, field
from typing import Any

from app.errors import AutoCodeError
from app.models import FINAL_STATUSES, RunView
from app.services.jira.base import JiraComments
from app.services.jira.progress import ProgressComments
from app.services.jira.progress_doc import ProgressState, ProgressView, StepLine, run_page_url
from app.services.runner.models import Report
from app.services.runner.store_base import RunStore
from app.services.spend.caps import Clock

log = logging.getLogger(__name__)

# Rows written after the final report: they never trigger a live update (it would be stale).
AFTER_REPORT = frozenset({"report", "cleanup", "finish"})


@dataclass
class _Worker:
    run_id: str
    key: str
    dirty: bool = False
    closed: bool = False  # the final report took over: no more live publishes
    task: asyncio.Task[None] | None = None
    transitioned: bool = False
    warned: set[str] = field(default_factory=set)


class ProgressHub:
    def __init__(self, comments: ProgressComments, jira: JiraComments, store: RunStore, *,
                 timeout_sec: float, public_base_url: str | None = None,
                 start_transition: str | None = None, clock: Clock = time.time) -> None:
        self.comments = comments
        self.jira = jira
        self.store = store
        self.timeout_sec = timeout_sec
        self.public_base_url = public_base_url
        self.start_transition = start_transition
        self.clock = clock
        self._workers: dict[str, _Worker] = {}
        self._others: set[asyncio.Task[None]] = set()

    # ----- live updates (background) -----
    def notify(self, run_id: str, key: str, step: str | None = None) -> None:
        """A step of the run moved: publish soon, in the background. Never raises, never waits."""
        if step in AFTER_REPORT:
            return
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            return
        worker = self._workers.setdefault(run_id, _Worker(run_id, key))
        worker.dirty = True
        if worker.task is None or worker.task.done():
            worker.task = loop.create_task(self._drain(worker), name=f"jira-progress:{run_id}")

    async def _drain(self, worker: _Worker) -> None:
        while worker.dirty and not worker.closed:
            worker.dirty = False
            try:
                await asyncio.wait_for(self._publish_live(worker), self.timeout_sec)
            except Exception as exc:  # best effort: Jira down, slow, refusing; never the run's problem
                self._warn(worker, "update", exc)

    async def _publish_live(self, worker: _Worker) -> None:
        view = await self.store.get_run(worker.run_id)
        if view is None or view.status in FINAL_STATUSES or any(s.name == "report" and s.status != "running"
                                                for s in view.steps):
            return  # the final report owns the comment now
        state: ProgressState = "waiting" if view.status == "waiting" else "working"
        await self.comments.publish(worker.key, self._view(view, state, reason=view.hold_reason
                                                           if state == "waiting" else None))
        if self.start_transition and not worker.transitioned:
            worker.transitioned = True
            try:
                await self.jira.transition(worker.key, self.start_transition)
            except Exception as exc:  # the comment went out; the transition is optional
                self._warn(worker, "transition", exc)

    def _view(self, run: RunView, state: ProgressState, *, reason: str | None = None,
              pr_url: str | None = None, final: bool = False) -> ProgressView:
        steps = tuple(StepLine(s.name, s.status, _note(s.detail)) for s in run.steps
                      if s.name not in AFTER_REPORT)
        return ProgressView(
            run_id=run.run_id, state=state, steps=steps,
            run_url=run_page_url(self.public_base_url, run.run_id),
            pr_url=pr_url, reason=reason, cost_usd=run.cost_usd if final else None,
            duration_s=max(0.0, self.clock() - run.created_at.timestamp()) if final else None,
        )

    # ----- the end (awaited by the durable report step) -----
    async def final(self, run_id: str, key: str, report: Report) -> None:
        """Show the run's outcome in its comment: the PR link, or the failure and its reason, with
        duration and cost. Bounded by the timeout; raises (JiraError, TimeoutError) for the report
        step to record — the run's outcome stands either way."""
        worker = self._workers.pop(run_id, None)
        if worker is not None:
            worker.closed = True
            await self._settle(worker)
        try:
            run = await self.store.get_run(run_id)
            if run is None:
                return
            state: ProgressState = report.outcome
            view = self._view(run, state, reason=None if state == "succeeded" else report.text,
                              pr_url=report.pr_url, final=True)
            await asyncio.wait_for(self.comments.publish(key, view), self.timeout_sec)
        finally:
            self.comments.forget(run_id)

    async def _settle(self, worker: _Worker) -> None:
        """Let the worker's live update in flight finish before an end state is published, so it
        cannot land after it: it is bounded, and cancelled only if it outlives the timeout (a
        cancelled POST that did land is found again by its marker)."""
        task = worker.task
        if task is None or task.done():
            return
        try:
            await asyncio.wait_for(asyncio.shield(task), self.timeout_sec)
        except TimeoutError:
            task.cancel()
            with contextlib.suppress(BaseException):
                await task

    def ended(self, run_id: str, key: str) -> None:
        """The run ended (its finish step). A run that ended without its report step (an internal
        error) still gets its comment closed, in the background: the failure and its error."""
        async def close() -> None:
            try:
                run = await self.store.get_run(run_id)
                if run is None or any(s.name == "report" for s in run.steps):
                    return  # the report step wrote the final state (or tried to)
                view = self._view(run, "failed", reason=run.error, final=True)
                await asyncio.wait_for(self.comments.publish(key, view), self.timeout_sec)
            except Exception as exc:
                log.warning("jira_progress_failed", extra={"ticket": key, "run_id": run_id, "action": "end",
                                                           "error": _why(exc)})
            finally:
                self.comments.forget(run_id)

        if not self._background(close):
            return
        worker = self._workers.pop(run_id, None)
        if worker is not None:
            worker.closed = True

    def cancelled(self, run_id: str) -> None:
        """An operator (or `auto-code recover`) cancelled the run (its record is already final): its
        comment says so, in the background, bounded, best effort. A live update in flight is let
        finish first (it read the run before the cancel and would otherwise land over this); later
        ones see the final record and publish nothing. A run with no step row has had no comment:
        none is started for it; a run cancelled once its report step had run (during cleanup) keeps
        the state that step wrote."""
        worker = self._workers.pop(run_id, None)
        if worker is not None:
            worker.closed = True

        async def close() -> None:
            key = worker.key if worker is not None else None
            try:
                if worker is not None:
                    await self._settle(worker)
                run = await self.store.get_run(run_id)
                if run is None or not run.steps or any(s.name == "report" for s in run.steps):
                    return  # no comment yet, or the report step wrote the final state (or is writing it)
                key = run.ticket
                view = self._view(run, "cancelled", reason=run.error, final=True)
                await asyncio.wait_for(self.comments.publish(key, view), self.timeout_sec)
            except Exception as exc:
                log.warning("jira_progress_failed", extra={"ticket": key, "run_id": run_id,
                                                           "action": "cancel", "error": _why(exc)})
            finally:
                self.comments.forget(run_id)

        self._background(close)

    # ----- notices (spend warnings) -----
    def notice(self, key: str, text: str) -> None:
        """Post a separate comment in the background (bounded, best effort)."""
        async def send() -> None:
            try:
                await asyncio.wait_for(self.comments.notice(key, text), self.timeout_sec)
            except Exception as exc:
                log.warning("jira_notice_failed", extra={"ticket": key, "error": _why(exc)})

        self._background(send)

    def _background(self, job: Callable[[], Coroutine[Any, Any, None]]) -> bool:
        """Run `job()` as a task kept until it ends; False (nothing started) outside an event loop."""
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            return False
        task = loop.create_task(job())
        self._others.add(task)
        task.add_done_callback(self._others.discard)
        return True

    async def aclose(self) -> None:
        """Cancel what is still in flight (at shutdown)."""
        tasks = [w.task for w in self._workers.values() if w.task is not None] + list(self._others)
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(BaseException):
                await task
        self._workers.clear()

    async def idle(self) -> None:
        """Wait until no live update is in flight (tests; the shutdown)."""
        while True:
            tasks = [w.task for w in self._workers.values() if w.task is not None] + list(self._others)
            pending = [t for t in tasks if not t.done()]
            if not pending:
                return
            await asyncio.wait(pending)

    def _warn(self, worker: _Worker, what: str, exc: BaseException) -> None:
        if what in worker.warned:
            return  # once per run and kind: Jira down for an hour is one line per run, not hundreds
        worker.warned.add(what)
        log.warning("jira_progress_failed", extra={"ticket": worker.key, "run_id": worker.run_id,
                                                   "action": what, "error": _why(exc)})


def _why(exc: BaseException) -> str:
    if isinstance(exc, AutoCodeError):
        return exc.detail
    if isinstance(exc, TimeoutError):
        return "timed out (JIRA_PROGRESS_TIMEOUT_SEC)"
    return type(exc).__name__


def _note(detail: dict[str, object]) -> str | None:
    rounds = detail.get("fix_rounds")
    if isinstance(rounds, int) and rounds > 0:
        return f"{rounds} fix round{'s' if rounds != 1 else ''}"
    return None


__all__ = ["AFTER_REPORT", "ProgressHub"]
