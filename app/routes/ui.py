"""`/ui`: the dashboard (app/dashboard/). Kept as the module the app includes, so the composition
root does not change when the dashboard does."""

from __future__ import annotations

from app.dashboard import router

__all__ = ["router"]
