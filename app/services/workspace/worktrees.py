"""A ticket's worktree: made (a spare reused, else `worktree add`), made from its pushed branch,
and removed (parked as a spare when spares.py takes it). Holds the repository lock around every
change to the clone's worktree list."""

from __future__ import annotations

import asyncio
import logging
import re
import time
from pathlib import Path

from app.errors import WorkspaceError
from app.services.workspace.base import Worktree
from app.services.workspace.clone import fetch_checkout_blobs, sync_clone
from app.services.workspace.gitrun import RepoGit
from app.services.workspace.layout import is_real_dir, rmtree_writable, same_path
from app.services.workspace.reuse import reuse_worktree
from app.services.workspace.spares import park

# The name the workspace's log lines have always had (one logger for all of them, whichever module).
logger = logging.getLogger("app.services.workspace.client")

_SLUG_RE = re.compile(r"[a-z][a-z0-9_]+-[1-9][0-9]*")


def remove_tree(path: Path) -> None:
    """Delete a worktree-like tree the agent may have left read-only (a non-root service cannot
    delete entries of a directory without write permission: make it writable and retry). Raises
    WorkspaceError, never a bare OSError, so a stale tree is a clear run error."""
    if path.is_symlink():  # rmtree refuses links; and what a link points at is not ours to delete
        path.unlink()
        return
    if not path.exists():
        return
    try:
        rmtree_writable(path)
    except OSError as exc:
        raise WorkspaceError(f"cannot remove {path}: {exc}") from exc


def _ticket_paths(worktrees_dir: Path, ticket_key: str) -> tuple[str, Path]:
    """The ticket's branch and worktree path."""
    slug = ticket_key.lower()
    if not _SLUG_RE.fullmatch(slug):  # the intake validated it; a path must never see anything else
        raise WorkspaceError(f"invalid ticket key {ticket_key!r}")
    return f"ticket/{slug}", worktrees_dir / f"ticket-{slug}"


async def prepare(git: RepoGit, worktrees_dir: Path, base_branch: str, ticket_key: str) -> Worktree:
    branch, path = _ticket_paths(worktrees_dir, ticket_key)
    started = time.monotonic()
    async with git.repo_lock():
        refs = await sync_clone(git)
        base_sha = refs.get(f"refs/remotes/origin/{base_branch}")
        if base_sha is None:
            raise WorkspaceError(f"base branch {base_branch!r} not found on origin")
        await fetch_checkout_blobs(git, base_sha)
        worktrees_dir.mkdir(parents=True, exist_ok=True)
        reused = await reuse_worktree(git.wt_git, git.clone_gitdir, path, branch, base_sha, remove_tree)
        if not reused:
            await _add_fresh(git, path, branch, base_sha)
        git.check_pointer(path)
    logger.info("worktree_prepared", extra={"ticket": ticket_key, "branch": branch,
                                            "path": str(path), "base_sha": base_sha, "reused": reused,
                                            "duration_s": round(time.monotonic() - started, 3)})
    return Worktree(path=path, branch=branch, base_sha=base_sha)


async def prepare_branch(git: RepoGit, worktrees_dir: Path, ticket_key: str) -> Worktree:
    """The ticket's worktree re-created from its pushed branch (a follow-up continues the PR):
    fetch, then `git worktree add -B ticket/<slug> <path> origin/ticket/<slug>`. `base_sha` is
    that pushed head, so has_changes / pending_files / outgoing_objects see only the follow-up's
    own work and the push adds commits on top (no rewrite of pushed history)."""
    branch, path = _ticket_paths(worktrees_dir, ticket_key)
    async with git.repo_lock():
        refs = await sync_clone(git)
        head = refs.get(f"refs/remotes/origin/{branch}")
        if head is None:
            raise WorkspaceError(f"branch {branch!r} is not on origin (deleted after the PR?)")
        await fetch_checkout_blobs(git, head)
        worktrees_dir.mkdir(parents=True, exist_ok=True)
        await _add_fresh(git, path, branch, head)
        git.check_pointer(path)
    logger.info("worktree_prepared_from_branch", extra={"ticket": ticket_key, "branch": branch,
                                                       "path": str(path), "head": head})
    return Worktree(path=path, branch=branch, base_sha=head)


async def remove(git: RepoGit, worktree: Worktree, spare_worktrees: int) -> None:
    async with git.repo_lock():
        parked = False
        if is_real_dir(git.clone_gitdir):
            parked = park(git.clone_gitdir, worktree.path, worktree.base_sha, spare_worktrees)
            if not parked:
                await _drop_worktree(git, worktree.path, worktree.branch)
        else:
            await asyncio.to_thread(remove_tree, worktree.path)
    logger.info("worktree_removed", extra={"branch": worktree.branch, "path": str(worktree.path),
                                           "kept_as_spare": parked})


async def _add_fresh(git: RepoGit, path: Path, branch: str, sha: str) -> None:
    """`worktree add -B <branch> <path> <sha>` after clearing whatever was there. Lock held."""
    await _drop_worktree(git, path, branch)
    # git names the worktree's git dir after the path; a leftover under that name (prune
    # keeps locked ones) would make it pick another name than the one we address it by.
    await asyncio.to_thread(remove_tree, git.gitdir_of(path))
    await git.clone_git("worktree", "add", "--quiet", "-B", branch, str(path), sha)


async def _drop_worktree(git: RepoGit, path: Path, branch: str) -> None:
    """Remove whatever occupies `path` or has `branch` checked out, then prune. Lock held.
    Nothing at the path, no registration of it and no registration's HEAD on `branch` (what
    `worktree add -B` checks): nothing to do, and no git process for it."""
    if not (path.exists() or path.is_symlink() or git.gitdir_of(path).exists()) and \
            not await asyncio.to_thread(_branch_checked_out, git.clone_gitdir, branch):
        return
    listing = await git.clone_git("worktree", "list", "--porcelain")
    ref = f"refs/heads/{branch}"
    for block in listing.output.strip().split("\n\n")[1:]:  # the first block is the clone itself
        fields = dict(line.partition(" ")[::2] for line in block.splitlines())
        wt_path = fields.get("worktree", "")
        if wt_path and (same_path(wt_path, path) or fields.get("branch") == ref):
            await git.clone_git("worktree", "remove", "--force", "--force", wt_path, check=False)
    await asyncio.to_thread(remove_tree, path)
    await git.clone_git("worktree", "prune")


def _branch_checked_out(clone_gitdir: Path, branch: str) -> bool:
    """Some registration's HEAD names `branch` (read as text, as git itself reads it)."""
    registrations = clone_gitdir / "worktrees"
    if not is_real_dir(registrations):
        return False
    wanted = f"ref: refs/heads/{branch}"
    for reg in registrations.iterdir():
        try:
            if (reg / "HEAD").read_text(errors="replace").strip() == wanted:
                return True
        except OSError:
            continue
    return False
