"""Finished worktrees kept for the next ticket: `remove` parks one, `prepare` claims it.

A fresh `git worktree add` writes every file of the base commit (fastapi/fastapi: 3.1k files,
~0.37 s on a 2-core machine, most of a prepare). A finished worktree already holds nearly all of
them, so reusing it costs only what differs: `checkout --force -B` rewrites the paths that differ
from the new base (its index knows which), `clean -ffdx` removes everything untracked or ignored
(nested repositories too), and `status --ignored` must then show nothing, else the service falls
back to a fresh worktree (worktrees.py).

The previous run's agent wrote that worktree, so everything of it but the tracked files is thrown
away or rewritten by the service before git reads it:
- the worktree's `.git` pointer and its registration's `gitdir` are rewritten (a pointer the agent
  redirected is never followed anyway: every call names its git dir; layout.py);
- the registration (`<clone>/.git/worktrees/<name>/`) keeps only `HEAD`, `commondir`, `gitdir` and
  `index`: its reflog, `ORIG_HEAD`, per-worktree refs (`refs/bisect`, `refs/worktree`), a
  `config.worktree`, a `locked` file, merge/rebase state are deleted;
- `refs/stash` of the clone is deleted (the service never stashes; only an agent could have);
- file and directory modes are put back to what a fresh checkout makes (git itself compares only
  the executable bit: a world-writable file would otherwise survive).
The clone's config, hooks and info are restored before every git call as always (clonestate.py).

What is not re-checked: the content of a tracked file whose stat data (size, mtime, ctime, inode)
still matches the index. A process cannot set ctime back, so a change shows, unless it happened
within the index's own timestamp granularity, which git's racy-entry check covers; an agent in the
sandbox cannot reach the registration (the index, HEAD) at all.

Spares are named `.spare-<random>` (the worktree and its registration alike, so the registration
is still found by the worktree's name) and are detached (`HEAD` = a commit), so the previous
ticket's branch is free for a re-run.
"""

from __future__ import annotations

import os
import shutil
import stat
import uuid
from collections.abc import Callable
from pathlib import Path

from app.errors import WorkspaceError
from app.services.workspace.layout import check_git_dir, is_real_dir, same_path

SPARE_PREFIX = ".spare-"
_KEEP = frozenset({"HEAD", "commondir", "gitdir", "index"})


def registration(clone_gitdir: Path, worktree: Path) -> Path:
    """Where git keeps `worktree`'s registration (named after the worktree's directory)."""
    return clone_gitdir / "worktrees" / worktree.name


def is_intact(clone_gitdir: Path, worktree: Path) -> bool:
    """`worktree` is a plain directory registered in the clone as itself, with a `.git` file and
    an index: something a checkout can reset. Anything else is removed, not reused."""
    reg = registration(clone_gitdir, worktree)
    if not (is_real_dir(worktree) and is_real_dir(reg)):
        return False
    pointer = worktree / ".git"
    if pointer.is_symlink() or not pointer.is_file():
        return False
    index = reg / "index"
    if index.is_symlink() or not index.is_file():
        return False
    try:
        check_git_dir(reg, clone_gitdir)
        recorded = (reg / "gitdir").read_text().strip()
    except (WorkspaceError, OSError):
        return False
    return same_path(recorded, pointer)


def spares(worktrees_dir: Path) -> list[Path]:
    if not worktrees_dir.is_dir():
        return []
    return sorted(p for p in worktrees_dir.iterdir() if p.name.startswith(SPARE_PREFIX))


def relink(clone_gitdir: Path, worktree: Path) -> None:
    """Rewrite both halves of the link between `worktree` and its registration."""
    reg = registration(clone_gitdir, worktree)
    (reg / "gitdir").write_text(f"{(worktree / '.git').absolute()}\n")
    pointer = worktree / ".git"
    pointer.unlink(missing_ok=True)
    pointer.write_text(f"gitdir: {reg.absolute()}\n")


