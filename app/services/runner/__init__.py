"""The durable pipeline: DBOS workflow, run records, and the engine intake and operators use."""

from app.services.runner.deps import PipelineDeps
from app.services.runner.engine import RunEngine
from app.services.runner.store import SqlRunStore
from app.services.runner.store_async import AsyncRunStore
from app.services.runner.store_base import LogLine, RunRow, RunStore

__all__ = ["AsyncRunStore", "LogLine", "PipelineDeps", "RunEngine", "RunRow", "RunStore", "SqlRunStore"]
