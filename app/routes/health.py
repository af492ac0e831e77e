"""`GET /health` (no auth, for probes) and `GET /metrics` (Prometheus text format)."""

from __future__ import annotations

from fastapi import APIRouter
from fastapi.responses import PlainTextResponse

from app.api.dependencies import OperatorDep, SettingsDep, StoreDep

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


@router.get("/metrics", response_class=PlainTextResponse, dependencies=[OperatorDep])
async def metrics(store: StoreDep) -> str:
    counts = await store.count_by_status()
    lines = [
        "# HELP auto_code_runs Runs recorded, by status.",
        "# TYPE auto_code_runs gauge",
    ]
    for status in ("queued", "running", "succeeded", "failed", "no_changes", "cancelled"):
        lines.append(f'auto_code_runs{{status="{status}"}} {counts.get(status, 0)}')
    return "\n".join(lines) + "\n"
