"""`InMemoryRunStore`: the run store's pipeline-facing methods over dicts, for the fast pipeline tests.

It keeps what the real store keeps, the way the real store keeps it - one row per (run, step name)
rewritten by a re-run, a final status never replaced by `running`, usage summed over call ids - so a
test asserts on the record (`run(...)`, `steps(...)`, `logs`) rather than on calls. Details are
round-tripped through JSON, as the database would.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from pydantic import BaseModel

from app.models import FINAL_STATUSES


@dataclass
class StepRecord:
    name: str
    status: str
    detail: dict[str, Any] = field(default_factory=dict)
    starts: int = 0  # how many times the step was started (a re-run starts it again)


def _json(detail: Any) -> dict[str, Any]:
    if isinstance(detail, BaseModel):
        return detail.model_dump(mode="json")
    return json.loads(json.dumps(dict(detail or {}), default=str))


class InMemoryRunStore:
    def __init__(self) -> None:
        self.runs: dict[str, dict[str, Any]] = {}
        self._steps: dict[str, dict[str, StepRecord]] = {}
        self._usage: dict[str, dict[str, tuple[int, float]]] = {}
        self.logs: list[tuple[str, str, str]] = []  # (run_id, level, message)
        self.redact = lambda text: text

    # ----- runs -----
    async def create_run(self, run_id: str, ticket: str, ticket_json: str, status: str = "queued", *,
                         kind: str = "ticket", parent_run_id: str | None = None,
                         pr_number: int | None = None) -> bool:
        if run_id in self.runs:
            return False
        self.runs[run_id] = {"run_id": run_id, "ticket": ticket, "status": status, "ticket_json": ticket_json,
                             "branch": None, "pr_url": None, "session_id": None, "turns": 0, "cost_usd": 0.0,
                             "error": None, "kind": kind, "parent_run_id": parent_run_id,
                             "pr_number": pr_number}
        return True

    async def start_run(self, run_id: str) -> bool:
        row = self.runs.get(run_id)
        if row is None or row["status"] in FINAL_STATUSES:
            return False
        row["status"] = "running"
        return True

    async def update_run(self, run_id: str, **fields: Any) -> None:
        row = self.runs.get(run_id)
        if row is None:
            return
        if fields.get("status") == "running" and row["status"] in FINAL_STATUSES:
            fields.pop("status")
        row.update(fields)

    async def add_usage(self, run_id: str, *, turns: int, cost_usd: float, session_id: str | None,
                        call_id: str | None = None) -> None:
        calls = self._usage.setdefault(run_id, {})
        calls[call_id or f"anonymous-{len(calls)}"] = (turns, cost_usd)
        row = self.runs.get(run_id)
        if row is not None:
            row["turns"] = sum(t for t, _ in calls.values())
            row["cost_usd"] = sum(c for _, c in calls.values())
            if session_id:
                row["session_id"] = session_id

    async def get_run_row(self, run_id: str) -> dict[str, Any] | None:
        return self.runs.get(run_id)

    # ----- steps -----
    async def start_step(self, run_id: str, name: str, detail: Any = None) -> None:
        steps = self._steps.setdefault(run_id, {})
        record = steps.setdefault(name, StepRecord(name, "running"))
        record.status, record.detail, record.starts = "running", _json(detail), record.starts + 1

    async def update_step_detail(self, run_id: str, name: str, detail: Any) -> None:
        if name in self._steps.get(run_id, {}):
            self._steps[run_id][name].detail = _json(detail)

    async def finish_step(self, run_id: str, name: str, status: str, detail: Any = None) -> None:
        record = self._steps.setdefault(run_id, {}).setdefault(name, StepRecord(name, status))
        record.status = status
        if detail is not None:
            record.detail = _json(detail)

    async def fail_running_steps(self, run_id: str, reason: str, status: str = "failed") -> None:
        for record in self._steps.get(run_id, {}).values():
            if record.status == "running":
                record.status, record.detail = status, {"error": reason}

    # ----- logs -----
    async def add_log(self, run_id: str, message: str, level: str = "info") -> None:
        self.logs.append((run_id, level, message))

    # ----- for assertions -----
    def run(self, run_id: str) -> dict[str, Any]:
        return self.runs[run_id]

    def steps(self, run_id: str) -> dict[str, StepRecord]:
        return self._steps.get(run_id, {})

    def step_names(self, run_id: str) -> list[str]:
        return list(self.steps(run_id))

    def messages(self, run_id: str) -> list[str]:
        return [m for r, _, m in self.logs if r == run_id]
