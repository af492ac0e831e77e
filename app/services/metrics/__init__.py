"""Prometheus metrics of the service (a per-app registry; see registry.py)."""

from app.services.metrics.registry import RUN_STATUSES, TOKEN_KINDS, ServiceMetrics, SharedState

__all__ = ["RUN_STATUSES", "TOKEN_KINDS", "ServiceMetrics", "SharedState"]
