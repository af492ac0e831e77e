"""The dispatcher against an in-memory record table and a recording enqueue: what it hands off, when,
and what it leaves for a later pass (the DBOS side is covered by tests/durability/test_accept.py)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

from app.services.runner.dispatch import Dispatcher, Handoff, Pending, plain
from app.services.runner.store_base import NewRun, RunRow


@dataclass
class Records:
    """The two queries the dispatcher makes, over a dict of run id -> (created_at, enqueued)."""

    rows: dict[str, list[object]] = field(default_factory=dict)

    def add(self, run_id: str, age_s: float = 0.0) -> NewRun:
        self.rows[run_id] = [time.time() - age_s, False]
        return NewRun(run_id=run_id, ticket=run_id.split(":")[0], ticket_json="{}", dedup_key=run_id)

    async def undispatched(self, *, limit: int, created_before: float | None = None) -> list[RunRow]:
        out = [RunRow(run_id=r, ticket="T", status="queued", created_at=c, updated_at=c, branch=None,  # type: ignore[arg-type]
                      pr_url=None, session_id=None, turns=0, cost_usd=0.0, error=None, ticket_json="{}")
               for r, (c, done) in self.rows.items()
               if not done and (created_before is None or c < created_before)]  # type: ignore[operator]
        return out[:limit]

    async def mark_enqueued(self, run_ids: list[str]) -> None:
        for r in run_ids:
            self.rows[r][1] = True

    def marked(self) -> set[str]:
        return {r for r, (_, done) in self.rows.items() if done}


@dataclass
class Queue:
    batches: list[list[str]] = field(default_factory=list)
    fail_next: int = 0

    async def enqueue(self, batch: list[Handoff]) -> None:
        if self.fail_next:
            self.fail_next -= 1
            raise ConnectionError("database briefly away")
        self.batches.append([h.run_id for h in batch])

    @property
    def enqueued(self) -> list[str]:
        return [r for b in self.batches for r in b]


async def until(cond: Callable[[], bool], what: str) -> None:
    for _ in range(2000):  # yields to the dispatcher; generous, never a timing assertion
        if cond():
            return
        await asyncio.sleep(0.005)
    raise AssertionError(f"not reached: {what}")


async def running(records: Records, queue: Queue, *, grace_sec: float = 3600.0,
                  body: Callable[[Dispatcher], Awaitable[None]]) -> None:
    d = Dispatcher(records, queue.enqueue, poll_sec=0.01, grace_sec=grace_sec, hold="")  # type: ignore[arg-type]
    task = asyncio.create_task(d.run())
    try:
        await body(d)
    finally:
        task.cancel()


class TestHandoff:
    async def test_the_first_pass_takes_every_record_left_whatever_its_age(self) -> None:
        records, queue = Records(), Queue()
        records.add("PROJ-1:a", age_s=0.0)  # left by this host's previous life a moment ago

        async def body(_: Dispatcher) -> None:
            await until(lambda: records.marked() == {"PROJ-1:a"}, "startup pass")

        await running(records, queue, body=body)
        assert queue.enqueued == ["PROJ-1:a"]

    async def test_accepted_records_go_at_once_and_together(self) -> None:
        records, queue = Records(), Queue()

        async def body(d: Dispatcher) -> None:
            await asyncio.sleep(0)  # the dispatcher is waiting for work
            for n in range(5):  # accepted in one turn of the loop: one batch
                d.accepted(records.add(f"PROJ-{n + 1}:x"))
            await until(lambda: len(records.marked()) == 5, "handoff")

        await running(records, queue, body=body)
        assert queue.batches == [[f"PROJ-{n + 1}:x" for n in range(5)]]

    async def test_a_fresh_record_of_another_host_waits_for_the_grace_period(self) -> None:
        records, queue = Records(), Queue()

        async def body(_: Dispatcher) -> None:
            records.add("PROJ-6:left", age_s=0.0)
            await until(lambda: records.marked() == {"PROJ-6:left"}, "the first pass")
            records.add("PROJ-7:theirs", age_s=0.0)  # another host's, just accepted
            records.add("PROJ-8:dead", age_s=30.0)  # a dead host's
            await until(lambda: "PROJ-8:dead" in records.marked(), "the dead host's record")

        await running(records, queue, grace_sec=10.0, body=body)
        assert "PROJ-7:theirs" not in queue.enqueued

    async def test_a_failed_enqueue_leaves_the_records_for_a_later_pass(self) -> None:
        records, queue = Records(), Queue(fail_next=1)

        async def body(d: Dispatcher) -> None:
            d.accepted(records.add("PROJ-9:a", age_s=60.0))
            await until(lambda: records.marked() == {"PROJ-9:a"}, "retried by the poll")

        await running(records, queue, grace_sec=1.0, body=body)
        assert queue.enqueued == ["PROJ-9:a"]


class TestFlush:
    async def test_flush_waits_for_the_handoff_the_loop_has_in_flight(self) -> None:
        # `flush` is what a one-off process (auto-code recover) awaits before it exits: "the new runs
        # are on the queue when this returns". The loop may have taken the fresh records already and
        # be deciding them (prepare reads Jira, slowly): flush must not return before they are on
        # the queue, or the process exits with them handed off by nobody.
        records, queue = Records(), Queue()
        entered, release = asyncio.Event(), asyncio.Event()

        async def slow_prepare(batch: list[Pending]) -> list[Handoff]:
            entered.set()
            await release.wait()  # Jira answering slowly
            return await plain(batch)

        d = Dispatcher(records, queue.enqueue, prepare=slow_prepare, poll_sec=0.01,  # type: ignore[arg-type]
                       grace_sec=3600.0, hold="")
        task = asyncio.create_task(d.run())
        try:
            d.accepted(records.add("PROJ-1:r"))
            await entered.wait()  # the loop took the record and is deciding it
            flushing = asyncio.create_task(d.flush())
            for _ in range(20):  # turns of the loop: enough for a flush with nothing to wait for
                await asyncio.sleep(0)
            returned_early = flushing.done()
            release.set()
            await flushing
            assert queue.enqueued == ["PROJ-1:r"]  # on the queue once flush returned
        finally:
            task.cancel()
        assert not returned_early
