"""The durable accept against the real databases (SQLite file, PostgreSQL): `accept_run`'s dedup is
the database's partial unique index, a final record frees the key at once, and concurrent accepts
share one transaction (the group commit of accept_batch.py) without losing their own answers."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa

from app.services.runner.store import SqlRunStore, make_engine
from app.services.runner.store_async import AsyncRunStore
from app.services.runner.store_base import NewRun


class RecordingStore(SqlRunStore):
    """The real store, recording the size of each accept transaction."""

    def __init__(self, engine: sa.Engine) -> None:
        super().__init__(engine)
        self.batches: list[int] = []

    def accept_runs(self, news: list[NewRun]) -> list[str]:
        self.batches.append(len(news))
        return super().accept_runs(news)


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[tuple[AsyncRunStore, RecordingStore]]:
    url = request.getfixturevalue("pg_database") if request.param == "postgres" else \
        f"sqlite:///{tmp_path / 'runs.sqlite'}"
    sync = RecordingStore(make_engine(url))
    sync.create_schema()
    try:
        yield AsyncRunStore(sync), sync
    finally:
        sync.dispose()


def new(key: str, dedup: str | None = None) -> NewRun:
    return NewRun(run_id=f"{key}:{uuid.uuid4()}", ticket=key, ticket_json=f'{{"key": "{key}"}}',
                  dedup_key=dedup or key)


class TestDedup:
    async def test_a_second_active_run_of_a_key_is_refused_with_the_holder(
            self, store: tuple[AsyncRunStore, RecordingStore]) -> None:
        runs, _ = store
        first, second = new("PROJ-1"), new("PROJ-1")
        assert await runs.accept_run(first) == first.run_id
        assert await runs.accept_run(second) == first.run_id
        assert await runs.get_run_row(second.run_id) is None
        row = await runs.get_run_row(first.run_id)
        assert row is not None and (row.status, row.dedup_key, row.enqueued_at) == ("queued", "PROJ-1", None)

    async def test_a_final_record_frees_the_key_at_once(
            self, store: tuple[AsyncRunStore, RecordingStore]) -> None:
        runs, _ = store
        first = new("PROJ-2")
        await runs.accept_run(first)
        assert await runs.start_run(first.run_id)
        assert await runs.end_run_if_active(first.run_id, "succeeded", None)
        again = new("PROJ-2")
        assert await runs.accept_run(again) == again.run_id
        assert not await runs.start_run(first.run_id)  # a final record is never moved back to running

    async def test_a_follow_up_key_does_not_collide_with_the_ticket_key(
            self, store: tuple[AsyncRunStore, RecordingStore]) -> None:
        runs, _ = store
        ticket, follow = new("PROJ-3"), new("PROJ-3", "acme/w#7:suite-1")
        assert await runs.accept_run(ticket) == ticket.run_id
        assert await runs.accept_run(follow) == follow.run_id


class TestGroupCommit:
    async def test_concurrent_accepts_share_a_transaction_and_keep_their_answers(
            self, store: tuple[AsyncRunStore, RecordingStore]) -> None:
        runs, sync = store
        asks = [new(f"PROJ-{10 + n % 5}") for n in range(50)]  # 5 keys, 10 deliveries each
        holders = await asyncio.gather(*(runs.accept_run(a) for a in asks))
        assert sync.batches == [50]  # one commit for the burst
        by_key: dict[str, set[str]] = {}
        for ask, holder in zip(asks, holders, strict=True):
            by_key.setdefault(ask.dedup_key, set()).add(holder)
        assert all(len(h) == 1 for h in by_key.values())  # one run per key, named to every delivery
        # ... and it is the first delivery of its key that holds it, the one whose record exists
        for key, (holder,) in by_key.items():
            assert holder == next(a.run_id for a in asks if a.dedup_key == key)
        undispatched = await runs.undispatched(limit=100)
        assert sorted(r.run_id for r in undispatched) == sorted(h for (h,) in by_key.values())

    async def test_a_lone_accept_is_committed_alone(
            self, store: tuple[AsyncRunStore, RecordingStore]) -> None:
        runs, sync = store
        await runs.accept_run(new("PROJ-20"))
        await runs.accept_run(new("PROJ-21"))
        assert sync.batches == [1, 1]


async def test_marked_records_are_no_longer_undispatched(store: tuple[AsyncRunStore, RecordingStore]) -> None:
    runs, _ = store
    a, b = new("PROJ-30"), new("PROJ-31")
    await asyncio.gather(runs.accept_run(a), runs.accept_run(b))
    await runs.mark_enqueued([a.run_id])
    assert [r.run_id for r in await runs.undispatched(limit=10)] == [b.run_id]
    row = await runs.get_run_row(a.run_id)
    assert row is not None and row.enqueued_at is not None
