"""The run store's interface: the one record of a run that the runs API, the dashboard and the CLI
show, written only by the pipeline (its steps) and the engine (intake, cancel, recover, reconcile).

DBOS keeps the durable truth of a run (which steps finished and what they returned); the store keeps
the operator's view of it. Every write is safe to repeat, because DBOS re-runs a step that was cut
off by a crash:
- `create_run` inserts once; `start_step`/`finish_step` rewrite the step's own row (one per
  (run, step name)); `update_run` sets fields (never adds); a final status is only replaced by
  another final status, never by `running` (a late writer after a cancel).
- `add_usage` records one agent call's turns and cost under a call id and the run's totals are the
  sum over its calls: a step that re-runs after a crash records its calls under the same ids, so
  its figures replace the cut-off attempt's instead of being added to them (see `add_usage`).
- `end_run_if_active` (the reconciler) changes a run only while it is still `queued|running`, so
  several hosts reconciling at once end each run once.
Every text written goes through `redact` (set by the composition root to the outbound scanner's):
no secret value is ever stored.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Final, Protocol

from pydantic import BaseModel

from app.models import RunKind, RunStatus, RunView, StepStatus

ACTIVE_STATUSES: Final[tuple[RunStatus, ...]] = ("queued", "waiting", "running")

# A step's detail: JSON-able data, or a pydantic model (dumped in JSON mode).
StepDetail = Mapping[str, Any] | BaseModel


class Unset:
    """The type of `UNSET`: "leave this field as it is" (None means "set it to null")."""

    _instance: Unset | None = None

    def __new__(cls) -> Unset:
        if cls._instance is None:
            cls._instance = super().__new__(cls)
        return cls._instance

    def __repr__(self) -> str:
        return "UNSET"

    def __bool__(self) -> bool:
        return False


UNSET: Final = Unset()


class RedactedText(str):
    """A text the run store's `redact` returned: the store writes it as it is instead of scanning it
    a second time (redacting its own output changes nothing while the secrets are the same; it is
    meant for a text written right after it was made). That is the ticket copy of an accept: the
    engine redacts it through the store because the same text is handed to DBOS, then `accept_run`
    stores it. Only the store makes one; any text made from it (sliced, joined, formatted, parsed)
    is a plain `str` again, and a plain `str` is always scanned."""

    __slots__ = ()


@dataclass(frozen=True, slots=True)
class RunRow:
    """One run's record without its steps (`get_run` gives the full `RunView`). Times are epoch
    seconds with millisecond precision."""

    run_id: str
    ticket: str
    status: RunStatus
    created_at: float
    updated_at: float
    branch: str | None
    pr_url: str | None
    session_id: str | None
    turns: int
    cost_usd: float
    error: str | None
    ticket_json: str
    kind: RunKind = "ticket"
    pr_number: int | None = None
    parent_run_id: str | None = None
    repository: str | None = None
    hold_reason: str | None = None
    dedup_key: str | None = None  # what the run is deduplicated by while it is active
    enqueued_at: float | None = None  # when the dispatcher handed it to the DBOS queue; None: not yet

    @property
    def is_final(self) -> bool:
        return self.status not in ACTIVE_STATUSES

    # Transitional: callers written against the old dict rows (`row["status"]`, `row.get("turns")`)
    # keep working while they move to attributes. Only the fields above are readable.
    def __getitem__(self, name: str) -> object:
        if name not in self.__dataclass_fields__:
            raise KeyError(name)
        return getattr(self, name)

    def get(self, name: str, default: object = None) -> object:
        return getattr(self, name) if name in self.__dataclass_fields__ else default


@dataclass(frozen=True, slots=True)
class NewRun:
    """A run intake (or an operator's retry, or a follow-up trigger) asks for: the record
    `accept_run` inserts, status `queued`. `ticket_json` is the ticket the workflow will run on."""

    run_id: str
    ticket: str
    ticket_json: str
    dedup_key: str
    kind: RunKind = "ticket"
    parent_run_id: str | None = None
    pr_number: int | None = None


@dataclass(frozen=True, slots=True)
class RunDetail:
    """One run as the dashboard's run page shows it: the view with its steps, and the record's copy
    of the ticket (redacted when it was stored), from one read of the record."""

    view: RunView
    ticket_json: str


@dataclass(frozen=True, slots=True)
class LogLine:
    """One line of a run's log. `id` grows with every line written (the SSE cursor)."""

    id: int
    run_id: str
    ts: float
    level: str
    message: str


class RunStore(Protocol):
    """The run records, for async callers (the pipeline, the engine, the routes). Each call is a
    few milliseconds of database work done off the event loop. Errors: SQLAlchemy's, unchanged
    (a database that is down is not something a caller can handle better than the default)."""

    redact: Callable[[str], str]

    async def create_run(
        self, run_id: str, ticket: str, ticket_json: str, status: RunStatus = "queued", *,
        kind: RunKind = "ticket", parent_run_id: str | None = None, pr_number: int | None = None,
    ) -> bool:
        """Insert the run unless it exists (either intake or the workflow's first step may come
        first). True when this call created it; a concurrent creator's win is False, not an error."""
        ...

    async def accept_run(self, new: NewRun) -> str:
        """The durable accept: insert `new` as a `queued` record unless an active run
        (queued | waiting | running) already holds its dedup key; the id of the run that holds the
        key afterwards (`new.run_id` when this call inserted it). One INSERT; a duplicate costs one
        more SELECT. The database enforces the key (a partial unique index), so this holds across
        processes and hosts; a run whose record is final no longer holds its key."""
        ...

    async def start_run(self, run_id: str) -> bool:
        """Move an active record to `running` (the workflow's first step); False when the record is
        final (cancelled before it started) or missing - the workflow then does no work."""
        ...

    async def undispatched(self, *, limit: int, created_before: float | None = None) -> list[RunRow]:
        """`queued` records not yet handed to the DBOS queue, oldest first (optionally only those
        created before an epoch time)."""
        ...

    async def mark_enqueued(self, run_ids: list[str]) -> None:
        """Record that these runs were handed to the DBOS queue (idempotent)."""
        ...

    async def update_run(
        self, run_id: str, *, status: RunStatus | Unset = UNSET, branch: str | Unset | None = UNSET,
        pr_url: str | Unset | None = UNSET, session_id: str | Unset | None = UNSET,
        error: str | Unset | None = UNSET, repository: str | Unset | None = UNSET,
    ) -> None:
        """Set the given fields (the others stay). `status="running"` never replaces a final
        status. Unknown run: nothing happens."""
        ...

    async def end_run_if_active(self, run_id: str, status: RunStatus, error: str | None) -> bool:
        """Give a run that is still `queued|running` a final `status` and `error`; True when this
        call did it (False: the run had already ended, or does not exist)."""
        ...

    async def add_usage(
        self, run_id: str, *, turns: int, cost_usd: float, session_id: str | None,
        call_id: str | None = None,
    ) -> None:
        """Record one agent call's turns and cost (and its session id as the run's latest).

        The run's `turns`/`cost_usd` are the sums over its recorded calls, and a call is recorded
        once per `call_id`: recording the same id again replaces that call's figures. Callers name
        the call (`"implement"`, `"review:0"`, `"lint:fix:2"`), unique within the run. Without a
        `call_id`, inside a DBOS step the id is the step's position in the workflow plus the call's
        number within this execution of the step (`"dbos-step-7.1"`), which a re-run of the step
        after a crash reproduces; outside a step every call is new (added)."""
        ...

    async def start_step(self, run_id: str, name: str, detail: StepDetail | None = None) -> None:
        """Mark the step running (a step re-run after a crash resets its own row)."""
        ...

    async def update_step_detail(self, run_id: str, name: str, detail: StepDetail) -> None:
        """Replace the step's detail (e.g. a gate's rounds so far)."""
        ...

    async def finish_step(
        self, run_id: str, name: str, status: StepStatus, detail: StepDetail | None = None
    ) -> None:
        """Close the step with `status` (and `detail` when given); a step that never started
        (skipped) gets its row here."""
        ...

    async def fail_running_steps(self, run_id: str, reason: str, status: StepStatus = "failed") -> None:
        """Close every step row still `running` with `status` and `{"error": reason}`."""
        ...

    async def add_log(self, run_id: str, message: str, level: str = "info") -> None:
        """Append a line to the run's log (redacted, cut to a human-sized length)."""
        ...

    async def get_run_row(self, run_id: str) -> RunRow | None:
        """The run's record without steps, or None."""
        ...

    async def get_run(self, run_id: str) -> RunView | None:
        """The run with its steps in the order they first started, or None."""
        ...

    async def get_run_detail(self, run_id: str) -> RunDetail | None:
        """`get_run` and the record's ticket copy together (one read of the record), or None."""
        ...

    async def list_runs(
        self, *, ticket: str | None = None, status: RunStatus | None = None, limit: int = 50,
        repository: str | None = None,
    ) -> list[RunView]:
        """Newest first, without steps."""
        ...

    async def list_active(self, *, created_before: float | None = None) -> list[RunRow]:
        """Runs still `queued|running` (optionally only those created before an epoch time)."""
        ...

    async def count_by_status(self) -> dict[str, int]:
        """How many runs have each status (statuses with no run are absent)."""
        ...

    async def oldest_queued_at(self) -> float | None:
        """When (epoch seconds) the oldest run still `queued` was created; None when none is. One
        aggregate query (`/metrics` asks it at every scrape)."""
        ...

    async def logs_after(self, run_id: str, after_id: int = 0, limit: int = 500) -> list[LogLine]:
        """The run's log lines with `id > after_id`, oldest first, at most `limit`."""
        ...


__all__ = ["ACTIVE_STATUSES", "UNSET", "LogLine", "NewRun", "RedactedText", "RunDetail", "RunRow", "RunStore",
           "StepDetail", "Unset"]
