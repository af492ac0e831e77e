"""GitWorkspace: the real `Workspace`, driving the git binary through `app.proc.run_command`.

Layout under WORKSPACE_DIR: `repo/` (shared clone of `settings.repo_source`, no checkout of its
own), `worktrees/ticket-<slug>` (one per ticket, branch `ticket/<slug>`, git dir
`repo/.git/worktrees/ticket-<slug>`), `transit/` (short-lived bare repos for fetch and push),
`repo.lock` (the cross-process lock), `tmp/` (scratch indexes). Every call that changes the shared
clone's refs or worktree list (clone/fetch, worktree add/remove, push) holds the repository lock
(locks.py: in-process and across processes). Commands inside one ticket's worktree need no lock.

The agent works in the worktree and can run code as our uid, so nothing it can write decides
where git goes or who gets the token:
- every call names its repository itself: `GIT_DIR` and `GIT_COMMON_DIR` (and, in a worktree,
  `GIT_WORK_TREE`) are computed by the service, so a rewritten `.git` pointer in the worktree is
  never followed, and a git dir that is a symlink or whose `commondir` leads elsewhere is refused
  (layout.py; `prepare` removes a `commondir` planted in the shared clone);
- the token only reaches git processes running in a bare repo the service has just created, on
  the configured URL (transit.py), and the credential helper answers only for that host
  (gitenv.py, which also switches off system/global config, hooks and fsmonitor).
- no program the agent chose runs in our git: the shared clone's config, hooks and info are
  rewritten to a known state before every git call in the clone or a worktree (clonestate.py),
  so a worktree `.gitattributes` can only name drivers that do not exist; diffs pass
  `--no-ext-diff --no-textconv`; gitenv.py lists the rest (fsmonitor, bare repos, submodules).
Residual risk: an agent that runs code as our uid OUTSIDE a sandbox can rewrite that config
between our restore and git's read of it (it can run code anyway), and can read any of our
processes' /proc/<pid>/environ: see transit.py. The sandbox closes both.

What leaves is read for the outbound check (app/services/outbound_scan.py, called by the runner)
by outbound_reads.py; both reads fail closed (WorkspaceError).

GitWorkspace itself only holds the repository's settings and delegates: gitrun.py (RepoGit: every
git call, the restore before it, the lock), clone.py (clone/fetch, blobs of a partial clone),
worktrees.py (prepare, prepare_branch, remove; spares.py/reuse.py), changes.py (has_changes,
diff_summary, commit), outbound_reads.py, base_files.py (read_base_file), transit.py (push).
"""

from __future__ import annotations

import logging
import time
from pathlib import Path

from pydantic import SecretStr

from app.config import Settings
from app.services.workspace import base_files, changes, outbound_reads, worktrees
from app.services.workspace.base import Worktree
from app.services.workspace.gitrun import RepoGit
from app.services.workspace.outbound_reads import OUTBOUND_MAX_BYTES
from app.services.workspace.transit import push_via_transit

__all__ = ["OUTBOUND_MAX_BYTES", "GitWorkspace"]

logger = logging.getLogger(__name__)


class GitWorkspace:
    """Shared clone + one worktree per ticket; see `base.Workspace` for each method's contract."""

    def __init__(
        self,
        settings: Settings,
        *,
        network_timeout: float = 600.0,
        local_timeout: float = 120.0,
        lock_timeout: float = 1800.0,
        root: Path | None = None,
        source: str | None = None,
        base_branch: str | None = None,
        token: SecretStr | None = None,
        partial_clone: bool = True,
        spare_worktrees: int = 2,
    ) -> None:
        """`root`, `source`, `base_branch`, `token`: one repository of several (app/repositories/)
        - its own directory (clone, worktrees, transit, lock), URL, base branch and GitHub token -
        instead of WORKSPACE_DIR, REPO_URL/REPO_DIR, BASE_BRANCH and GH_TOKEN.
        `partial_clone`: clone a URL remote with `--filter=blob:none` (a local path is cloned
        locally, hard-linked, in full). `spare_worktrees`: how many finished worktrees `remove`
        keeps for the next `prepare` to reuse (spares.py, reuse.py); 0 = a fresh worktree always."""
        self.root = (root or settings.workspace_dir).absolute()
        self.repo_dir = self.root / "repo"
        self.worktrees_dir = self.root / "worktrees"
        self.base_branch = base_branch or settings.base_branch
        token = token if token is not None else settings.gh_token
        self.git = RepoGit(self.root, source or settings.repo_source,
                           token.get_secret_value() if token else None,
                           network_timeout=network_timeout, local_timeout=local_timeout,
                           lock_timeout=lock_timeout, partial_clone=partial_clone)
        self._identity = {
            "GIT_AUTHOR_NAME": settings.git_author_name,
            "GIT_AUTHOR_EMAIL": settings.git_author_email,
            "GIT_COMMITTER_NAME": settings.git_author_name,
            "GIT_COMMITTER_EMAIL": settings.git_author_email,
        }
        self.spare_worktrees = spare_worktrees

    # ----- the Workspace protocol -----
    async def prepare(self, ticket_key: str) -> Worktree:
        return await worktrees.prepare(self.git, self.worktrees_dir, self.base_branch, ticket_key)

    async def prepare_branch(self, ticket_key: str) -> Worktree:
        """The ticket's worktree re-created from its pushed branch (worktrees.prepare_branch)."""
        return await worktrees.prepare_branch(self.git, self.worktrees_dir, ticket_key)

    async def has_changes(self, worktree: Worktree) -> bool:
        return await changes.has_changes(self.git, worktree)

    async def diff_summary(self, worktree: Worktree) -> str:
        return await changes.diff_summary(self.git, worktree)

    async def pending_files(self, worktree: Worktree) -> list[tuple[str, bytes]]:
        return await outbound_reads.pending_files(self.git, worktree)

    async def outgoing_objects(self, worktree: Worktree) -> list[tuple[str, str | bytes]]:
        return await outbound_reads.outgoing_objects(self.git, worktree)

    async def commit(self, worktree: Worktree, message: str) -> str:
        return await changes.commit(self.git, worktree, message, self._identity)

    async def push(self, worktree: Worktree) -> None:
        started = time.monotonic()
        url = self.git.source_url()
        async with self.git.repo_lock():  # reads and updates refs/remotes/origin/*, as a fetch does
            sha = await push_via_transit(self.git.repo_git, self.root, self.git.clone_gitdir, url,
                                         worktree.branch)
        logger.info("branch_pushed", extra={"branch": worktree.branch, "sha": sha,
                                            "duration_s": round(time.monotonic() - started, 3)})

    async def remove(self, worktree: Worktree) -> None:
        await worktrees.remove(self.git, worktree, self.spare_worktrees)

    async def read_base_file(self, path: str, max_bytes: int = 65_536) -> tuple[str | None, str]:
        return await base_files.read_base_file(self.git, self.base_branch, path, max_bytes)
