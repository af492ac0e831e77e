"""The in-memory moving window of the webhook's rate limits (app/intake/rate_limit.py: MemoryWindow):
what `limits`' own memory storage answers, on a clock the test turns."""

from __future__ import annotations

import pytest
from limits import parse
from limits.aio.storage import MemoryStorage
from limits.aio.strategies import MovingWindowRateLimiter

from app.intake.rate_limit import MemoryWindow


class Clock:
    def __init__(self) -> None:
        self.now = 1_000_000.0

    def __call__(self) -> float:
        return self.now


@pytest.mark.asyncio
async def test_same_answers_as_limits_memory_storage() -> None:
    item = parse("3/minute")
    ours, theirs = MemoryWindow(), MovingWindowRateLimiter(MemoryStorage())
    for client in ("10.0.0.1", "10.0.0.2"):
        got = [await ours.hit(item, "ns", "authenticated", client) for _ in range(5)]
        want = [await theirs.hit(item, "ns", "authenticated", client) for _ in range(5)]
        assert got == want == [True, True, True, False, False]
        mine, limits_stats = (await ours.get_window_stats(item, "ns", "authenticated", client),
                              await theirs.get_window_stats(item, "ns", "authenticated", client))
        assert mine.remaining == limits_stats.remaining == 0
        assert abs(mine.reset_time - limits_stats.reset_time) < 5  # both: the oldest entry + 60 s


@pytest.mark.asyncio
async def test_entries_leave_the_window_after_its_length() -> None:
    clock = Clock()
    window, item = MemoryWindow(clock), parse("2/minute")
    assert await window.hit(item, "a") and await window.hit(item, "a")
    first = clock.now
    assert not await window.hit(item, "a")
    stats = await window.get_window_stats(item, "a")
    assert (stats.reset_time, stats.remaining) == (first + 60, 0)
    clock.now += 30
    assert not await window.hit(item, "a")  # a moving window: nothing left it yet
    clock.now = first + 60.5
    assert await window.hit(item, "a")  # both first entries left; one taken now
    assert await window.hit(item, "a")
    assert not await window.hit(item, "a")
    assert await window.hit(item, "b")  # another client has its own window


@pytest.mark.asyncio
async def test_several_limits_of_one_bucket_are_separate_windows() -> None:
    clock = Clock()
    window = MemoryWindow(clock)
    per_second, per_minute = parse("1/second"), parse("2/minute")
    assert await window.hit(per_second, "a") and await window.hit(per_minute, "a")
    assert not await window.hit(per_second, "a")
    clock.now += 1.5
    assert await window.hit(per_second, "a") and await window.hit(per_minute, "a")
    clock.now += 1.5
    assert await window.hit(per_second, "a")
    assert not await window.hit(per_minute, "a")


@pytest.mark.asyncio
async def test_sweep_drops_the_windows_of_clients_gone_quiet() -> None:
    clock = Clock()
    window, item = MemoryWindow(clock), parse("5/minute")
    for n in range(100):
        await window.hit(item, f"10.0.0.{n}")
    assert len(window) == 100
    clock.now += 61 + MemoryWindow.SWEEP_SEC
    await window.hit(item, "10.0.1.1")  # a hit after SWEEP_SEC sweeps first
    assert len(window) == 1
