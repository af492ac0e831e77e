"""Files the service writes for a follow-up, in places the agent has written before.

Both places are hostile: the worktree comes from the pushed branch (the agent chose its content,
symlinks included), and a run's CLI state directory was writable by that run's agent. So:

- `write_ci_logs` removes whatever sits at `.auto-code-ci` (a planted symlink to a file of the
  service would otherwise be written through), makes the directory itself, and creates each log
  with O_CREAT|O_EXCL|O_NOFOLLOW inside it;
- `copy_transcripts` copies only regular files and real directories from one run's CLI state to
  another's (a symlink there, followed, would copy a file of the service into the new run's state,
  which its agent can read), never following a link.
"""

from __future__ import annotations

import os
import shutil
import stat
from pathlib import Path

LOG_DIR = ".auto-code-ci"


def write_ci_logs(worktree: Path, logs: list[tuple[str, str]]) -> list[str]:
    """Write (file name, text) pairs under `<worktree>/.auto-code-ci/`; their worktree-relative paths."""
    target = worktree / LOG_DIR
    if target.is_symlink() or (target.exists() and not target.is_dir()):
        target.unlink()
    elif target.exists():
        shutil.rmtree(target)
    target.mkdir(mode=0o755)
    written = []
    for name, text in logs:
        if "/" in name or name in ("", ".", ".."):
            raise ValueError(f"not a plain file name: {name!r}")
        fd = os.open(target / name, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o644)
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(text)
        written.append(f"{LOG_DIR}/{name}")
    return written


def remove_ci_logs(worktree: Path) -> None:
    """Remove the log directory (or whatever the agent left at its name: a link is unlinked, never
    followed), so nothing of it is committed."""
    target = worktree / LOG_DIR
    if target.is_symlink() or target.is_file():
        target.unlink()
    elif target.is_dir():
        shutil.rmtree(target, ignore_errors=True)


def copy_transcripts(source: Path, target: Path) -> int:
    """Copy the regular files under `source` to the same places under `target` (links and other
    special files skipped, never followed); the number of files copied."""
    copied = 0
    for root, dirs, files in os.walk(source, followlinks=False):
        here = Path(root)
        rel = here.relative_to(source)
        dirs[:] = [d for d in dirs if not (here / d).is_symlink()]
        (target / rel).mkdir(parents=True, exist_ok=True)
        for name in files:
            src = here / name
            if not stat.S_ISREG(os.lstat(src).st_mode):
                continue
            dst = target / rel / name
            if dst.is_symlink():
                dst.unlink()
            fd = os.open(src, os.O_RDONLY | os.O_NOFOLLOW)
            with os.fdopen(fd, "rb") as fin, open(dst, "wb") as fout:
                shutil.copyfileobj(fin, fout)
            copied += 1
    return copied
