"""`GET /health` (no auth, for probes) and `GET /metrics` (Prometheus text format)."""

from __future__ import annotations

import time

from fastapi import APIRouter, Request
from fastapi.responses import Response
from prometheus_client import CONTENT_TYPE_LATEST

from app.api.dependencies import OperatorDep, SettingsDep, StoreDep
from app.services.metrics import ServiceMetrics, SharedState

router = APIRouter()


@router.get("/health")
async def health(settings: SettingsDep, store: StoreDep) -> dict[str, object]:
    """Liveness plus a cheap database round trip; 200 while the service can take tickets."""
    counts = await store.count_by_status()
    return {
        "status": "ok",
        "executor_id": settings.executor_id,
        "app_version": settings.app_version,
        "dry_run": settings.dry_run,
        "active_runs": counts.get("running", 0) + counts.get("queued", 0),
    }


@router.get("/metrics", dependencies=[OperatorDep])
async def metrics(request: Request, store: StoreDep) -> Response:
    """This process's counters and histograms, and the shared-state gauges read from the run
    database now (app/services/metrics/registry.py says which is which)."""
    counts = await store.count_by_status()
    oldest = await store.oldest_queued_at()  # one MIN, not every active record
    registry: ServiceMetrics = request.app.state.metrics
    body = registry.render(SharedState(counts=counts, oldest_queued_at=oldest, now=time.time()))
    return Response(body, media_type=CONTENT_TYPE_LATEST)
