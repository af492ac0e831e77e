"""Local pull-request records: the offline `PullRequests` for the demo, development and tests.

`LocalPullRequests()` keeps records in memory. `LocalPullRequests(path)` keeps them in a JSON file
(the factory uses `<WORKSPACE_DIR>/pull-requests.json`) so the demo, the CLI and other processes can
read them: every change is a read-modify-write under an exclusive `fcntl.flock` on `<path>.lock`
(safe across processes and threads) and lands through a temp file + `os.replace` (a reader never
sees half a file). The blocking file work runs in a thread, off the event loop.

Like GitHub, an open record for the same head is reused (title/body updated) instead of creating a
second one. `html_url` is `file://<path>#pr-<n>`, or `local://pr/<n>` for the in-memory store.
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import json
import os
import tempfile
import threading
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from app.services.github.base import PullRequest


class LocalPullRequests:
    """A working fake of GitHub's pull requests, recording `number, html_url, head, base, title, body,
    state, created_at, updated_at` per PR."""

    def __init__(self, path: Path | None = None) -> None:
        self.path = path
        self._memory: list[dict[str, Any]] = []
        self._lock = threading.Lock()  # flock is per open file; this also serialises our threads

    async def open_or_reuse(self, *, head: str, base: str, title: str, body: str) -> PullRequest:
        return await asyncio.to_thread(self._open_or_reuse, head, base, title, body)

    async def aclose(self) -> None:
        return None

    def records(self) -> list[dict[str, Any]]:
        """Every PR record, oldest first (a copy; read from the file when there is one)."""
        with self._locked():
            return [dict(r) for r in self._load()]

    def close(self, number: int) -> None:
        """Mark a PR closed (as if merged or closed on GitHub): the next call for its head opens a new one."""
        with self._locked():
            prs = self._load()
            for record in prs:
                if record["number"] == number:
                    record["state"] = "closed"
                    record["updated_at"] = _now()
            self._store(prs)

    # ----- internals (run in a worker thread) -----
    def _open_or_reuse(self, head: str, base: str, title: str, body: str) -> PullRequest:
        with self._locked():
            prs = self._load()
            for record in prs:
                if record["head"] == head and record["state"] == "open":
                    record.update(title=title, body=body, updated_at=_now())
                    self._store(prs)
                    return _to_pr(record, created=False)
            number = max((r["number"] for r in prs), default=0) + 1
            record = {
                "number": number,
                "html_url": self._url(number),
                "head": head,
                "base": base,
                "title": title,
                "body": body,
                "state": "open",
                "created_at": _now(),
                "updated_at": _now(),
            }
            prs.append(record)
            self._store(prs)
            return _to_pr(record, created=True)

    def _url(self, number: int) -> str:
        if self.path is None:
            return f"local://pr/{number}"
        return f"{self.path.resolve().as_uri()}#pr-{number}"

    @contextlib.contextmanager
    def _locked(self) -> Iterator[None]:
        with self._lock:
            if self.path is None:
                yield
                return
            self.path.parent.mkdir(parents=True, exist_ok=True)
            lock_path = self.path.with_name(self.path.name + ".lock")
            with open(lock_path, "a+") as lock_file:
                fcntl.flock(lock_file, fcntl.LOCK_EX)
                try:
                    yield
                finally:
                    fcntl.flock(lock_file, fcntl.LOCK_UN)

    def _load(self) -> list[dict[str, Any]]:
        if self.path is None:
            return self._memory
        try:
            data = json.loads(self.path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            return []
        return list(data.get("pull_requests", []))

    def _store(self, prs: list[dict[str, Any]]) -> None:
        if self.path is None:
            self._memory = prs
            return
        fd, tmp = tempfile.mkstemp(dir=self.path.parent, prefix=f".{self.path.name}.", suffix=".tmp")
        try:
            with os.fdopen(fd, "w", encoding="utf-8") as fh:
                json.dump({"pull_requests": prs}, fh, indent=2)
                fh.flush()
                os.fsync(fh.fileno())
            os.replace(tmp, self.path)
        except BaseException:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(tmp)
            raise


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds")


def _to_pr(record: dict[str, Any], *, created: bool) -> PullRequest:
    return PullRequest(
        number=record["number"],
        html_url=record["html_url"],
        head=record["head"],
        base=record["base"],
        title=record["title"],
        created=created,
    )
