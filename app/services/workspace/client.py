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

What leaves is read here for the outbound check (app/services/outbound_scan.py, called by the
runner): `pending_files` (what the next commit would add, as the bytes that would be committed)
and `outgoing_objects` (every object the push would send); both fail closed (WorkspaceError)
when something cannot be read or is too large to read.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import re
import shutil
import stat
import sys
import time
import uuid
from collections.abc import AsyncIterator, Callable
from pathlib import Path

from pydantic import SecretStr

from app.config import Settings
from app.errors import WorkspaceError
from app.proc import CommandResult, run_command
from app.services.workspace.base import Worktree
from app.services.workspace.clonestate import restore_clone_state
from app.services.workspace.gitenv import git_env, redact, token_allowed, url_has_password
from app.services.workspace.layout import check_git_dir, gitfile_target, is_real_dir, same_path
from app.services.workspace.locks import file_lock, process_lock
from app.services.workspace.reuse import reuse_worktree
from app.services.workspace.spares import park
from app.services.workspace.transit import (
    fetch_missing_blobs,
    fetch_via_transit,
    push_via_transit,
    remote_refs,
)

logger = logging.getLogger(__name__)

_SLUG_RE = re.compile(r"[a-z][a-z0-9_]+-[1-9][0-9]*")
_OUTPUT_CAP = 20_000
OUTBOUND_MAX_BYTES = 256 * 1024 * 1024  # what the outbound check reads at most; more fails closed
_NO_DRIVERS = ("--no-ext-diff", "--no-textconv")  # diff must never run a program from config
_CUT_MARK = re.compile(r"^\[\.\.\. \d+ chars cut \.\.\.\]\n")  # app.proc's cap marker
_OBJECT_LINE = re.compile(r"^([0-9a-f]{40}|[0-9a-f]{64})(?: (.*))?$")


