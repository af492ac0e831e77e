"""What the agent changed in a ticket's worktree, and committing it: `has_changes`,
`diff_summary`, `commit`, and the scratch index that sees everything staged without touching the
real one (also read by outbound_reads.py)."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import shutil
import uuid
from collections.abc import AsyncIterator

from app.errors import WorkspaceError
from app.services.workspace.base import Worktree
from app.services.workspace.gitrun import RepoGit

# The name the workspace's log lines have always had (one logger for all of them, whichever module).
logger = logging.getLogger("app.services.workspace.client")

NO_DRIVERS = ("--no-ext-diff", "--no-textconv")  # diff must never run a program from config


async def has_changes(git: RepoGit, worktree: Worktree) -> bool:
    # One process: porcelain v2 names HEAD (`# branch.oid`) next to the changes.
    status = await git.wt_git(worktree, "status", "--porcelain=v2", "--branch", "--untracked-files=all",
                              "--ignore-submodules=all")
    lines = [line for line in status.output.splitlines() if line.strip()]
    if any(not line.startswith("# ") for line in lines):
        return True
    head = next((line.split()[2] for line in lines if line.startswith("# branch.oid ")), None)
    return head != worktree.base_sha


async def diff_summary(git: RepoGit, worktree: Worktree) -> str:
    async with staged_everything(git, worktree) as env:
        diff = await git.wt_git(worktree, "diff", "--cached", "--stat", *NO_DRIVERS, worktree.base_sha,
                                env=env)
    return diff.output.strip()


async def commit(git: RepoGit, worktree: Worktree, message: str, identity: dict[str, str]) -> str:
    # The push sends that branch. HEAD read as git's files backend reads it (no process for it);
    # the git calls below check the registration itself before anything is written.
    try:
        head = (git.gitdir_of(worktree.path) / "HEAD").read_text(errors="replace").strip()
    except OSError:
        head = ""
    if head != f"ref: refs/heads/{worktree.branch}":
        raise WorkspaceError(f"worktree HEAD is not on {worktree.branch}: {head.removeprefix('ref: ')!r}")
    await git.wt_git(worktree, "add", "-A")
    staged = await git.wt_git(worktree, "diff", "--cached", "--quiet", *NO_DRIVERS, check=False)
    if staged.exit_code == 0:
        raise WorkspaceError(f"nothing to commit in {worktree.path}", exit_code=0)
    if staged.exit_code != 1:
        raise git.error(("diff", "--cached"), staged)
    await git.wt_git(worktree, "commit", "--quiet", "--no-verify", "--file=-", env=identity,
                     stdin=message.encode())
    sha = await git.head(worktree)
    logger.info("worktree_committed", extra={"branch": worktree.branch, "sha": sha})
    return sha


@contextlib.asynccontextmanager
async def staged_everything(git: RepoGit, worktree: Worktree) -> AsyncIterator[dict[str, str]]:
    """Env for git calls that see everything staged (untracked files too) in a scratch copy of
    the index, so the real index (and thus what `commit` will do) is left alone."""
    index = git.gitdir_of(worktree.path) / "index"
    scratch_dir = git.root / "tmp"
    scratch_dir.mkdir(parents=True, exist_ok=True)
    scratch = scratch_dir / f"index-{uuid.uuid4().hex}"
    # The blobs `add` writes go to a throwaway object directory (the clone's objects are read
    # through it as an alternate): a change the outbound check refuses - a secret in a file -
    # must not stay behind as a loose object in the shared clone.
    objects = scratch_dir / f"objects-{uuid.uuid4().hex}"
    objects.mkdir()
    try:
        if index.exists():
            await asyncio.to_thread(shutil.copyfile, index, scratch)
        env = {"GIT_INDEX_FILE": str(scratch), "GIT_OBJECT_DIRECTORY": str(objects),
               "GIT_ALTERNATE_OBJECT_DIRECTORIES": str(git.clone_gitdir / "objects")}
        await git.wt_git(worktree, "add", "-A", env=env)
        yield env
    finally:
        scratch.unlink(missing_ok=True)
        await asyncio.to_thread(shutil.rmtree, objects, True)
