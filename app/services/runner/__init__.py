"""The durable pipeline: DBOS workflow, run records, and the engine intake and operators use."""

from app.services.runner.deps import PipelineDeps
from app.services.runner.engine import RunEngine
from app.services.runner.store import AsyncRunStore, RunStore

__all__ = ["AsyncRunStore", "PipelineDeps", "RunEngine", "RunStore"]
