"""The repository lock of the workspace: one `asyncio.Lock` per repository for the runs of this
process, and an `fcntl.flock` on a file for other processes sharing the workspace, acquired by
polling so the event loop never blocks and a cancelled run never leaves a lock behind."""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import os
import time
import weakref
from collections.abc import AsyncIterator
from pathlib import Path

from app.errors import WorkspaceError

# Per event loop (tests run one loop per test): resolved repo path → lock.
_LOCKS: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, dict[Path, asyncio.Lock]] = (
    weakref.WeakKeyDictionary()
)


def process_lock(repo: Path) -> asyncio.Lock:
    per_loop = _LOCKS.setdefault(asyncio.get_running_loop(), {})
    return per_loop.setdefault(repo, asyncio.Lock())


@contextlib.asynccontextmanager
async def file_lock(path: Path, timeout: float) -> AsyncIterator[None]:  # noqa: ASYNC109 - lock wait
    """Exclusive flock on `path`, polled (non-blocking) so waiting never stalls the loop."""
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        deadline = time.monotonic() + timeout
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() > deadline:
                    raise WorkspaceError(f"timed out after {timeout:.0f}s waiting for {path}") from None
                await asyncio.sleep(0.1)
        try:
            yield
        finally:
            fcntl.flock(fd, fcntl.LOCK_UN)
    finally:
        os.close(fd)
