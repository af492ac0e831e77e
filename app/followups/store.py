"""Durable follow-up state: GitHub deliveries answered, and the PRs the service opened.

Tables `ac_github_deliveries` and `ac_pull_requests` (migration 0006, runner/tables.py), on the run
store's engine (SQLite or PostgreSQL). Sync methods hold the SQL; the `a*` twins run them in a
thread (the event loop is shared with every run). Counters are changed by single UPDATE statements
(`x = x + 1`), so two hosts never lose an increment; the one-at-a-time claim of a PR is a
conditional UPDATE (only when free, or held by a run that has ended).
"""

from __future__ import annotations

import asyncio
import json
import time
from typing import Any, Literal

import sqlalchemy as sa
from pydantic import BaseModel, ConfigDict
from sqlalchemy.dialects import postgresql, sqlite

from app.models import FINAL_STATUSES
from app.services.runner.tables import github_deliveries, pull_requests, runs

PrLife = Literal["open", "merged", "closed"]


class Delivery(BaseModel):
    model_config = ConfigDict(frozen=True)
    delivery_id: str
    event: str
    status: str  # queued | duplicate | ignored
    run_id: str | None = None
    reason: str | None = None


class TrackedPr(BaseModel):
    """One PR the service opened, with its follow-up counters (frozen: steps return it)."""

    model_config = ConfigDict(frozen=True)
    repository: str
    number: int
    ticket: str
    branch: str
    parent_run_id: str
    html_url: str | None = None
    state: PrLife = "open"
    opened_at: float
    closed_at: float | None = None
    ci_rounds: int = 0
    review_rounds: int = 0
    ci_signature: str | None = None
    reruns: tuple[str, ...] = ()
    cost_usd: float = 0.0
    stop_reason: str | None = None
    busy_run_id: str | None = None


def _pr(row: Any) -> TrackedPr:
    data = dict(row._mapping)
    data["reruns"] = tuple(json.loads(data.get("reruns") or "[]"))
    data.pop("etags", None)
    return TrackedPr.model_validate(data)


