"""InMemoryWorkspace: a `Workspace` made of plain directories (no git), for offline tests.

It really does the job on disk: `prepare` creates `<root>/worktrees/ticket-<slug>` filled with a
copy of `seed_dir` (or `seed_files`) and snapshots every file's hash; `has_changes`,
`diff_summary` and `commit` compare the directory with that snapshot (or the last commit's).
What happened is recorded for assertions: `prepared`, `committed`, `pushed`, `removed`.
`fail_on` holds method names that raise WorkspaceError once each (one-off faults).
"""

from __future__ import annotations

import hashlib
import shutil
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from app.errors import WorkspaceError
from app.services.workspace.base import Worktree

_SKIP_DIRS = {".git", "__pycache__", "node_modules", ".venv"}


@dataclass(frozen=True)
class Commit:
    branch: str
    sha: str
    message: str
    files: tuple[str, ...]  # paths added, changed or deleted by this commit


def _snapshot(root: Path) -> dict[str, str]:
    """relative path → sha256 of every file under `root` (ignoring VCS/cache directories)."""
    out: dict[str, str] = {}
    for path in sorted(root.rglob("*")):
        rel = path.relative_to(root)
        if path.is_file() and not _SKIP_DIRS & set(rel.parts):
            out[rel.as_posix()] = hashlib.sha256(path.read_bytes()).hexdigest()
    return out


def _fake_sha(*parts: object) -> str:
    return hashlib.sha1(repr(parts).encode(), usedforsecurity=False).hexdigest()


def _changed(old: Mapping[str, str], new: Mapping[str, str]) -> list[str]:
    return sorted(p for p in old.keys() | new.keys() if old.get(p) != new.get(p))


class InMemoryWorkspace:
    """Directory-backed fake of `Workspace`; see the module docstring."""

    def __init__(
        self,
        root: Path | None = None,
        *,
        seed_dir: Path | None = None,
        seed_files: Mapping[str, str] | None = None,
    ) -> None:
        self.root = root if root is not None else Path(tempfile.mkdtemp(prefix="auto-code-ws-"))
        self.seed_dir = seed_dir
        self.seed_files = dict(seed_files or {})
        self.prepared: list[Worktree] = []
        self.committed: list[Commit] = []
        self.pushed: list[tuple[str, str]] = []  # (branch, head sha)
        self.removed: list[Path] = []
        self.fail_on: set[str] = set()
        self._base: dict[Path, dict[str, str]] = {}  # worktree path → snapshot at prepare
        self._committed: dict[Path, dict[str, str]] = {}  # worktree path → snapshot at HEAD
        self._head: dict[Path, str] = {}

    def _maybe_fail(self, method: str) -> None:
        if method in self.fail_on:
            self.fail_on.discard(method)
            raise WorkspaceError(f"scripted failure in {method}", stderr="scripted", exit_code=1)

    async def prepare(self, ticket_key: str) -> Worktree:
        self._maybe_fail("prepare")
        slug = ticket_key.lower()
        path = self.root / "worktrees" / f"ticket-{slug}"
        if path.exists():  # re-running a ticket starts again from the base
            shutil.rmtree(path)
        if self.seed_dir is not None:
            shutil.copytree(self.seed_dir, path, ignore=shutil.ignore_patterns(*_SKIP_DIRS))
        else:
            path.mkdir(parents=True)
        for rel, text in self.seed_files.items():
            (path / rel).parent.mkdir(parents=True, exist_ok=True)
            (path / rel).write_text(text)
        snap = _snapshot(path)
        base_sha = _fake_sha("base", sorted(snap.items()))
        self._base[path], self._committed[path], self._head[path] = snap, snap, base_sha
        worktree = Worktree(path=path, branch=f"ticket/{slug}", base_sha=base_sha)
        self.prepared.append(worktree)
        return worktree

    def _state(self, worktree: Worktree) -> tuple[dict[str, str], dict[str, str]]:
        """(snapshot at HEAD, snapshot now)."""
        if worktree.path not in self._base or not worktree.path.is_dir():
            raise WorkspaceError(f"not a prepared worktree: {worktree.path}")
        return self._committed[worktree.path], _snapshot(worktree.path)

    async def has_changes(self, worktree: Worktree) -> bool:
        head, now = self._state(worktree)
        return now != head or self._head[worktree.path] != worktree.base_sha

    async def diff_summary(self, worktree: Worktree) -> str:
        _, now = self._state(worktree)
        base = self._base[worktree.path]
        changed = _changed(base, now)
        if not changed:
            return ""
        kind = {p: "added" if p not in base else "deleted" if p not in now else "changed" for p in changed}
        lines = [f" {p} | {kind[p]}" for p in changed]
        return "\n".join([*lines, f" {len(changed)} file(s) changed"])

    async def pending_files(self, worktree: Worktree) -> list[tuple[str, bytes]]:
        _, now = self._state(worktree)
        base = self._base[worktree.path]
        return [(p, (worktree.path / p).read_bytes()) for p in _changed(base, now) if p in now]

    async def outgoing_objects(self, worktree: Worktree) -> list[tuple[str, str | bytes]]:
        head, _ = self._state(worktree)
        base = self._base[worktree.path]
        files: list[tuple[str, str | bytes]] = [
            (p, (worktree.path / p).read_bytes()) for p in _changed(base, head) if p in head]
        mine = [c for c in self.committed if c.branch == worktree.branch]
        return [*files, *((f"commit {c.sha[:12]}", c.message) for c in mine)]

    async def commit(self, worktree: Worktree, message: str) -> str:
        self._maybe_fail("commit")
        head, now = self._state(worktree)
        changed = _changed(head, now)
        if not changed:
            raise WorkspaceError(f"nothing to commit in {worktree.path}", exit_code=0)
        sha = _fake_sha(self._head[worktree.path], message, sorted(now.items()))
        self._committed[worktree.path], self._head[worktree.path] = now, sha
        self.committed.append(Commit(worktree.branch, sha, message, tuple(changed)))
        return sha

    async def push(self, worktree: Worktree) -> None:
        self._maybe_fail("push")
        self._state(worktree)
        self.pushed.append((worktree.branch, self._head[worktree.path]))

    async def remove(self, worktree: Worktree) -> None:
        self._maybe_fail("remove")
        if worktree.path.exists():
            shutil.rmtree(worktree.path)
        for state in (self._base, self._committed, self._head):
            state.pop(worktree.path, None)
        self.removed.append(worktree.path)

    async def read_base_file(self, path: str, max_bytes: int = 65_536) -> tuple[str | None, str]:
        """The seed's file (the fake's base branch): `seed_files`, else `seed_dir`'s."""
        base = _fake_sha("base", self.seed_dir, sorted(self.seed_files.items()))
        if path in self.seed_files:
            return self.seed_files[path], base
        if self.seed_dir is not None and (self.seed_dir / path).is_file():
            return (self.seed_dir / path).read_text(), base
        return None, base

