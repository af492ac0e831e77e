"""`AsyncRunStore`: the `RunStore` async callers use (split out of store.py).

Each method is `SqlRunStore`'s in a worker thread, so the shared DBOS event loop never blocks on the
database.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable

from app.models import RunKind, RunStatus, RunView, StepStatus
from app.services.runner.accept_batch import AcceptBatcher
from app.services.runner.store import SqlRunStore
from app.services.runner.store_base import UNSET, LogLine, NewRun, RunDetail, RunRow, StepDetail, Unset


class AsyncRunStore:
    """The `RunStore` for async callers: each method is `SqlRunStore`'s, in a worker thread (the
    DBOS context travels with it: `asyncio.to_thread` copies context variables)."""

    def __init__(self, store: SqlRunStore) -> None:
        self.sync = store
        # This process's writers that may take the database's lock in bursts (intake's accepts, the
        # dispatcher's handoffs) take turns here first on SQLite (accept_batch.py says why).
        sqlite = store.engine.dialect.name == "sqlite"
        self.write_gate: asyncio.Lock | None = asyncio.Lock() if sqlite else None
        self._accepts = AcceptBatcher(store, self.write_gate)

    @property
    def redact(self) -> Callable[[str], str]:
        return self.sync.redact

    @redact.setter
    def redact(self, fn: Callable[[str], str]) -> None:
        self.sync.redact = fn

    async def create_run(
        self, run_id: str, ticket: str, ticket_json: str, status: RunStatus = "queued", *,
        kind: RunKind = "ticket", parent_run_id: str | None = None, pr_number: int | None = None,
    ) -> bool:
        return await asyncio.to_thread(self.sync.create_run, run_id, ticket, ticket_json, status, kind=kind,
                                       parent_run_id=parent_run_id, pr_number=pr_number)

    async def accept_run(self, new: NewRun) -> str:
        return await self._accepts.accept(new)  # group commit with concurrent accepts (accept_batch.py)

    async def start_run(self, run_id: str) -> bool:
        return await asyncio.to_thread(self.sync.start_run, run_id)

    async def undispatched(self, *, limit: int, created_before: float | None = None) -> list[RunRow]:
        return await asyncio.to_thread(self.sync.undispatched, limit=limit, created_before=created_before)

    async def mark_enqueued(self, run_ids: list[str]) -> None:
        await asyncio.to_thread(self.sync.mark_enqueued, run_ids)

    async def update_run(
        self, run_id: str, *, status: RunStatus | Unset = UNSET, branch: str | Unset | None = UNSET,
        pr_url: str | Unset | None = UNSET, session_id: str | Unset | None = UNSET,
        error: str | Unset | None = UNSET, repository: str | Unset | None = UNSET,
    ) -> None:
        await asyncio.to_thread(self.sync.update_run, run_id, status=status, branch=branch, pr_url=pr_url,
                                session_id=session_id, error=error, repository=repository)

    async def end_run_if_active(self, run_id: str, status: RunStatus, error: str | None) -> bool:
        return await asyncio.to_thread(self.sync.end_run_if_active, run_id, status, error)

    async def add_usage(
        self, run_id: str, *, turns: int, cost_usd: float, session_id: str | None,
        call_id: str | None = None,
    ) -> None:
        await asyncio.to_thread(self.sync.add_usage, run_id, turns=turns, cost_usd=cost_usd,
                                session_id=session_id, call_id=call_id)

    async def start_step(self, run_id: str, name: str, detail: StepDetail | None = None) -> None:
        await asyncio.to_thread(self.sync.start_step, run_id, name, detail)

    async def update_step_detail(self, run_id: str, name: str, detail: StepDetail) -> None:
        await asyncio.to_thread(self.sync.update_step_detail, run_id, name, detail)

    async def finish_step(
        self, run_id: str, name: str, status: StepStatus, detail: StepDetail | None = None
    ) -> None:
        await asyncio.to_thread(self.sync.finish_step, run_id, name, status, detail)

    async def fail_running_steps(self, run_id: str, reason: str, status: StepStatus = "failed") -> None:
        await asyncio.to_thread(self.sync.fail_running_steps, run_id, reason, status)

    async def add_log(self, run_id: str, message: str, level: str = "info") -> None:
        await asyncio.to_thread(self.sync.add_log, run_id, message, level)

    async def get_run_row(self, run_id: str) -> RunRow | None:
        return await asyncio.to_thread(self.sync.get_run_row, run_id)

    async def get_run(self, run_id: str) -> RunView | None:
        return await asyncio.to_thread(self.sync.get_run, run_id)

    async def get_run_detail(self, run_id: str) -> RunDetail | None:
        return await asyncio.to_thread(self.sync.get_run_detail, run_id)

    async def list_runs(
        self, *, ticket: str | None = None, status: RunStatus | None = None, limit: int = 50,
        repository: str | None = None,
    ) -> list[RunView]:
        return await asyncio.to_thread(self.sync.list_runs, ticket=ticket, status=status, limit=limit,
                                       repository=repository)

    async def list_active(self, *, created_before: float | None = None) -> list[RunRow]:
        return await asyncio.to_thread(self.sync.list_active, created_before=created_before)

    async def count_by_status(self) -> dict[str, int]:
        return await asyncio.to_thread(self.sync.count_by_status)

    async def oldest_queued_at(self) -> float | None:
        return await asyncio.to_thread(self.sync.oldest_queued_at)

    async def logs_after(self, run_id: str, after_id: int = 0, limit: int = 500) -> list[LogLine]:
        return await asyncio.to_thread(self.sync.logs_after, run_id, after_id, limit)


__all__ = ["AsyncRunStore"]
