"""Checks on the git directories the service addresses, for what explicit `GIT_DIR`/
`GIT_COMMON_DIR` do not cover (measured with git 2.39):
- a `GIT_DIR` that is a symlink or a `gitdir:` file is followed by git;
- the files ref backend reads `<git dir>/commondir` even when `GIT_COMMON_DIR` is set, so a
  rewritten `commondir` would send branch reads and writes to a directory the agent chose.
`check_git_dir` refuses both. A worktree's own `.git` pointer needs no check (never used: the
service passes `GIT_DIR`), `gitfile_target` only reads it for a warning.
"""

from __future__ import annotations

import os
import shutil
import stat
import sys
from collections.abc import Callable
from pathlib import Path

from app.errors import WorkspaceError


def same_path(a: str | Path, b: str | Path) -> bool:
    return os.path.realpath(a) == os.path.realpath(b)


def is_real_dir(path: Path) -> bool:
    return path.is_dir() and not path.is_symlink()


def check_git_dir(git_dir: Path, common_dir: Path) -> None:
    """Raise WorkspaceError unless `git_dir` (when it exists) is a real directory whose `commondir`
    file, if any, leads to `common_dir`."""
    if git_dir.is_symlink() or (git_dir.exists() and not git_dir.is_dir()):
        raise WorkspaceError(f"{git_dir} was tampered with: not a plain directory")
    pointer = git_dir / "commondir"
    if pointer.is_symlink() or pointer.exists():
        try:
            target = pointer.read_text().strip()
        except OSError:
            target = ""
        if not target or not same_path(git_dir / target, common_dir):
            raise WorkspaceError(f"{pointer} was tampered with: it names {target!r}, not {common_dir}")


def gitfile_target(worktree_path: Path) -> str:
    """What the worktree's `.git` file names ("" when it is missing or not a `gitdir:` file)."""
    try:
        text = (worktree_path / ".git").read_text(errors="replace")
    except OSError:
        return ""
    return text.strip().removeprefix("gitdir:").strip() if text.startswith("gitdir:") else ""


def _writable_then_retry(func: Callable[[str], object], failed: str, _exc: BaseException) -> None:
    """A directory the agent made read-only: make its parent (and itself) writable, retry once."""
    os.chmod(os.path.dirname(failed), stat.S_IRWXU)
    if os.path.isdir(failed) and not os.path.islink(failed):
        os.chmod(failed, stat.S_IRWXU)
    func(failed)


def rmtree_writable(path: str | Path) -> None:
    """`shutil.rmtree` (links inside are removed, never followed) that gets past directories left
    read-only (a non-root service cannot delete entries of a directory without write permission).
    Raises OSError."""
    if sys.version_info >= (3, 12):
        shutil.rmtree(path, onexc=_writable_then_retry)
    else:  # `onerror` is the 3.11 spelling (deprecated from 3.12 on)
        shutil.rmtree(path, onerror=lambda f, p, e: _writable_then_retry(f, p, e[1]))
