"""Fair shares between repositories: a burst of tickets for one repository does not take every slot.

Each process works on at most MAX_CONCURRENT_RUNS runs at once (`total`); a repository with a
`max_concurrent_runs` share takes at most that many of them. A run takes its repository's share
first and a slot of the total second, so a run waiting for its own repository holds nothing the
others need. The DBOS queue lets more runs start than MAX_CONCURRENT_RUNS (MAX_CONCURRENT_RUNS per
repository, `queue_concurrency`) so that runs of the other repositories are taken from the queue
while one repository's burst waits for its share here.

Limits, honestly: the shares are per process (like the queue's worker concurrency), and the queue
itself is first in, first out: a burst bigger than `queue_concurrency` still fills the queue's
slots with runs of one repository until they drain (routing happens when a run starts, so the
queue cannot tell repositories apart before that).
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
