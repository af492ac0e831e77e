"""The runs API of DESIGN.md: list, show, cancel, retry, and live events (SSE)."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query
from fastapi.responses import JSONResponse
from fastapi.sse import EventSourceResponse, ServerSentEvent

from app.api.dependencies import OperatorDep, RunnerDep, SettingsDep, StoreDep
from app.errors import NotFound
from app.models import FINAL_STATUSES, RunStatus, RunView
from app.services.runner import operations

router = APIRouter(prefix="/runs", dependencies=[OperatorDep])

EVENT_POLL_SEC = 0.5  # how often the stream reads the store


@router.get("")
async def list_runs(
    store: StoreDep,
    ticket: str | None = None,
    status: RunStatus | None = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
    repository: str | None = None,
) -> list[RunView]:
    return await store.list_runs(ticket=ticket, status=status, limit=limit, repository=repository)


@router.get("/{run_id}")
async def get_run(run_id: str, store: StoreDep) -> RunView:
    run = await store.get_run(run_id)
    if run is None:
        raise NotFound(f"no run {run_id}")
    return run


@router.post("/{run_id}/cancel", status_code=202)
async def cancel_run(run_id: str, runner: RunnerDep) -> dict[str, str]:
    await operations.cancel_run(runner, run_id)
    return {"status": "cancelled", "run_id": run_id}


@router.post("/{run_id}/retry", status_code=202)
async def retry_run(run_id: str, runner: RunnerDep) -> JSONResponse:
    result = await runner.retry(run_id)
    return JSONResponse(result.model_dump(), status_code=202)


async def existing_run(run_id: str, store: StoreDep) -> str:
    """The run id of a run that exists (404 before any event is sent)."""
    if await store.get_run_row(run_id) is None:
        raise NotFound(f"no run {run_id}")
    return run_id


@router.get("/{run_id}/logs")
async def run_logs(
    run_id: Annotated[str, Depends(existing_run)], store: StoreDep,
    after: Annotated[int, Query(ge=0)] = 0, limit: Annotated[int, Query(ge=1, le=1000)] = 500,
) -> list[dict[str, Any]]:
    """The run's log lines with `id > after`, oldest first (`auto-code logs`; page on with the
    last line's id). Already redacted by the store."""
    lines = await store.logs_after(run_id, after, limit)
    return [{"id": x.id, "ts": x.ts, "level": x.level, "message": x.message} for x in lines]


@router.get("/{run_id}/events", response_class=EventSourceResponse)
async def run_events(
    run_id: Annotated[str, Depends(existing_run)], store: StoreDep, settings: SettingsDep
) -> AsyncIterator[ServerSentEvent]:
    """Server-Sent Events (FastAPI's own): `step` (a step row changed), `log` (a new log line),
    `run` (status changed); the stream ends after the run reaches a final status. A `: ping`
    comment goes out whenever nothing was sent for SSE_PING_SEC, so a long step does not look like
    a dead connection to a proxy or a client. Polls the store, so it works whichever instance is
    running the ticket."""
    seen_steps: dict[str, tuple[str, Any]] = {}
    last_log = 0
    last_status = None
    ping_every = settings.sse_ping_sec
    last_sent = time.monotonic()
    while True:
        events: list[ServerSentEvent] = []
        run: RunView | None = await store.get_run(run_id)
        if run is None:
            return
        for step in run.steps:
            key = (step.status, step.finished_at)
            if seen_steps.get(step.name) != key:
                seen_steps[step.name] = key
                events.append(_sse("step", step.model_dump(mode="json")))
        for line in await store.logs_after(run_id, last_log):
            last_log = line.id
            events.append(_sse("log", {"ts": line.ts, "level": line.level, "message": line.message}))
        if run.status != last_status:
            last_status = run.status
            events.append(_sse("run", {"run_id": run_id, "status": run.status, "error": run.error,
                                       "pr_url": run.pr_url}))
        now = time.monotonic()
        if not events and now - last_sent >= ping_every:
            events.append(ServerSentEvent(comment="ping"))
        for event in events:
            yield event
        if events:
            last_sent = now
        if run.status in FINAL_STATUSES:
            return
        await asyncio.sleep(min(EVENT_POLL_SEC, ping_every))


def _sse(event: str, data: dict[str, Any]) -> ServerSentEvent:
    # raw_data: the payload as it always was (json.dumps' separators; datetimes via str).
    return ServerSentEvent(event=event, raw_data=json.dumps(data, default=str))
