"""Token-bearing git calls, each run in a bare repository the service has just created.

Why: the agent runs as the service's uid, so it can rewrite anything in the shared clone or its
worktree (`.git/config` with `url.*.insteadOf`, `http.proxy`, `credential.helper`, `include.path`,
a `.git` pointer, a `commondir` file, hooks). A git process holding the token must read none of
that. So fetch and push never run in the shared clone: `transit_repo` makes a fresh bare repo
under `<WORKSPACE_DIR>/transit/<label>-<random>` (written by the service itself: `HEAD`, `refs/`,
`objects/` and a config it chose; no hooks), reading the shared clone's object store (objects are
data: reading them runs nothing, and nothing is copied), and deletes it afterwards. The remote is
always the configured URL, written into that config (or passed explicitly), never one read from the
clone.

- `fetch_via_transit`: seed the transit repo with the clone's `refs/remotes/origin/*` (so only
  new objects are downloaded), fetch the configured URL into it with the token, writing the pack
  straight into the clone's object store (`GIT_OBJECT_DIRECTORY`: one fetch, no second copy),
  then move the clone's `refs/remotes/origin/*` to what the transit repo now holds (one
  `update-ref --stdin`, skipped when nothing moved).
- `fetch_missing_blobs` (partial clones): the blobs a checkout of one commit needs that the clone
  does not have (`rev-list --missing=print`, which never fetches), fetched by id in a transit repo
  whose config names the configured URL as its promisor remote, into the clone's object store.
  This is git's own lazy fetch (the same command), moved to where the token may be; the clone
  itself may speak no transport (gitenv.py), so a blob missed here fails loudly instead of being
  fetched from the clone. The remote must allow filters: GitHub and GitHub Enterprise do (partial
  clone, protocol v2, any reachable object id in `want`); a plain `git upload-pack` needs
  `uploadpack.allowFilter` (and a `file://` URL: a plain path is cloned locally, unfiltered).
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
import re
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
_SHA = re.compile(r"[0-9a-f]{40}|[0-9a-f]{64}")
_LIST_MAX = 64 * 1024 * 1024  # a ref or object listing is read whole (a cut one would drop entries)


class GitRunner(Protocol):
    """How this module runs git: in the repository `git_dir` (also its common dir), token only
    when `network` is true; `env` adds variables (here only `GIT_OBJECT_DIRECTORY`)."""

    async def __call__(
        self, *args: str, git_dir: Path, network: bool = False, stdin: bytes | None = None,
        check: bool = True, env: dict[str, str] | None = None, max_output: int | None = None,
    ) -> CommandResult: ...


def _quoted(url: str) -> str:
    if any(c in url for c in "\n\r\0"):
        raise WorkspaceError("a repository URL cannot contain a line break")
    return '"' + url.replace("\\", "\\\\").replace('"', '\\"') + '"'


def transit_config(url: str | None = None, *, promisor: bool = False) -> str:
    """A transit repo's whole config: bare, and (with `url`) `origin` = the configured URL,
    as the promisor remote of a partial clone when `promisor`."""
    lines = ["[core]", f"\trepositoryformatversion = {1 if promisor else 0}", "\tbare = true"]
    if url is not None:
        lines += ['[remote "origin"]', f"\turl = {_quoted(url)}"]
        if promisor:
            lines += ["\tpromisor = true", "\tpartialclonefilter = blob:none"]
    return "\n".join(lines) + "\n"


@contextlib.asynccontextmanager
async def transit_repo(
    root: Path, label: str, config: str, alternate: Path | None = None
) -> AsyncIterator[Path]:
    """A fresh bare repository under `root/transit/` with exactly `config` (and `alternate`, an
    objects directory, borrowed); removed on exit, whatever happened. Made by hand rather than
    by `git init`: the same four entries, one process less per fetch and push."""
    base = root / "transit"
    base.mkdir(parents=True, exist_ok=True)
    path = Path(tempfile.mkdtemp(prefix=f"{label}-", dir=base))
    try:
        (path / "refs").mkdir()
        (path / "objects" / "info").mkdir(parents=True)
        (path / "HEAD").write_text("ref: refs/heads/unused\n")
        (path / "config").write_text(config)
        if alternate is not None:
            (path / "objects" / "info" / "alternates").write_text(f"{alternate.absolute()}\n")
        yield path
    finally:
        await asyncio.to_thread(shutil.rmtree, path, True)


async def remote_refs(git: GitRunner, repo: Path) -> dict[str, str]:
    """`refs/remotes/origin/*` of `repo` (the symbolic `HEAD` left out): ref → sha."""
    res = await git("for-each-ref", "--format=%(objectname) %(refname)", "refs/remotes/origin/",
                    git_dir=repo, max_output=_LIST_MAX)
    refs: dict[str, str] = {}
    for line in res.output.splitlines():
        sha, _, ref = line.partition(" ")
        if _SHA.fullmatch(sha) and ref.startswith("refs/remotes/origin/") and not ref.endswith("/HEAD"):
            refs[ref] = sha
    return refs


def _seed(transit: Path, refs: dict[str, str]) -> None:
    """Give the transit repo the clone's remote-tracking refs (a `packed-refs` file: what git
    itself writes, sorted), so the fetch negotiates from them and downloads only what is new."""
    if refs:
        lines = "".join(f"{refs[ref]} {ref}\n" for ref in sorted(refs))
        (transit / "packed-refs").write_text(f"# pack-refs with: peeled fully-peeled sorted \n{lines}")


async def fetch_via_transit(
    git: GitRunner, root: Path, clone: Path, url: str, *, partial: bool = False
) -> dict[str, str]:
    """Bring the clone's `refs/remotes/origin/*` up to date with `url` (pruning gone branches) and
    return them (ref → sha). `clone` is the shared clone's git dir; `partial`: it is a partial
    clone (the new commits come whole: their blobs are what the next checkouts need). Raises
    WorkspaceError (from `git`)."""
    before = await remote_refs(git, clone)
    into_clone = {"GIT_OBJECT_DIRECTORY": str((clone / "objects").absolute())}
    async with transit_repo(root, "fetch", transit_config(url, promisor=partial)) as transit:
        _seed(transit, before)
        await git(*_QUIET_REPO, "fetch", "--quiet", "--prune", "--no-tags", "--no-write-fetch-head", "origin",
                  "+refs/heads/*:refs/remotes/origin/*", git_dir=transit, network=True, env=into_clone)
        after = await remote_refs(git, transit)
    moves = [f"update {ref} {sha}\n" for ref, sha in after.items() if before.get(ref) != sha]
    moves += [f"delete {ref} {sha}\n" for ref, sha in before.items() if ref not in after]
    if moves:
        await git("update-ref", "--stdin", git_dir=clone, stdin="".join(moves).encode())
    return after


async def fetch_missing_blobs(git: GitRunner, root: Path, clone: Path, url: str, commit: str) -> int:
    """Fetch every blob of `commit`'s tree the (partial) clone lacks; return how many there were."""
    listed = await git("rev-list", "--objects", "--no-object-names", "--missing=print", f"{commit}^{{tree}}",
                       git_dir=clone, max_output=_LIST_MAX)
    missing = [line[1:] for line in listed.output.splitlines()
               if line.startswith("?") and _SHA.fullmatch(line[1:])]
    if not missing:
        return 0
    into_clone = {"GIT_OBJECT_DIRECTORY": str((clone / "objects").absolute())}
    async with transit_repo(root, "blobs", transit_config(url, promisor=True)) as transit:
        # git's own lazy fetch, word for word (promisor-remote.c), run where the token may be.
        wants = "".join(f"{oid}\n" for oid in missing).encode()
        await git(*_QUIET_REPO, "-c", "fetch.negotiationAlgorithm=noop", "fetch", "--quiet", "--no-tags",
                  "--no-write-fetch-head", "--recurse-submodules=no", "--filter=blob:none", "--stdin",
                  "origin", git_dir=transit, network=True, env=into_clone, stdin=wants)
    logger.info("blobs_fetched", extra={"count": len(missing), "commit": commit})
    return len(missing)


async def push_via_transit(git: GitRunner, root: Path, clone: Path, url: str, branch: str) -> str:
    """Push the clone's `refs/heads/<branch>` to `url` under a lease (see the module docstring);
    return the pushed sha. Raises WorkspaceError (from `git`), also when the branch is missing."""
    ref, tracking = f"refs/heads/{branch}", f"refs/remotes/origin/{branch}"
    listed = await git("for-each-ref", "--format=%(objectname) %(refname)", ref, tracking, git_dir=clone)
    shas = {name: sha for sha, _, name in (line.partition(" ") for line in listed.output.splitlines())
            if _SHA.fullmatch(sha)}  # patterns match whole components: keep the exact names only
    sha = shas.get(ref)
    if sha is None:
        raise WorkspaceError(f"branch {branch!r} not found in the shared clone")
    expected = shas.get(tracking, "")
    async with transit_repo(root, "push", transit_config(), alternate=clone / "objects") as transit:
        await git(*_QUIET_REPO, "push", "--quiet", "--no-verify", f"--force-with-lease={ref}:{expected}",
                  url, f"{sha}:{ref}", git_dir=transit, network=True)
    await git("update-ref", f"refs/remotes/origin/{branch}", sha, git_dir=clone)
    return sha
