"""`prepare`'s fast path: reset a finished worktree to the new base instead of writing a new one.

Which worktree: the ticket's own, when a re-run finds it intact at its path; else a spare that
`remove` parked (spares.py). What the reset does, in order (spares.py says why each is needed):
scrub the registration and relink the pointer, put file modes back, drop a stash, `checkout
--force -B <branch> <base>` (rewrites only the paths whose content or stat differs), `clean -ffdx`,
then `status --ignored` must print nothing. Any failure or leftover: False, and the caller removes
whatever is at the path and adds a fresh worktree, so a reuse is never less clean than that.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from pathlib import Path
from typing import Protocol

from app.errors import WorkspaceError
from app.proc import CommandResult
from app.services.workspace.base import Worktree
from app.services.workspace.spares import (
    claim,
    is_intact,
    normalize_modes,
    registration,
    relink,
    scrub_registration,
    stash_is_packed,
)

logger = logging.getLogger(__name__)


class WorktreeGit(Protocol):
    """git in a prepared worktree, addressed by its registration (gitrun.RepoGit.wt_git)."""

    async def __call__(self, worktree: Worktree, *args: str, check: bool = True) -> CommandResult: ...


def _scrub(clone_gitdir: Path, path: Path) -> int:
    scrub_registration(clone_gitdir, path)
    relink(clone_gitdir, path)
    return normalize_modes(path)


async def reuse_worktree(
    git: WorktreeGit, clone_gitdir: Path, path: Path, branch: str, base_sha: str,
    remove_tree: Callable[[Path], None],
) -> bool:
    """Make `path` a clean checkout of `base_sha` on `branch` from an existing worktree; False
    when there is none to reuse or it could not be made clean. Repository lock held."""
    if not is_intact(clone_gitdir, path):
        if path.exists() or path.is_symlink() or registration(clone_gitdir, path).exists():
            return False  # something broken is there: the caller removes it
        if not await asyncio.to_thread(claim, clone_gitdir, path, remove_tree):
            return False
        source = "spare"
    else:
        source = "same ticket"
    worktree = Worktree(path=path, branch=branch, base_sha=base_sha)
    try:
        modes = await asyncio.to_thread(_scrub, clone_gitdir, path)
        if stash_is_packed(clone_gitdir):
            await git(worktree, "update-ref", "-d", "refs/stash")
        await git(worktree, "checkout", "--quiet", "--force", "--no-recurse-submodules", "-B", branch,
                  base_sha)
        await git(worktree, "clean", "-ffdxq")
        left = await git(worktree, "status", "--porcelain", "--untracked-files=all", "--ignored")
    except (WorkspaceError, OSError) as exc:
        logger.warning("worktree_reuse_failed", extra={"path": str(path), "error": str(exc)[:300]})
        return False
    if left.output.strip():
        logger.warning("worktree_reuse_unclean", extra={"path": str(path), "left": left.output[:300]})
        return False
    logger.info("worktree_reused", extra={"path": str(path), "from": source, "modes_reset": modes})
    return True
