"""Token-bearing git calls, each run in a bare repository the service has just created.

Why: the agent runs as the service's uid, so it can rewrite anything in the shared clone or its
worktree (`.git/config` with `url.*.insteadOf`, `http.proxy`, `credential.helper`, `include.path`,
a `.git` pointer, a `commondir` file, hooks). A git process holding the token must read none of
that. So fetch and push never run in the shared clone: `transit_repo` makes a fresh bare repo
under `<WORKSPACE_DIR>/transit/<label>-<random>` (`git init --bare --template=`: no hooks, our own
config), with the shared clone's object store as an alternate (objects are data: reading them runs
nothing, and nothing is copied), and deletes it afterwards. The remote is always the configured
URL, passed explicitly, never a remote name.

- `fetch_via_transit`: seed the transit repo with the clone's `refs/remotes/origin/*` (so only
  new objects are downloaded), fetch the configured URL into it with the token, then let the
  shared clone fetch from the transit repo (local, no token; upload-pack runs in the transit repo,
  under our config).
- `push_via_transit`: push `<sha of refs/heads/<branch>>:refs/heads/<branch>` to the configured URL
  with `--force-with-lease=refs/heads/<branch>:<expected>`, where <expected> is the clone's
  `refs/remotes/origin/<branch>` as the service's last fetch of that URL left it (empty: the branch
  must not exist yet), then record the pushed sha there. A push someone made after that fetch is
  refused ("stale info"); pushing a sha the remote already has is "up to date".

Residual risk (same uid): the agent can race the transit directory between `git init` and the
network call, and can read `/proc/<pid>/environ` of any process of the service's uid — the
token-bearing git process and the service itself. Only a separate uid or sandbox for the agent
closes that; this module closes the config/pointer routes.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import shutil
import tempfile
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Protocol

from app.errors import WorkspaceError
from app.proc import CommandResult

logger = logging.getLogger(__name__)

# Keep a throwaway repository from starting background or automatic maintenance.
_QUIET_REPO = ("-c", "gc.auto=0", "-c", "maintenance.auto=false", "-c", "fetch.writeCommitGraph=false")


class GitRunner(Protocol):
    """How this module runs git: in the repository `git_dir` (also its common dir), token only
    when `network` is true."""

    async def __call__(
        self, *args: str, git_dir: Path, network: bool = False, stdin: bytes | None = None,
        check: bool = True,
    ) -> CommandResult: ...


@contextlib.asynccontextmanager
async def transit_repo(git: GitRunner, root: Path, label: str, objects: Path) -> AsyncIterator[Path]:
    """A fresh bare repository under `root/transit/` borrowing `objects` (an objects directory);
    removed on exit, whatever happened."""
    base = root / "transit"
    base.mkdir(parents=True, exist_ok=True)
    path = Path(tempfile.mkdtemp(prefix=f"{label}-", dir=base))
    try:
        await git("init", "--quiet", "--bare", "--template=", "--initial-branch=unused", git_dir=path)
        info = path / "objects" / "info"
        info.mkdir(parents=True, exist_ok=True)
        (info / "alternates").write_text(f"{objects.absolute()}\n")
        yield path
    finally:
        await asyncio.to_thread(shutil.rmtree, path, True)


async def _ref_sha(git: GitRunner, repo: Path, ref: str) -> str | None:
    res = await git("rev-parse", "--verify", "--quiet", f"{ref}^{{commit}}", git_dir=repo, check=False)
    return res.output.strip().splitlines()[-1] if res.ok and res.output.strip() else None


async def fetch_via_transit(git: GitRunner, root: Path, clone: Path, url: str) -> None:
    """Bring the clone's `refs/remotes/origin/*` up to date with `url` (pruning gone branches).
    `clone` is the shared clone's git dir. Raises WorkspaceError (from `git`)."""
    async with transit_repo(git, root, "fetch", clone / "objects") as transit:
        refs = await git("for-each-ref", "--format=%(objectname) %(refname)", "refs/remotes/origin/",
                         git_dir=clone)
        seed = [f"create {ref} {sha}\n" for sha, _, ref in
                (line.partition(" ") for line in refs.output.splitlines())
                if ref and not ref.endswith("/HEAD")]
        if seed:
            res = await git("update-ref", "--stdin", git_dir=transit, stdin="".join(seed).encode(),
                            check=False)
            if not res.ok:  # e.g. a ref whose object is gone: fetch everything instead
                logger.warning("transit_seed_failed", extra={"output": res.output[-500:]})
        await git(*_QUIET_REPO, "fetch", "--quiet", "--prune", "--no-tags", "--no-write-fetch-head", url,
                  "+refs/heads/*:refs/remotes/origin/*", git_dir=transit, network=True)
        # The clone keeps its automatic gc: it lives on, unlike the transit repo.
        await git("fetch", "--quiet", "--prune", "--no-tags", "--no-write-fetch-head", str(transit),
                  "+refs/remotes/origin/*:refs/remotes/origin/*", git_dir=clone)


async def push_via_transit(git: GitRunner, root: Path, clone: Path, url: str, branch: str) -> str:
    """Push the clone's `refs/heads/<branch>` to `url` under a lease (see the module docstring);
    return the pushed sha. Raises WorkspaceError (from `git`), also when the branch is missing."""
    ref = f"refs/heads/{branch}"
    sha = await _ref_sha(git, clone, ref)
    if sha is None:
        raise WorkspaceError(f"branch {branch!r} not found in the shared clone")
    expected = await _ref_sha(git, clone, f"refs/remotes/origin/{branch}") or ""
    async with transit_repo(git, root, "push", clone / "objects") as transit:
        await git(*_QUIET_REPO, "push", "--quiet", "--no-verify", f"--force-with-lease={ref}:{expected}",
                  url, f"{sha}:{ref}", git_dir=transit, network=True)
    await git("update-ref", f"refs/remotes/origin/{branch}", sha, git_dir=clone)
    return sha
