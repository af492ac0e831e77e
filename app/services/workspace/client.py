"""GitWorkspace: the real `Workspace`, driving the git binary through `app.proc.run_command`.

Layout under WORKSPACE_DIR: `repo/` (shared clone of `settings.repo_source`, no checkout of its
own), `worktrees/ticket-<slug>` (one per ticket, branch `ticket/<slug>`), `repo.lock` (the
cross-process lock), `tmp/` (scratch indexes). Every call that changes the shared clone's refs or
worktree list (clone/fetch, worktree add/remove, push) holds one lock per repository: an
`asyncio.Lock` for the runs of this process and an `fcntl.flock` on `repo.lock` for other processes
sharing the workspace, acquired by polling so the event loop never blocks and a cancelled run never
leaves a lock behind. Commands inside one ticket's worktree (status, add, commit) need no lock.
See gitenv.py for how the token reaches git (environment only).
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import logging
import os
import re
import shutil
import time
import uuid
import weakref
from collections.abc import AsyncIterator
from pathlib import Path

from app.config import Settings
from app.errors import WorkspaceError
from app.proc import CommandResult, run_command
from app.services.workspace.base import Worktree
from app.services.workspace.gitenv import git_env, redact, token_allowed, url_has_password

logger = logging.getLogger(__name__)

_SLUG_RE = re.compile(r"[a-z][a-z0-9_]+-[1-9][0-9]*")
_OUTPUT_CAP = 20_000
# Per event loop (tests run one loop per test): resolved repo path → lock.
_LOCKS: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, dict[Path, asyncio.Lock]] = (
    weakref.WeakKeyDictionary()
)


def _process_lock(repo: Path) -> asyncio.Lock:
    per_loop = _LOCKS.setdefault(asyncio.get_running_loop(), {})
    return per_loop.setdefault(repo, asyncio.Lock())


@contextlib.asynccontextmanager
async def _file_lock(path: Path, timeout: float) -> AsyncIterator[None]:  # noqa: ASYNC109 - lock wait
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


def _same_path(a: str | Path, b: str | Path) -> bool:
    return os.path.realpath(a) == os.path.realpath(b)


def _remove_tree(path: Path) -> None:
    if path.exists():
        shutil.rmtree(path)


class GitWorkspace:
    """Shared clone + one worktree per ticket; see `base.Workspace` for each method's contract."""

    def __init__(
        self,
        settings: Settings,
        *,
        network_timeout: float = 600.0,
        local_timeout: float = 120.0,
        lock_timeout: float = 1800.0,
    ) -> None:
        self.root = settings.workspace_dir.absolute()
        self.repo_dir = self.root / "repo"
        self.worktrees_dir = self.root / "worktrees"
        self.base_branch = settings.base_branch
        self._source = settings.repo_source
        self._token = settings.gh_token.get_secret_value() if settings.gh_token else None
        self._identity = {
            "GIT_AUTHOR_NAME": settings.git_author_name,
            "GIT_AUTHOR_EMAIL": settings.git_author_email,
            "GIT_COMMITTER_NAME": settings.git_author_name,
            "GIT_COMMITTER_EMAIL": settings.git_author_email,
        }
        self.network_timeout = network_timeout
        self.local_timeout = local_timeout
        self.lock_timeout = lock_timeout

    # ----- the Workspace protocol -----
    async def prepare(self, ticket_key: str) -> Worktree:
        slug = ticket_key.lower()
        if not _SLUG_RE.fullmatch(slug):  # the intake validated it; a path must never see anything else
            raise WorkspaceError(f"invalid ticket key {ticket_key!r}")
        branch, path = f"ticket/{slug}", self.worktrees_dir / f"ticket-{slug}"
        started = time.monotonic()
        async with self._repo_lock():
            await self._sync_clone()
            await self._drop_worktree(path, branch)
            res = await self._git("rev-parse", "--verify", "--quiet",
                                  f"refs/remotes/origin/{self.base_branch}^{{commit}}",
                                  cwd=self.repo_dir, check=False)
            if not res.ok:
                raise WorkspaceError(f"base branch {self.base_branch!r} not found on origin",
                                     exit_code=res.exit_code)
            base_sha = res.output.strip().splitlines()[-1]
            self.worktrees_dir.mkdir(parents=True, exist_ok=True)
            await self._git("worktree", "add", "--quiet", "-B", branch, str(path), base_sha,
                            cwd=self.repo_dir)
        logger.info("worktree_prepared", extra={"ticket": ticket_key, "branch": branch,
                                                "path": str(path), "base_sha": base_sha,
                                                "duration_s": round(time.monotonic() - started, 3)})
        return Worktree(path=path, branch=branch, base_sha=base_sha)

    async def has_changes(self, worktree: Worktree) -> bool:
        status = await self._git("status", "--porcelain", "--untracked-files=all", cwd=worktree.path)
        if status.output.strip():
            return True
        return await self._head(worktree) != worktree.base_sha

    async def diff_summary(self, worktree: Worktree) -> str:
        # Untracked files count too: stage everything into a scratch copy of the index, so the
        # real index (and thus what `commit` will do) is left alone.
        res = await self._git("rev-parse", "--git-path", "index", cwd=worktree.path)
        index = Path(res.output.strip().splitlines()[-1])
        index = index if index.is_absolute() else worktree.path / index
        scratch_dir = self.root / "tmp"
        scratch_dir.mkdir(parents=True, exist_ok=True)
        scratch = scratch_dir / f"index-{uuid.uuid4().hex}"
        try:
            if index.exists():
                await asyncio.to_thread(shutil.copyfile, index, scratch)
            env = {"GIT_INDEX_FILE": str(scratch)}
            await self._git("add", "-A", cwd=worktree.path, env=env)
            diff = await self._git("diff", "--cached", "--stat", worktree.base_sha, cwd=worktree.path,
                                   env=env)
        finally:
            scratch.unlink(missing_ok=True)
        return diff.output.strip()

    async def commit(self, worktree: Worktree, message: str) -> str:
        await self._git("add", "-A", cwd=worktree.path)
        staged = await self._git("diff", "--cached", "--quiet", cwd=worktree.path, check=False)
        if staged.exit_code == 0:
            raise WorkspaceError(f"nothing to commit in {worktree.path}", exit_code=0)
        if staged.exit_code != 1:
            raise self._error(("diff", "--cached"), staged)
        await self._git("commit", "--quiet", "--no-verify", "--file=-", cwd=worktree.path,
                        env=self._identity, stdin=message.encode())
        sha = await self._head(worktree)
        logger.info("worktree_committed", extra={"branch": worktree.branch, "sha": sha})
        return sha

    async def push(self, worktree: Worktree) -> None:
        ref = f"refs/heads/{worktree.branch}"
        started = time.monotonic()
        async with self._repo_lock():  # updates refs/remotes/origin/*, which a fetch also writes
            await self._git("push", "--quiet", "--no-verify", "--force-with-lease", "origin",
                            f"{ref}:{ref}", cwd=worktree.path, network=True)
        logger.info("branch_pushed", extra={"branch": worktree.branch,
                                            "duration_s": round(time.monotonic() - started, 3)})

    async def remove(self, worktree: Worktree) -> None:
        async with self._repo_lock():
            if (self.repo_dir / ".git").exists():
                await self._drop_worktree(worktree.path, worktree.branch)
            else:
                await asyncio.to_thread(_remove_tree, worktree.path)
        logger.info("worktree_removed", extra={"branch": worktree.branch, "path": str(worktree.path)})

    # ----- internals -----
    def _source_url(self) -> str:
        if not self._source:
            raise WorkspaceError("no repository configured: set REPO_URL (or REPO_DIR for development)")
        if url_has_password(self._source):
            raise WorkspaceError("REPO_URL must not carry credentials; put the token in GH_TOKEN")
        if "://" in self._source or self._source.startswith("git@"):
            return self._source
        return str(Path(self._source).expanduser().absolute())  # a local path: independent of cwd

    async def _sync_clone(self) -> None:
        """Clone if missing, else point origin at the configured source and fetch. Lock held."""
        source = self._source_url()
        started = time.monotonic()
        if (self.repo_dir / ".git").exists():
            current = await self._git("remote", "get-url", "origin", cwd=self.repo_dir, check=False)
            if current.output.strip() != source:
                await self._git("remote", "set-url", "origin", source, cwd=self.repo_dir)
            await self._git("fetch", "--quiet", "--prune", "--no-tags", "origin", cwd=self.repo_dir,
                            network=True)
            logger.info("repo_fetched", extra={"duration_s": round(time.monotonic() - started, 3)})
            return
        if self.repo_dir.exists():  # a half-made or foreign directory: our own path, start over
            logger.warning("repo_dir_invalid_recloning", extra={"path": str(self.repo_dir)})
            await asyncio.to_thread(shutil.rmtree, self.repo_dir)
        # Clone next to the target and rename: a clone killed half-way never looks like a repo.
        scratch = self.root / f".repo-clone-{uuid.uuid4().hex}"
        try:
            await self._git("clone", "--quiet", "--no-checkout", "--no-tags", "--origin", "origin",
                            source, str(scratch), cwd=self.root, network=True)
            scratch.rename(self.repo_dir)
        finally:
            if scratch.exists():
                await asyncio.to_thread(shutil.rmtree, scratch, True)
        logger.info("repo_cloned", extra={"duration_s": round(time.monotonic() - started, 3)})

    async def _drop_worktree(self, path: Path, branch: str) -> None:
        """Remove whatever occupies `path` or has `branch` checked out, then prune. Lock held."""
        listing = await self._git("worktree", "list", "--porcelain", cwd=self.repo_dir)
        ref = f"refs/heads/{branch}"
        for block in listing.output.strip().split("\n\n")[1:]:  # the first block is the clone itself
            fields = dict(line.partition(" ")[::2] for line in block.splitlines())
            wt_path = fields.get("worktree", "")
            if wt_path and (_same_path(wt_path, path) or fields.get("branch") == ref):
                await self._git("worktree", "remove", "--force", "--force", wt_path, cwd=self.repo_dir,
                                check=False)
        await asyncio.to_thread(_remove_tree, path)
        await self._git("worktree", "prune", cwd=self.repo_dir)

    async def _head(self, worktree: Worktree) -> str:
        res = await self._git("rev-parse", "HEAD", cwd=worktree.path)
        return res.output.strip().splitlines()[-1]

    @contextlib.asynccontextmanager
    async def _repo_lock(self) -> AsyncIterator[None]:
        self.root.mkdir(parents=True, exist_ok=True)
        async with _process_lock(self.repo_dir), _file_lock(self.root / "repo.lock", self.lock_timeout):
            yield

    async def _git(
        self,
        *args: str,
        cwd: Path,
        network: bool = False,
        env: dict[str, str] | None = None,
        stdin: bytes | None = None,
        check: bool = True,
    ) -> CommandResult:
        use_token = network and self._token and self._source and token_allowed(self._source_url())
        res = await run_command(
            ["git", *args],
            cwd=cwd,
            env=git_env(token=self._token if use_token else None, extra=env),
            timeout=self.network_timeout if network else self.local_timeout,
            max_output_chars=_OUTPUT_CAP,
            stdin=stdin,
        )
        if check and not res.ok:
            raise self._error(args, res)
        return res

    def _error(self, args: tuple[str, ...], res: CommandResult) -> WorkspaceError:
        output = redact(res.output.strip(), self._token)
        if res.timed_out:
            detail = f"git {args[0]} timed out after {res.duration_s:.0f}s"
        else:
            last = output.splitlines()[-1] if output else "no output"
            detail = f"git {args[0]} failed (exit {res.exit_code}): {last}"
        logger.warning("git_failed", extra={"command": args[0], "exit_code": res.exit_code, "output": output})
        return WorkspaceError(detail, stderr=output, exit_code=res.exit_code)
