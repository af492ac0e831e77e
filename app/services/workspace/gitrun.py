"""RepoGit: how the workspace runs git for one repository, and the paths it addresses git by.

Every call names its repository itself (`GIT_DIR`, `GIT_COMMON_DIR`, in a worktree
`GIT_WORK_TREE`; layout.py checks them), the shared clone's config, hooks and info are restored
to the service's state before every call in the clone or a worktree (clonestate.py), and the
token goes only to git in a transit repo (transit.py) on the configured URL. client.py's module
docstring says why; the modules of GitWorkspace run all their git through here.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import AsyncIterator
from pathlib import Path

from app.errors import WorkspaceError
from app.proc import CommandResult, run_command
from app.services.workspace.base import Worktree
from app.services.workspace.clonestate import restore_clone_state
from app.services.workspace.gitenv import git_env, redact, token_allowed, url_has_password
from app.services.workspace.layout import check_git_dir, gitfile_target, same_path
from app.services.workspace.locks import file_lock, process_lock

# The name the workspace's log lines have always had (one logger for all of them, whichever module).
logger = logging.getLogger("app.services.workspace.client")

OUTPUT_CAP = 20_000


class RepoGit:
    """git for the repository under `root`: the shared clone `root/repo`, its worktrees, its
    transit repos (`root/transit`) and its lock (`root/repo.lock`)."""

    def __init__(
        self, root: Path, source: str | None, token: str | None, *, network_timeout: float,
        local_timeout: float, lock_timeout: float, partial_clone: bool,
    ) -> None:
        self.root = root
        self.repo_dir = root / "repo"
        self._source = source
        self._token = token
        self.network_timeout = network_timeout
        self.local_timeout = local_timeout
        self.lock_timeout = lock_timeout
        self._partial_clone = partial_clone
        self._seen_partial = False

    # ----- what git is pointed at -----
    def source_url(self) -> str:
        if not self._source:
            raise WorkspaceError("no repository configured: set REPO_URL (or REPO_DIR for development)")
        if url_has_password(self._source):
            raise WorkspaceError("REPO_URL must not carry credentials; put the token in GH_TOKEN")
        if "://" in self._source or self._source.startswith("git@"):
            return self._source
        return str(Path(self._source).expanduser().absolute())  # a local path: independent of cwd

    @property
    def partial(self) -> bool:
        """A partial clone: asked for, and the source is a URL (git clones a local path locally,
        in full, whatever the filter); or the clone already is one (a `.promisor` pack: the
        source changed since): it lacks history's blobs for good, so it must stay partial. A
        planted `.promisor` file only makes git accept missing objects and `prepare` check for
        them: nothing runs. Remembered once seen (no directory listing per git call)."""
        source = self._source or ""
        if self._partial_clone and ("://" in source or source.startswith("git@")):
            return True
        if not self._seen_partial:
            self._seen_partial = any((self.clone_gitdir / "objects" / "pack").glob("*.promisor"))
        return self._seen_partial

    @property
    def clone_gitdir(self) -> Path:
        return self.repo_dir / ".git"

    def gitdir_of(self, worktree_path: Path) -> Path:
        """Where `prepare` registered the worktree at `worktree_path` (git names it after the path)."""
        return self.clone_gitdir / "worktrees" / worktree_path.name

    def check_pointer(self, path: Path) -> None:
        """The `.git` file `worktree add` just wrote must name the git dir we address it by."""
        target = gitfile_target(path)
        if not target or not same_path(target, self.gitdir_of(path)):
            raise WorkspaceError(f"worktree {path} was registered as {target!r}, not {self.gitdir_of(path)}")

    def restore_clone(self) -> None:
        """The shared clone's config, hooks and info back to the service's state (clonestate.py)."""
        changed = restore_clone_state(self.clone_gitdir, self.source_url(), partial=self.partial)
        if changed:
            logger.warning("repo_state_restored", extra={"changed": changed[:50]})

    @contextlib.asynccontextmanager
    async def repo_lock(self) -> AsyncIterator[None]:
        self.root.mkdir(parents=True, exist_ok=True)
        async with process_lock(self.repo_dir), file_lock(self.root / "repo.lock", self.lock_timeout):
            yield

    # ----- running git: every call names its repository -----
    async def clone_git(self, *args: str, check: bool = True) -> CommandResult:
        return await self.git(*args, git_dir=self.clone_gitdir, cwd=self.repo_dir, check=check)

    async def repo_git(
        self, *args: str, git_dir: Path, network: bool = False, stdin: bytes | None = None,
        check: bool = True, env: dict[str, str] | None = None, max_output: int | None = None,
    ) -> CommandResult:
        """A `transit.GitRunner`: git in the repository `git_dir` (a bare repo or the clone's git dir)."""
        return await self.git(*args, git_dir=git_dir, network=network, stdin=stdin, check=check, env=env,
                              max_output=max_output or OUTPUT_CAP)

    async def wt_git(
        self, worktree: Worktree, *args: str, env: dict[str, str] | None = None, stdin: bytes | None = None,
        check: bool = True, max_output: int = OUTPUT_CAP,
    ) -> CommandResult:
        """git in a ticket's worktree, addressed by the paths `prepare` made, never by its `.git`."""
        gitdir = self.gitdir_of(worktree.path)
        if not worktree.path.is_dir() or not gitdir.is_dir():
            raise WorkspaceError(f"worktree {worktree.path} is missing (removed?)")
        if not same_path(pointer := gitfile_target(worktree.path) or worktree.path, gitdir):
            # Harmless to us (never followed), but someone rewrote it: worth an operator's look.
            logger.warning("worktree_pointer_tampered", extra={"path": str(worktree.path), "target": pointer})
        return await self.git(*args, git_dir=gitdir, common_dir=self.clone_gitdir, work_tree=worktree.path,
                              env=env, stdin=stdin, check=check, max_output=max_output)

    async def head(self, worktree: Worktree) -> str:
        res = await self.wt_git(worktree, "rev-parse", "HEAD")
        return res.output.strip().splitlines()[-1]

    async def git(
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
        max_output: int = OUTPUT_CAP,
    ) -> CommandResult:
        """Run git with the service's environment (gitenv.py). `git_dir` None only for `clone`, which
        makes its repository; `common_dir` defaults to `git_dir` (so a `commondir` file is ignored).
        With `network`, the token goes along when the configured URL may have it."""
        repo_env: dict[str, str] = {}
        if git_dir is not None:
            check_git_dir(git_dir, common_dir or git_dir)
            if common_dir is not None:
                check_git_dir(common_dir, common_dir)
            if (common_dir or git_dir) == self.clone_gitdir:
                self.restore_clone()  # every call in the clone or a worktree reads its config
            repo_env = {"GIT_DIR": str(git_dir.absolute()),
                        "GIT_COMMON_DIR": str((common_dir or git_dir).absolute())}
            if work_tree is not None:
                repo_env["GIT_WORK_TREE"] = str(work_tree.absolute())
        url = self.source_url() if network else None
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
            raise self.error(args, res)
        return res

    def error(self, args: tuple[str, ...], res: CommandResult) -> WorkspaceError:
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
