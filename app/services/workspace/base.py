"""The workspace interface: git on the service's side of the pipeline.

Layout under WORKSPACE_DIR: `repo/` is one shared clone of the target repository; each ticket works
in `worktrees/ticket-<key-lowercase>` on branch `ticket/<key-lowercase>`. Only the service pushes;
the agent never holds a token.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Protocol


@dataclass(frozen=True)
class Worktree:
    """A prepared worktree: where the agent works and which branch it is on."""

    path: Path
    branch: str
    base_sha: str  # origin/<BASE_BRANCH> at preparation time


class Workspace(Protocol):
    async def prepare(self, ticket_key: str) -> Worktree:
        """Make the shared clone current (clone if missing, else fetch; one fetch at a time per
        repo, safe when several runs start at once) and (re)create the ticket's worktree with
        `git worktree add -B ticket/<slug> <path> origin/<BASE_BRANCH>`. Re-running a ticket
        resets its branch to the base cleanly (a stale worktree at the path is removed first).
        `ticket_key` is already validated. Raises WorkspaceError (git's stderr attached)."""
        ...

    async def prepare_branch(self, ticket_key: str) -> Worktree:
        """Fetch and (re)create the ticket's worktree from its pushed branch `origin/ticket/<slug>`
        (a follow-up on the open PR); `base_sha` is that pushed head. Raises WorkspaceError when the
        branch is not on origin."""
        ...

    async def has_changes(self, worktree: Worktree) -> bool:
        """True when the worktree differs from `base_sha`: uncommitted edits, untracked files not
        ignored, or commits on the branch past the base."""
        ...

    async def diff_summary(self, worktree: Worktree) -> str:
        """`git diff --stat` of everything since `base_sha` (working tree included), for logs and
        the PR body."""
        ...

    async def pending_files(self, worktree: Worktree) -> list[tuple[str, bytes]]:
        """(path, content) of everything the next `commit` would add or change relative to
        `base_sha` (untracked files included, deletions left out), content as it would be
        committed (a symlink: its target). For the outbound check. Raises WorkspaceError when a
        path cannot be read or the whole is too large to read: the check fails closed."""
        ...

    async def outgoing_objects(self, worktree: Worktree) -> list[tuple[str, str | bytes]]:
        """(label, content) of everything `push` would send (every commit message, tree and blob
        on the branch past `base_sha`); a label names the file, or the commit. For the outbound
        check; raises WorkspaceError when it cannot all be read."""
        ...

    async def commit(self, worktree: Worktree, message: str) -> str:
        """Stage everything and commit with the configured service identity; return the new HEAD
        sha. Raises WorkspaceError when there is nothing to commit."""
        ...

    async def push(self, worktree: Worktree) -> None:
        """Push the branch to the configured repository (REPO_URL itself, never a remote name or
        config the agent could have edited) with `--force-with-lease` against the service's last
        fetch of it. A token (GH_TOKEN) reaches git only through its environment/credential helper,
        for the configured host only: never argv, a URL, .git/config or a log line.
        Raises WorkspaceError."""
        ...

    async def remove(self, worktree: Worktree) -> None:
        """`git worktree remove --force` and prune; missing worktrees are not an error."""
        ...

    async def read_base_file(self, path: str, max_bytes: int = 65_536) -> tuple[str | None, str]:
        """(text, commit) of the regular file `path` on the base branch as `prepare`'s fetch left
        it (`refs/remotes/origin/<BASE_BRANCH>`), read from the shared clone's objects with the
        service's git - never from a worktree or a ticket's branch, which the agent writes. Text
        None when the base branch has no such file; WorkspaceError when it is not a regular file
        or is over `max_bytes`."""
        ...
