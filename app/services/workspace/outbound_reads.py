"""What the outbound check (app/services/outbound_scan.py, called by the runner) reads before
anything leaves: `pending_files` (what the next commit would add, as the bytes that would be
committed) and `outgoing_objects` (every object the push would send). Both fail closed
(WorkspaceError) when something cannot be read or is too large to read."""

from __future__ import annotations

import asyncio
import os
import re
from pathlib import Path

from app.errors import WorkspaceError
from app.proc import CommandResult
from app.services.workspace.base import Worktree
from app.services.workspace.changes import NO_DRIVERS, staged_everything
from app.services.workspace.gitrun import RepoGit

OUTBOUND_MAX_BYTES = 256 * 1024 * 1024  # what the outbound check reads at most; more fails closed
_CUT_MARK = re.compile(r"^\[\.\.\. \d+ chars cut \.\.\.\]\n")  # app.proc's cap marker
_OBJECT_LINE = re.compile(r"^([0-9a-f]{40}|[0-9a-f]{64})(?: (.*))?$")


async def pending_files(git: RepoGit, worktree: Worktree) -> list[tuple[str, bytes]]:
    """(path, content) of every path that differs from `base_sha` once everything is staged
    (untracked files included, deletions left out): the file's bytes, a symlink's target."""
    async with staged_everything(git, worktree) as env:
        res = await git.wt_git(worktree, "diff", "--cached", "--name-only", "-z", "--no-renames",
                               "--diff-filter=d", *NO_DRIVERS, worktree.base_sha, env=env,
                               max_output=OUTBOUND_MAX_BYTES)
    _uncut(res, "the list of changed files")
    return await asyncio.to_thread(_read_files, worktree.path, [p for p in res.output.split("\0") if p])


async def outgoing_objects(git: RepoGit, worktree: Worktree) -> list[tuple[str, str | bytes]]:
    """(label, content) of every object `push` would send: all commits, trees and blobs
    reachable from the branch but not from `base_sha`. Labels name a blob or tree by its path,
    a commit by its sha; content is decoded as UTF-8 with replacement (ASCII survives)."""
    ref = f"refs/heads/{worktree.branch}^{{commit}}"
    head = await git.wt_git(worktree, "rev-parse", "--verify", ref)
    sha = head.output.strip().splitlines()[-1]
    listed = await git.wt_git(worktree, "rev-list", "--objects", sha, f"^{worktree.base_sha}",
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
    check = await git.wt_git(worktree, "cat-file", "--batch-check", stdin=shas,
                             max_output=OUTBOUND_MAX_BYTES)
    _uncut(check, "the sizes of the objects to push")
    headers = check.output.splitlines()
    total = sum(int(h.split()[2]) for h in headers if len(h.split()) == 3 and h.split()[2].isdigit())
    if len(headers) != len(labels) or any(h.endswith(" missing") for h in headers):
        raise WorkspaceError("outbound check: cannot read every object of the push")
    if total > OUTBOUND_MAX_BYTES:
        raise WorkspaceError(f"outbound check: the push is too large to check ({total} bytes)")
    batch = await git.wt_git(worktree, "cat-file", "--batch", stdin=shas,
                             max_output=total + len(shas) * 3 + 1024)
    _uncut(batch, "the objects to push")
    return list(_split_batch(batch.output, headers, [labels[s] for s in labels]))


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
