"""Fair shares between repositories: a burst of tickets for one repository does not take every slot.

Two layers:
- **The queue** (app/services/runner/engine.py): each run's repository is decided before it is
  handed to the DBOS queue and is its partition there; a worker takes at most MAX_CONCURRENT_RUNS
  runs of each partition and `queue_concurrency` in all, so another repository's runs are
  dequeued however many runs of one repository wait ahead of them (DBOS visits the partitions in
  random order on each poll).
- **The work** (`RepositorySlots`, here): each process works on at most MAX_CONCURRENT_RUNS runs at
  once (`total`); a repository with a `max_concurrent_runs` share takes at most that many of them.
  A run takes its repository's share first and a slot of the total second, so a run waiting for
  its own repository holds nothing the others need.

Limits, honestly: the shares are per process (like the queue's worker concurrency); a run waiting
for its share or for the total still holds one of its partition's queue slots (at most
MAX_CONCURRENT_RUNS per repository); and the partition is decided from the ticket when it is
handed off, so a ticket whose routing fields change while it waits keeps the repository it got.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Mapping


class RepositorySlots:
    def __init__(self, total: int, shares: Mapping[str, int]) -> None:
        self._total = asyncio.Semaphore(total)
        self._shares = {name: asyncio.Semaphore(n) for name, n in shares.items()}

    def would_wait(self, repository: str) -> bool:
        share = self._shares.get(repository)
        return (share is not None and share.locked()) or self._total.locked()

    async def acquire(self, repository: str) -> Callable[[], None]:
        """Wait for the repository's share, then for a slot of the total; returns the release (call
        it once). Cancelled while waiting: nothing is held."""
        share = self._shares.get(repository)
        if share is not None:
            await share.acquire()
        try:
            await self._total.acquire()
        except BaseException:
            if share is not None:
                share.release()
            raise
        released = False

        def release() -> None:
            nonlocal released
            if released:
                return
            released = True
            self._total.release()
            if share is not None:
                share.release()

        return release


def queue_concurrency(max_concurrent_runs: int, repositories: int) -> int:
    """How many runs the process takes from the queue at once (see the module docstring)."""
    return min(max_concurrent_runs * max(1, repositories), 256)


__all__ = ["RepositorySlots", "queue_concurrency"]
