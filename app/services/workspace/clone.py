"""The shared clone: made when missing, else fetched through a transit repo; the blobs a checkout
of a partial clone needs. Every function here runs with the repository lock held."""

from __future__ import annotations

import asyncio
import logging
import shutil
import time
import uuid

from app.services.workspace.gitrun import RepoGit
from app.services.workspace.layout import is_real_dir
from app.services.workspace.transit import fetch_missing_blobs, fetch_via_transit, remote_refs

# The name the workspace's log lines have always had (one logger for all of them, whichever module).
logger = logging.getLogger("app.services.workspace.client")


async def sync_clone(git: RepoGit) -> dict[str, str]:
    """Clone if missing (or not a plain directory), else fetch the configured URL; return the
    clone's `refs/remotes/origin/*` (ref → sha). Lock held."""
    source = git.source_url()
    started = time.monotonic()
    if is_real_dir(git.clone_gitdir):
        git.restore_clone()  # before git reads anything of it (also removes a planted commondir)
        refs = await fetch_via_transit(git.repo_git, git.root, git.clone_gitdir, source,
                                       partial=git.partial)
        logger.info("repo_fetched", extra={"duration_s": round(time.monotonic() - started, 3)})
        return refs
    if git.repo_dir.exists():  # a half-made or foreign directory: our own path, start over
        logger.warning("repo_dir_invalid_recloning", extra={"path": str(git.repo_dir)})
        await asyncio.to_thread(shutil.rmtree, git.repo_dir)
    # Clone next to the target and rename: a clone killed half-way never looks like a repo.
    scratch = git.root / f".repo-clone-{uuid.uuid4().hex}"
    try:
        # A clone writes its own fresh config; it is the one token call outside transit/.
        # A partial clone: commits and trees only; the blobs a worktree needs come per checkout.
        partial = ("--filter=blob:none",) if git.partial else ()
        await git.git("clone", "--quiet", "--no-checkout", "--no-tags", "--template=", *partial,
                      "--origin", "origin", source, str(scratch), git_dir=None, cwd=git.root,
                      network=True)
        scratch.rename(git.repo_dir)
        git.restore_clone()  # the same known state as every later run starts from
    finally:
        if scratch.exists():
            await asyncio.to_thread(shutil.rmtree, scratch, True)
    logger.info("repo_cloned", extra={"duration_s": round(time.monotonic() - started, 3),
                                      "partial": git.partial})
    return await remote_refs(git.repo_git, git.clone_gitdir)


async def fetch_checkout_blobs(git: RepoGit, sha: str) -> None:
    """A partial clone: the blobs a checkout of `sha` needs, through transit (never a lazy fetch).
    Nothing to do for a full clone. Lock held."""
    if git.partial:
        await fetch_missing_blobs(git.repo_git, git.root, git.clone_gitdir, git.source_url(), sha)