def _remove_tree(path: Path) -> None:
    """Delete a worktree-like tree the agent may have left read-only (a non-root service cannot
    delete entries of a directory without write permission: make it writable and retry). Raises
    WorkspaceError, never a bare OSError, so a stale tree is a clear run error."""
    if path.is_symlink():  # rmtree refuses links; and what a link points at is not ours to delete
        path.unlink()
        return
    if not path.exists():
        return

    def make_writable_and_retry(func: Callable[[str], object], failed: str, _exc: BaseException) -> None:
        parent = os.path.dirname(failed)
        os.chmod(parent, stat.S_IRWXU)
        if os.path.isdir(failed) and not os.path.islink(failed):
            os.chmod(failed, stat.S_IRWXU)
        func(failed)

    try:
        if sys.version_info >= (3, 12):
            shutil.rmtree(path, onexc=make_writable_and_retry)
        else:  # `onerror` is the 3.11 spelling (deprecated from 3.12 on)
            shutil.rmtree(path, onerror=lambda f, p, e: make_writable_and_retry(f, p, e[1]))
    except OSError as exc:
        raise WorkspaceError(f"cannot remove {path}: {exc}") from exc


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
        self._source = source or settings.repo_source
        token = token if token is not None else settings.gh_token
        self._token = token.get_secret_value() if token else None
        self._identity = {
            "GIT_AUTHOR_NAME": settings.git_author_name,
            "GIT_AUTHOR_EMAIL": settings.git_author_email,
            "GIT_COMMITTER_NAME": settings.git_author_name,
            "GIT_COMMITTER_EMAIL": settings.git_author_email,
        }
        self.network_timeout = network_timeout
        self.local_timeout = local_timeout
        self.lock_timeout = lock_timeout
        self.spare_worktrees = spare_worktrees
        self._partial_clone = partial_clone
        self._seen_partial = False

    # ----- the Workspace protocol -----
    async def prepare(self, ticket_key: str) -> Worktree:
        slug = ticket_key.lower()
        if not _SLUG_RE.fullmatch(slug):  # the intake validated it; a path must never see anything else
            raise WorkspaceError(f"invalid ticket key {ticket_key!r}")
        branch, path = f"ticket/{slug}", self.worktrees_dir / f"ticket-{slug}"
        started = time.monotonic()
        async with self._repo_lock():
            refs = await self._sync_clone()
            base_sha = refs.get(f"refs/remotes/origin/{self.base_branch}")
            if base_sha is None:
                raise WorkspaceError(f"base branch {self.base_branch!r} not found on origin")
            if self._partial:  # the blobs this checkout needs, through transit (never a lazy fetch)
                await fetch_missing_blobs(self._repo_git, self.root, self._clone_gitdir, self._source_url(),
                                          base_sha)
            self.worktrees_dir.mkdir(parents=True, exist_ok=True)
            reused = await reuse_worktree(self._wt_git, self._clone_gitdir, path, branch, base_sha,
                                          _remove_tree)
            if not reused:
                await self._drop_worktree(path, branch)
                # git names the worktree's git dir after the path; a leftover under that name (prune
                # keeps locked ones) would make it pick another name than the one we address it by.
                await asyncio.to_thread(_remove_tree, self._gitdir_of(path))
                await self._clone_git("worktree", "add", "--quiet", "-B", branch, str(path), base_sha)
            self._check_pointer(path)
        logger.info("worktree_prepared", extra={"ticket": ticket_key, "branch": branch,
                                                "path": str(path), "base_sha": base_sha, "reused": reused,
                                                "duration_s": round(time.monotonic() - started, 3)})
        return Worktree(path=path, branch=branch, base_sha=base_sha)

    async def prepare_branch(self, ticket_key: str) -> Worktree:
        """The ticket's worktree re-created from its pushed branch (a follow-up continues the PR):
        fetch, then `git worktree add -B ticket/<slug> <path> origin/ticket/<slug>`. `base_sha` is
        that pushed head, so has_changes / pending_files / outgoing_objects see only the follow-up's
        own work and the push adds commits on top (no rewrite of pushed history)."""
        slug = ticket_key.lower()
        if not _SLUG_RE.fullmatch(slug):
            raise WorkspaceError(f"invalid ticket key {ticket_key!r}")
        branch, path = f"ticket/{slug}", self.worktrees_dir / f"ticket-{slug}"
        async with self._repo_lock():
            refs = await self._sync_clone()
            head = refs.get(f"refs/remotes/origin/{branch}")
            if head is None:
                raise WorkspaceError(f"branch {branch!r} is not on origin (deleted after the PR?)")
            if self._partial:
                await fetch_missing_blobs(self._repo_git, self.root, self._clone_gitdir, self._source_url(),
                                          head)
            self.worktrees_dir.mkdir(parents=True, exist_ok=True)
            await self._drop_worktree(path, branch)
            await asyncio.to_thread(_remove_tree, self._gitdir_of(path))
            await self._clone_git("worktree", "add", "--quiet", "-B", branch, str(path), head)
            self._check_pointer(path)
        logger.info("worktree_prepared_from_branch", extra={"ticket": ticket_key, "branch": branch,
                                                           "path": str(path), "head": head})
        return Worktree(path=path, branch=branch, base_sha=head)

    async def has_changes(self, worktree: Worktree) -> bool:
        # One process: porcelain v2 names HEAD (`# branch.oid`) next to the changes.
        status = await self._wt_git(worktree, "status", "--porcelain=v2", "--branch", "--untracked-files=all",
                                    "--ignore-submodules=all")
        lines = [line for line in status.output.splitlines() if line.strip()]
        if any(not line.startswith("# ") for line in lines):
            return True
        head = next((line.split()[2] for line in lines if line.startswith("# branch.oid ")), None)
        return head != worktree.base_sha

    async def diff_summary(self, worktree: Worktree) -> str:
        async with self._staged_everything(worktree) as env:
            diff = await self._wt_git(worktree, "diff", "--cached", "--stat", *_NO_DRIVERS, worktree.base_sha,
                                      env=env)
        return diff.output.strip()

    async def pending_files(self, worktree: Worktree) -> list[tuple[str, bytes]]:
        """(path, content) of every path that differs from `base_sha` once everything is staged
        (untracked files included, deletions left out): the file's bytes, a symlink's target."""
        async with self._staged_everything(worktree) as env:
            res = await self._wt_git(worktree, "diff", "--cached", "--name-only", "-z", "--no-renames",
                                     "--diff-filter=d", *_NO_DRIVERS, worktree.base_sha, env=env,
                                     max_output=OUTBOUND_MAX_BYTES)
        _uncut(res, "the list of changed files")
        return await asyncio.to_thread(_read_files, worktree.path, [p for p in res.output.split("\0") if p])

    async def outgoing_objects(self, worktree: Worktree) -> list[tuple[str, str | bytes]]:
        """(label, content) of every object `push` would send: all commits, trees and blobs
        reachable from the branch but not from `base_sha`. Labels name a blob or tree by its path,
        a commit by its sha; content is decoded as UTF-8 with replacement (ASCII survives)."""
        ref = f"refs/heads/{worktree.branch}^{{commit}}"
        head = await self._wt_git(worktree, "rev-parse", "--verify", ref)
        sha = head.output.strip().splitlines()[-1]
        listed = await self._wt_git(worktree, "rev-list", "--objects", sha, f"^{worktree.base_sha}",
                                    max_output=OUTBOUND_MAX_BYTES)
        _uncut(listed, "the list of objects to push")
        labels: dict[str, str] = {}
        for line in listed.output.splitlines():
            if m := _OBJECT_LINE.match(line):
                path = m.group(2)
                labels.setdefault(m.group(1), path if path is not None else f"commit {m.group(1)[:12]}")
        if not labels:
            return []
        shas = "".join(f"{s}\n" for s in labels).encode()
        check = await self._wt_git(worktree, "cat-file", "--batch-check", stdin=shas,
                                   max_output=OUTBOUND_MAX_BYTES)
        _uncut(check, "the sizes of the objects to push")
        headers = check.output.splitlines()
        total = sum(int(h.split()[2]) for h in headers if len(h.split()) == 3 and h.split()[2].isdigit())
        if len(headers) != len(labels) or any(h.endswith(" missing") for h in headers):
            raise WorkspaceError("outbound check: cannot read every object of the push")
        if total > OUTBOUND_MAX_BYTES:
            raise WorkspaceError(f"outbound check: the push is too large to check ({total} bytes)")
        batch = await self._wt_git(worktree, "cat-file", "--batch", stdin=shas,
                                   max_output=total + len(shas) * 3 + 1024)
        _uncut(batch, "the objects to push")
        return list(_split_batch(batch.output, headers, [labels[s] for s in labels]))

    async def commit(self, worktree: Worktree, message: str) -> str:
        # The push sends that branch. HEAD read as git's files backend reads it (no process for it);
        # the git calls below check the registration itself before anything is written.
        try:
            head = (self._gitdir_of(worktree.path) / "HEAD").read_text(errors="replace").strip()
        except OSError:
            head = ""
        if head != f"ref: refs/heads/{worktree.branch}":
            raise WorkspaceError(f"worktree HEAD is not on {worktree.branch}: {head.removeprefix('ref: ')!r}")
        await self._wt_git(worktree, "add", "-A")
        staged = await self._wt_git(worktree, "diff", "--cached", "--quiet", *_NO_DRIVERS, check=False)
        if staged.exit_code == 0:
            raise WorkspaceError(f"nothing to commit in {worktree.path}", exit_code=0)
        if staged.exit_code != 1:
            raise self._error(("diff", "--cached"), staged)
        await self._wt_git(worktree, "commit", "--quiet", "--no-verify", "--file=-", env=self._identity,
                           stdin=message.encode())
        sha = await self._head(worktree)
        logger.info("worktree_committed", extra={"branch": worktree.branch, "sha": sha})
        return sha

    async def push(self, worktree: Worktree) -> None:
        started = time.monotonic()
        url = self._source_url()
        async with self._repo_lock():  # reads and updates refs/remotes/origin/*, as a fetch does
            sha = await push_via_transit(self._repo_git, self.root, self._clone_gitdir, url,
                                         worktree.branch)
        logger.info("branch_pushed", extra={"branch": worktree.branch, "sha": sha,
                                            "duration_s": round(time.monotonic() - started, 3)})

    async def remove(self, worktree: Worktree) -> None:
        async with self._repo_lock():
            parked = False
            if is_real_dir(self._clone_gitdir):
                parked = park(self._clone_gitdir, worktree.path, worktree.base_sha, self.spare_worktrees)
                if not parked:
                    await self._drop_worktree(worktree.path, worktree.branch)
            else:
                await asyncio.to_thread(_remove_tree, worktree.path)
        logger.info("worktree_removed", extra={"branch": worktree.branch, "path": str(worktree.path),
                                               "kept_as_spare": parked})

    async def read_base_file(self, path: str, max_bytes: int = 65_536) -> tuple[str | None, str]:
        """The file at `path` on the base branch as the last fetch saw it (`refs/remotes/origin/
        <BASE_BRANCH>`), read from the shared clone's objects - never from a worktree or a ticket's
        branch, which the agent writes - and the commit it was read from."""
        if path.startswith(("-", "/")) or ".." in path.split("/"):
            raise WorkspaceError(f"invalid base file path {path[:60]!r}")
        async with self._repo_lock():
            res = await self._clone_git("rev-parse", "--verify", "--quiet",
                                        f"refs/remotes/origin/{self.base_branch}^{{commit}}", check=False)
            if not res.ok:
                raise WorkspaceError(f"base branch {self.base_branch!r} not found on origin",
                                     exit_code=res.exit_code)
            base_sha = res.output.strip().splitlines()[-1]
            listed = await self._clone_git("ls-tree", "-z", base_sha, "--", path)
            entry = listed.output.split("\0")[0]
            meta, _, name = entry.partition("\t")
            parts = meta.split()
            if not entry or name != path or len(parts) != 3:
                return None, base_sha
            mode, kind, sha = parts
            if kind != "blob" or mode not in ("100644", "100755"):  # a link or a directory is no config
                raise WorkspaceError(f"{path} on the base branch is not a regular file ({mode} {kind})")
            res = await self._clone_git("cat-file", "-s", sha)
            if int(res.output.strip() or 0) > max_bytes:
                raise WorkspaceError(f"{path} on the base branch is over {max_bytes} bytes")
            blob = await self._clone_git("cat-file", "blob", sha)
        return blob.output, base_sha

    # ----- internals -----
    def _source_url(self) -> str:
        if not self._source:
            raise WorkspaceError("no repository configured: set REPO_URL (or REPO_DIR for development)")
        if url_has_password(self._source):
            raise WorkspaceError("REPO_URL must not carry credentials; put the token in GH_TOKEN")
        if "://" in self._source or self._source.startswith("git@"):
            return self._source
        return str(Path(self._source).expanduser().absolute())  # a local path: independent of cwd

    @property
    def _partial(self) -> bool:
        """A partial clone: asked for, and the source is a URL (git clones a local path locally,
        in full, whatever the filter); or the clone already is one (a `.promisor` pack: the
        source changed since): it lacks history's blobs for good, so it must stay partial. A
        planted `.promisor` file only makes git accept missing objects and `prepare` check for
        them: nothing runs. Remembered once seen (no directory listing per git call)."""
        source = self._source or ""
        if self._partial_clone and ("://" in source or source.startswith("git@")):
            return True
        if not self._seen_partial:
            self._seen_partial = any((self._clone_gitdir / "objects" / "pack").glob("*.promisor"))
        return self._seen_partial

    async def _sync_clone(self) -> dict[str, str]:
        """Clone if missing (or not a plain directory), else fetch the configured URL; return the
        clone's `refs/remotes/origin/*` (ref → sha). Lock held."""
        source = self._source_url()
        started = time.monotonic()
        if is_real_dir(self._clone_gitdir):
            self._restore_clone()  # before git reads anything of it (also removes a planted commondir)
            refs = await fetch_via_transit(self._repo_git, self.root, self._clone_gitdir, source,
                                           partial=self._partial)
            logger.info("repo_fetched", extra={"duration_s": round(time.monotonic() - started, 3)})
            return refs
        if self.repo_dir.exists():  # a half-made or foreign directory: our own path, start over
            logger.warning("repo_dir_invalid_recloning", extra={"path": str(self.repo_dir)})
            await asyncio.to_thread(shutil.rmtree, self.repo_dir)
        # Clone next to the target and rename: a clone killed half-way never looks like a repo.
        scratch = self.root / f".repo-clone-{uuid.uuid4().hex}"
        try:
            # A clone writes its own fresh config; it is the one token call outside transit/.
            # A partial clone: commits and trees only; the blobs a worktree needs come per checkout.
            partial = ("--filter=blob:none",) if self._partial else ()
            await self._git("clone", "--quiet", "--no-checkout", "--no-tags", "--template=", *partial,
                            "--origin", "origin", source, str(scratch), git_dir=None, cwd=self.root,
                            network=True)
            scratch.rename(self.repo_dir)
            self._restore_clone()  # the same known state as every later run starts from
        finally:
            if scratch.exists():
                await asyncio.to_thread(shutil.rmtree, scratch, True)
        logger.info("repo_cloned", extra={"duration_s": round(time.monotonic() - started, 3),
                                          "partial": self._partial})
        return await remote_refs(self._repo_git, self._clone_gitdir)

    async def _drop_worktree(self, path: Path, branch: str) -> None:
        """Remove whatever occupies `path` or has `branch` checked out, then prune. Lock held.
        Nothing at the path, no registration of it and no registration's HEAD on `branch` (what
        `worktree add -B` checks): nothing to do, and no git process for it."""
        if not (path.exists() or path.is_symlink() or self._gitdir_of(path).exists()) and \
                not await asyncio.to_thread(self._branch_checked_out, branch):
            return
        listing = await self._clone_git("worktree", "list", "--porcelain")
        ref = f"refs/heads/{branch}"
        for block in listing.output.strip().split("\n\n")[1:]:  # the first block is the clone itself
            fields = dict(line.partition(" ")[::2] for line in block.splitlines())
            wt_path = fields.get("worktree", "")
            if wt_path and (same_path(wt_path, path) or fields.get("branch") == ref):
                await self._clone_git("worktree", "remove", "--force", "--force", wt_path, check=False)
        await asyncio.to_thread(_remove_tree, path)
        await self._clone_git("worktree", "prune")

    def _branch_checked_out(self, branch: str) -> bool:
        """Some registration's HEAD names `branch` (read as text, as git itself reads it)."""
        registrations = self._clone_gitdir / "worktrees"
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

    async def _head(self, worktree: Worktree) -> str:
        res = await self._wt_git(worktree, "rev-parse", "HEAD")
        return res.output.strip().splitlines()[-1]

    @contextlib.asynccontextmanager
    async def _staged_everything(self, worktree: Worktree) -> AsyncIterator[dict[str, str]]:
        """Env for git calls that see everything staged (untracked files too) in a scratch copy of
        the index, so the real index (and thus what `commit` will do) is left alone."""
        index = self._gitdir_of(worktree.path) / "index"
        scratch_dir = self.root / "tmp"
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
                   "GIT_ALTERNATE_OBJECT_DIRECTORIES": str(self._clone_gitdir / "objects")}
            await self._wt_git(worktree, "add", "-A", env=env)
            yield env
        finally:
            scratch.unlink(missing_ok=True)
            await asyncio.to_thread(shutil.rmtree, objects, True)

    def _restore_clone(self) -> None:
        """The shared clone's config, hooks and info back to the service's state (clonestate.py)."""
        changed = restore_clone_state(self._clone_gitdir, self._source_url(), partial=self._partial)
        if changed:
            logger.warning("repo_state_restored", extra={"changed": changed[:50]})

    @contextlib.asynccontextmanager
    async def _repo_lock(self) -> AsyncIterator[None]:
        self.root.mkdir(parents=True, exist_ok=True)
        async with process_lock(self.repo_dir), file_lock(self.root / "repo.lock", self.lock_timeout):
            yield

    # ----- running git: every call names its repository -----
    @property
    def _clone_gitdir(self) -> Path:
        return self.repo_dir / ".git"

    def _gitdir_of(self, worktree_path: Path) -> Path:
        """Where `prepare` registered the worktree at `worktree_path` (git names it after the path)."""
        return self._clone_gitdir / "worktrees" / worktree_path.name

    def _check_pointer(self, path: Path) -> None:
        """The `.git` file `worktree add` just wrote must name the git dir we address it by."""
        target = gitfile_target(path)
        if not target or not same_path(target, self._gitdir_of(path)):
            raise WorkspaceError(f"worktree {path} was registered as {target!r}, not {self._gitdir_of(path)}")

    async def _clone_git(self, *args: str, check: bool = True) -> CommandResult:
        return await self._git(*args, git_dir=self._clone_gitdir, cwd=self.repo_dir, check=check)

    async def _repo_git(
        self, *args: str, git_dir: Path, network: bool = False, stdin: bytes | None = None,
        check: bool = True, env: dict[str, str] | None = None, max_output: int | None = None,
    ) -> CommandResult:
        """A `transit.GitRunner`: git in the repository `git_dir` (a bare repo or the clone's git dir)."""
        return await self._git(*args, git_dir=git_dir, network=network, stdin=stdin, check=check, env=env,
                               max_output=max_output or _OUTPUT_CAP)

    async def _wt_git(
        self, worktree: Worktree, *args: str, env: dict[str, str] | None = None, stdin: bytes | None = None,
        check: bool = True, max_output: int = _OUTPUT_CAP,
    ) -> CommandResult:
        """git in a ticket's worktree, addressed by the paths `prepare` made, never by its `.git`."""
        gitdir = self._gitdir_of(worktree.path)
        if not worktree.path.is_dir() or not gitdir.is_dir():
            raise WorkspaceError(f"worktree {worktree.path} is missing (removed?)")
        if not same_path(pointer := gitfile_target(worktree.path) or worktree.path, gitdir):
            # Harmless to us (never followed), but someone rewrote it: worth an operator's look.
            logger.warning("worktree_pointer_tampered", extra={"path": str(worktree.path), "target": pointer})
        return await self._git(*args, git_dir=gitdir, common_dir=self._clone_gitdir, work_tree=worktree.path,
                               env=env, stdin=stdin, check=check, max_output=max_output)

    async def _git(
        self,
        *args: str,
        git_dir: Path | None,
        cwd: Path | None = None,
        common_dir: Path | None = None,
        work_tree: Path | None = None,
        network: bool = False,
        env: dict[str, str] | None = None,
        stdin: bytes | None = None,
        check: bool = True,
        max_output: int = _OUTPUT_CAP,
    ) -> CommandResult:
        """Run git with the service's environment (gitenv.py). `git_dir` None only for `clone`, which
        makes its repository; `common_dir` defaults to `git_dir` (so a `commondir` file is ignored).
        With `network`, the token goes along when the configured URL may have it."""
        repo_env: dict[str, str] = {}
        if git_dir is not None:
            check_git_dir(git_dir, common_dir or git_dir)
            if common_dir is not None:
                check_git_dir(common_dir, common_dir)
            if (common_dir or git_dir) == self._clone_gitdir:
                self._restore_clone()  # every call in the clone or a worktree reads its config
            repo_env = {"GIT_DIR": str(git_dir.absolute()),
                        "GIT_COMMON_DIR": str((common_dir or git_dir).absolute())}
            if work_tree is not None:
                repo_env["GIT_WORK_TREE"] = str(work_tree.absolute())
        url = self._source_url() if network else None
        token = self._token if url and self._token and token_allowed(url) else None
        if token and git_dir is not None and git_dir.parent != self.root / "transit":
            raise WorkspaceError(f"refusing to give the token to git in {git_dir}: not a transit repo")
        res = await run_command(
            ["git", *args],
            cwd=cwd or work_tree or git_dir or self.root,
            env=git_env(token=token, url=url if token else None, extra={**repo_env, **(env or {})},
                        transport=network),
            timeout=self.network_timeout if network else self.local_timeout,
            max_output_chars=max_output,
            stdin=stdin,
        )
        if check and not res.ok:
            raise self._error(args, res)
        return res

    def _error(self, args: tuple[str, ...], res: CommandResult) -> WorkspaceError:
        output = redact(res.output.strip(), self._token)
        while args[:1] == ("-c",):  # name the subcommand, not the config in front of it
            args = args[2:]
        if res.timed_out:
            detail = f"git {args[0]} timed out after {res.duration_s:.0f}s"
        else:
            last = output.splitlines()[-1] if output else "no output"
            detail = f"git {args[0]} failed (exit {res.exit_code}): {last}"
        logger.warning("git_failed", extra={"command": args[0], "exit_code": res.exit_code, "output": output})
        return WorkspaceError(detail, stderr=output, exit_code=res.exit_code)