def _move(clone_gitdir: Path, source: Path, target: Path) -> None:
    """Rename a worktree and its registration together; the links follow."""
    reg_target = registration(clone_gitdir, target)
    if reg_target.exists() or reg_target.is_symlink():
        shutil.rmtree(reg_target, ignore_errors=True) if is_real_dir(reg_target) else reg_target.unlink()
    registration(clone_gitdir, source).rename(reg_target)
    source.rename(target)
    relink(clone_gitdir, target)


def park(clone_gitdir: Path, worktree: Path, commit: str, keep: int) -> bool:
    """Keep the finished `worktree` as a spare, detached at `commit`, when it is intact and fewer
    than `keep` spares exist; False: the caller removes it. Repository lock held."""
    if keep <= 0 or len(spares(worktree.parent)) >= keep or not is_intact(clone_gitdir, worktree):
        return False
    spare = worktree.parent / f"{SPARE_PREFIX}{uuid.uuid4().hex[:12]}"
    try:
        _move(clone_gitdir, worktree, spare)
        (registration(clone_gitdir, spare) / "HEAD").write_text(f"{commit}\n")
    except OSError:
        return False
    return True


def claim(clone_gitdir: Path, target: Path, remove_tree: Callable[[Path], None]) -> bool:
    """Move an intact spare to `target` (which must not exist); False when there is none. A spare
    found broken is deleted with its registration (`remove_tree`: worktrees.py's, which copes with
    read-only trees). Repository lock held."""
    for spare in spares(target.parent):
        if is_intact(clone_gitdir, spare):
            try:
                _move(clone_gitdir, spare, target)
            except OSError:
                pass
            else:
                return True
        remove_tree(spare)
        remove_tree(registration(clone_gitdir, spare))
    return False


def scrub_registration(clone_gitdir: Path, worktree: Path) -> None:
    """Everything of the registration but HEAD, commondir, gitdir and index goes (module
    docstring), and the clone's `refs/stash` with its reflog."""
    reg = registration(clone_gitdir, worktree)
    for entry in reg.iterdir():
        if entry.name in _KEEP and entry.is_file() and not entry.is_symlink():
            continue
        if is_real_dir(entry):
            shutil.rmtree(entry)
        else:
            entry.unlink()
    for stash in (clone_gitdir / "refs" / "stash", clone_gitdir / "logs" / "refs" / "stash"):
        if stash.is_file() or stash.is_symlink():
            stash.unlink()


def stash_is_packed(clone_gitdir: Path) -> bool:
    """`refs/stash` in `packed-refs` (then `update-ref -d` is needed to drop it)."""
    try:
        return " refs/stash\n" in (clone_gitdir / "packed-refs").read_text(errors="replace")
    except OSError:
        return False


def _umask() -> int:
    """The process's umask, read without setting it (`os.umask` would change it for every thread
    for a moment)."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("Umask:"):
                return int(line.split()[1], 8)
    except (OSError, ValueError, IndexError):
        pass
    return 0o022


def normalize_modes(worktree: Path) -> int:
    """Give every directory and file of `worktree` (not `.git`) the mode a fresh checkout gives it
    under the current umask (executable files keep their executable bits); return how many were
    changed. Symlinks are left alone (their mode means nothing)."""
    umask = _umask()
    want_dir, want_exe, want_file = 0o777 & ~umask, 0o777 & ~umask, 0o666 & ~umask
    changed = 0
    for top, dirs, files in os.walk(worktree):
        if top == str(worktree):
            dirs[:] = [d for d in dirs if d != ".git"]
            files = [f for f in files if f != ".git"]
        for name in dirs:
            path = os.path.join(top, name)
            st = os.lstat(path)
            if stat.S_ISDIR(st.st_mode) and stat.S_IMODE(st.st_mode) != want_dir:
                os.chmod(path, want_dir)
                changed += 1
        for name in files:
            path = os.path.join(top, name)
            st = os.lstat(path)
            if not stat.S_ISREG(st.st_mode):
                continue
            want = want_exe if st.st_mode & stat.S_IXUSR else want_file
            if stat.S_IMODE(st.st_mode) != want:
                os.chmod(path, want)
                changed += 1
    return changed