class FollowupStore:
    def __init__(self, engine: sa.Engine) -> None:
        self.engine = engine

    def _insert(self, table: sa.Table) -> Any:
        dialect = sqlite if self.engine.dialect.name == "sqlite" else postgresql
        return dialect.insert(table)

    # ----- deliveries -----
    def delivery(self, delivery_id: str) -> Delivery | None:
        with self.engine.connect() as conn:
            row = conn.execute(
                sa.select(github_deliveries).where(github_deliveries.c.delivery_id == delivery_id)
            ).first()
        return Delivery.model_validate(dict(row._mapping)) if row else None

    def record_delivery(self, d: Delivery) -> None:
        """Keep the answer given to a delivery (the first answer stays: a concurrent twin's is dropped)."""
        stmt = (
            self._insert(github_deliveries)
            .values(
                delivery_id=d.delivery_id,
                event=d.event,
                received_at=time.time(),
                status=d.status,
                run_id=d.run_id,
                reason=d.reason,
            )
            .on_conflict_do_nothing(index_elements=[github_deliveries.c.delivery_id])
        )
        with self.engine.begin() as conn:
            conn.execute(stmt)

    # ----- pull requests -----
    def track(
        self,
        repository: str,
        number: int,
        *,
        ticket: str,
        branch: str,
        parent_run_id: str,
        html_url: str | None,
    ) -> None:
        """Record a PR the service opened (again: nothing changes; its counters stay)."""
        stmt = (
            self._insert(pull_requests)
            .values(
                repository=repository,
                number=number,
                ticket=ticket,
                branch=branch,
                parent_run_id=parent_run_id,
                html_url=html_url,
                state="open",
                opened_at=time.time(),
                ci_rounds=0,
                review_rounds=0,
                reruns="[]",
                cost_usd=0.0,
                etags="{}",
            )
            .on_conflict_do_nothing(index_elements=[pull_requests.c.repository, pull_requests.c.number])
        )
        with self.engine.begin() as conn:
            conn.execute(stmt)

    def _where(self, repository: str, number: int) -> Any:
        return sa.and_(pull_requests.c.repository == repository, pull_requests.c.number == number)

    def get(self, repository: str, number: int) -> TrackedPr | None:
        with self.engine.connect() as conn:
            row = conn.execute(sa.select(pull_requests).where(self._where(repository, number))).first()
        return _pr(row) if row else None

    def open_prs(self, repository: str | None = None) -> list[TrackedPr]:
        query = sa.select(pull_requests).where(pull_requests.c.state == "open")
        if repository is not None:
            query = query.where(pull_requests.c.repository == repository)
        with self.engine.connect() as conn:
            return [_pr(r) for r in conn.execute(query.order_by(pull_requests.c.opened_at))]

    def all_prs(self) -> list[TrackedPr]:
        with self.engine.connect() as conn:
            return [
                _pr(r) for r in conn.execute(sa.select(pull_requests).order_by(pull_requests.c.opened_at))
            ]

    def close(self, repository: str, number: int, *, merged: bool) -> bool:
        """Mark the PR merged/closed; True only for the call that closed it (the Jira note is sent once)."""
        stmt = (
            sa.update(pull_requests)
            .where(self._where(repository, number), pull_requests.c.state == "open")
            .values(state="merged" if merged else "closed", closed_at=time.time(), busy_run_id=None)
        )
        with self.engine.begin() as conn:
            return conn.execute(stmt).rowcount == 1

    def add_round(
        self,
        repository: str,
        number: int,
        *,
        kind: Literal["ci", "review"],
        signature: str | None,
        cost_usd: float,
    ) -> None:
        column = pull_requests.c.ci_rounds if kind == "ci" else pull_requests.c.review_rounds
        values: dict[str, Any] = {column.name: column + 1, "cost_usd": pull_requests.c.cost_usd + cost_usd}
        if kind == "ci":
            values["ci_signature"] = signature
        with self.engine.begin() as conn:
            conn.execute(sa.update(pull_requests).where(self._where(repository, number)).values(**values))

    def add_cost(self, repository: str, number: int, cost_usd: float) -> None:
        with self.engine.begin() as conn:
            conn.execute(
                sa.update(pull_requests)
                .where(self._where(repository, number))
                .values(cost_usd=pull_requests.c.cost_usd + cost_usd)
            )

    def add_rerun(self, repository: str, number: int, key: str) -> bool:
        """Record a re-run of `key` ("<sha>:<job>"); False when it was re-run already (once per commit)."""
        with self.engine.begin() as conn:
            row = conn.execute(
                sa.select(pull_requests.c.reruns).where(self._where(repository, number)).with_for_update()
            ).first()
            done = json.loads(row[0]) if row else []
            if key in done:
                return False
            conn.execute(
                sa.update(pull_requests)
                .where(self._where(repository, number))
                .values(reruns=json.dumps([*done, key]))
            )
            return True

    def stop(self, repository: str, number: int, reason: str) -> None:
        with self.engine.begin() as conn:
            conn.execute(
                sa.update(pull_requests).where(self._where(repository, number)).values(stop_reason=reason)
            )

    def claim(self, repository: str, number: int, run_id: str) -> bool:
        """Take the PR's branch for `run_id`: free, already ours, or held by a run that has ended."""
        ended = sa.select(runs.c.run_id).where(
            runs.c.run_id == pull_requests.c.busy_run_id, runs.c.status.in_(sorted(FINAL_STATUSES))
        )
        stmt = (
            sa.update(pull_requests)
            .where(
                self._where(repository, number),
                sa.or_(
                    pull_requests.c.busy_run_id.is_(None),
                    pull_requests.c.busy_run_id == run_id,
                    sa.exists(ended),
                ),
            )
            .values(busy_run_id=run_id)
        )
        with self.engine.begin() as conn:
            return conn.execute(stmt).rowcount == 1

    def release(self, repository: str, number: int, run_id: str) -> None:
        with self.engine.begin() as conn:
            conn.execute(
                sa.update(pull_requests)
                .where(self._where(repository, number), pull_requests.c.busy_run_id == run_id)
                .values(busy_run_id=None)
            )

    def etag(self, repository: str, number: int, what: str) -> str | None:
        with self.engine.connect() as conn:
            row = conn.execute(
                sa.select(pull_requests.c.etags).where(self._where(repository, number))
            ).first()
        value = json.loads(row[0]).get(what) if row else None
        return value if isinstance(value, str) else None

    def set_etag(self, repository: str, number: int, what: str, etag: str) -> None:
        with self.engine.begin() as conn:
            row = conn.execute(
                sa.select(pull_requests.c.etags).where(self._where(repository, number))
            ).first()
            if row is None:
                return
            tags = {**json.loads(row[0]), what: etag}
            conn.execute(
                sa.update(pull_requests).where(self._where(repository, number)).values(etags=json.dumps(tags))
            )

    # ----- async twins (the loop is shared with every run: SQL in a thread) -----
    async def adelivery(self, delivery_id: str) -> Delivery | None:
        return await asyncio.to_thread(self.delivery, delivery_id)

    async def arecord_delivery(self, d: Delivery) -> None:
        await asyncio.to_thread(self.record_delivery, d)

    async def aget(self, repository: str, number: int) -> TrackedPr | None:
        return await asyncio.to_thread(self.get, repository, number)

    async def aopen_prs(self, repository: str | None = None) -> list[TrackedPr]:
        return await asyncio.to_thread(self.open_prs, repository)

    async def run(self, fn: Any, *args: Any, **kw: Any) -> Any:
        """Any sync method in a thread: `await store.run(store.claim, repo, n, run_id)`."""
        return await asyncio.to_thread(fn, *args, **kw)