def _uncut(res: CommandResult, what: str) -> None:
    """The outbound check reads all or nothing: a capped output is a failure."""
    if _CUT_MARK.match(res.output):
        raise WorkspaceError(f"outbound check: {what} is too large to check")


def _read_files(root: Path, paths: list[str]) -> list[tuple[str, bytes]]:
    """The committed form of each path under `root`: a symlink's target, a file's bytes (a
    directory is a nested repository: git records only its commit id). Anything that cannot be
    read from inside `root` fails the check."""
    real_root = os.path.realpath(root)
    out: list[tuple[str, bytes]] = []
    total = 0
    for rel in paths:
        path = root / rel
        parent = os.path.realpath(path.parent)
        if parent != real_root and not parent.startswith(real_root + os.sep):
            raise WorkspaceError(f"outbound check: {rel!r} is not inside the worktree")
        try:
            if path.is_symlink():
                data = os.fsencode(os.readlink(path))
            elif path.is_dir():
                continue
            else:
                data = path.read_bytes()
        except OSError as exc:
            raise WorkspaceError(f"outbound check: cannot read {rel!r}: {exc.strerror}") from exc
        total += len(data)
        if total > OUTBOUND_MAX_BYTES:
            raise WorkspaceError(f"outbound check: the change is over {OUTBOUND_MAX_BYTES} bytes: too large")
        out.append((rel, data))
    return out


def _split_batch(text: str, headers: list[str], labels: list[str]) -> list[tuple[str, str]]:
    """Cut `git cat-file --batch` output into (label, content) by the headers `--batch-check`
    printed, in order. A blob that contains the next header only shifts the attribution; nothing
    is skipped (the pieces cover the whole text)."""
    out: list[tuple[str, str]] = []
    pos = 0
    for i, (header, label) in enumerate(zip(headers, labels, strict=True)):
        start = text.find(header + "\n", pos)
        start = pos if start < 0 else start + len(header) + 1
        nxt = text.find(headers[i + 1] + "\n", start) if i + 1 < len(headers) else -1
        end = len(text) if nxt < 0 else nxt
        out.append((label or "(root tree)", text[start:end]))
        pos = end
    if pos < len(text) and out:  # never drop text: the tail goes with the last object
        label, content = out[-1]
        out[-1] = (label, content + text[pos:])
    return out
