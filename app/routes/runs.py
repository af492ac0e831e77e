"""The runs API of DESIGN.md: list, show, cancel, retry, and live events (SSE)."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from typing import Annotated, Any

from fastapi import APIRouter, Query
from fastapi.responses import JSONResponse, StreamingResponse

from app.api.dependencies import OperatorDep, RunnerDep, StoreDep
from app.errors import NotFound
from app.models import FINAL_STATUSES, RunStatus, RunView

router = APIRouter(prefix="/runs", dependencies=[OperatorDep])

EVENT_POLL_SEC = 0.5


@router.get("")
async def list_runs(
    store: StoreDep,
    ticket: str | None = None,
    status: RunStatus | None = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
) -> list[RunView]:
    return await store.list_runs(ticket=ticket, status=status, limit=limit)


@router.get("/{run_id}")
async def get_run(run_id: str, store: StoreDep) -> RunView:
    run = await store.get_run(run_id)
    if run is None:
        raise NotFound(f"no run {run_id}")
    return run


@router.post("/{run_id}/cancel", status_code=202)
async def cancel_run(run_id: str, runner: RunnerDep) -> dict[str, str]:
    await runner.cancel(run_id)
    return {"status": "cancelled", "run_id": run_id}


@router.post("/{run_id}/retry", status_code=202)
async def retry_run(run_id: str, runner: RunnerDep) -> JSONResponse:
    result = await runner.retry(run_id)
    return JSONResponse(result.model_dump(), status_code=202)


@router.get("/{run_id}/events")
async def run_events(run_id: str, store: StoreDep) -> StreamingResponse:
    """Server-Sent Events: `step` (a step row changed), `log` (a new log line), `run` (status
    changed); the stream ends after the run reaches a final status. Polls the store, so it works
    whichever instance is running the ticket."""
    if await store.get_run_row(run_id) is None:
        raise NotFound(f"no run {run_id}")
    return StreamingResponse(_events(run_id, store), media_type="text/event-stream",
                             headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"})


async def _events(run_id: str, store: Any) -> AsyncIterator[str]:
    seen_steps: dict[str, tuple[str, Any]] = {}
    last_log = 0
    last_status = None
    while True:
        run: RunView | None = await store.get_run(run_id)
        if run is None:
            return
        for step in run.steps:
            key = (step.status, step.finished_at)
            if seen_steps.get(step.name) != key:
                seen_steps[step.name] = key
                yield _sse("step", step.model_dump(mode="json"))
        for line in await store.logs_after(run_id, last_log):
            last_log = line["id"]
            yield _sse("log", {"ts": line["ts"], "level": line["level"], "message": line["message"]})
        if run.status != last_status:
            last_status = run.status
            yield _sse("run", {"run_id": run_id, "status": run.status, "error": run.error,
                               "pr_url": run.pr_url})
        if run.status in FINAL_STATUSES:
            return
        await asyncio.sleep(EVENT_POLL_SEC)


def _sse(event: str, data: dict[str, Any]) -> str:
    return f"event: {event}\ndata: {json.dumps(data, default=str)}\n\n"
