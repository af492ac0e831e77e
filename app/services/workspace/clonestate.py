"""The shared clone's own files, put back to a state the service chose.

git reads `<common dir>/config` on every call in the shared clone or a worktree, and that file is
the one config source the service cannot switch off (system and global are off, see gitenv.py).
Whoever can write it can define `filter.<d>.clean` (run by `git add` for a path whose
`.gitattributes` says `filter=<d>`), `diff.<d>.textconv`, `core.fsmonitor`, `include.path`,
`extensions.worktreeConfig` (then `config.worktree` files are read too)... So the service never
trusts it: `restore_clone_state` rewrites it from what the service itself needs and resets the
other places git looks for programs or rules:
- `config`: core settings of a non-bare clone, the configured URL as `origin` and its refspec
  (the object format is kept when it is sha256: a wrong one only breaks the repo, runs nothing);
  for a partial clone (`partial`, the service's own choice, never read from the clone) `origin`
  is also the promisor remote, so git accepts the blobs it never fetched as promised, not missing;
- `config.worktree` here and `worktrees/*/config.worktree`: removed;
- `hooks/`: emptied (hooks are off anyway: `core.hooksPath=/dev/null`);
- `info/`: only a default `exclude`; no `attributes`, `grafts`, `sparse-checkout`;
- `objects/info/alternates`, `objects/info/http-alternates`: removed (the clone borrows nothing);
- `commondir`: removed (layout.py explains why a planted one matters).
Every write is an atomic replace of a file with the same content, so restores by several runs at
once, and git processes reading meanwhile, only ever see the known state.
"""

from __future__ import annotations

import logging
import os
import shutil
import tempfile
from pathlib import Path

logger = logging.getLogger(__name__)

DEFAULT_EXCLUDE = (
    "# git ls-files --others --exclude-from=.git/info/exclude\n"
    "# Lines that start with '#' are comments.\n"
)
_OBJECT_FORMATS = ("sha1", "sha256")


def known_config(url: str, object_format: str = "sha1", *, partial: bool = False) -> str:
    """The shared clone's config as the service sets it. `url` is the configured repository
    (never a value read from the clone); `partial`: the clone was made with `--filter=blob:none`
    (the service never lets that clone fetch by itself: see gitenv.py, `protocol.allow`)."""
    if any(c in url for c in "\n\r\0"):
        raise ValueError("a repository URL cannot contain a line break")
    quoted = url.replace("\\", "\\\\").replace('"', '\\"')
    version = 1 if object_format == "sha256" or partial else 0
    lines = ["[core]", f"\trepositoryformatversion = {version}",
             "\tfilemode = true", "\tbare = false", "\tlogallrefupdates = true"]
    if object_format == "sha256":
        lines += ["[extensions]", "\tobjectformat = sha256"]
    lines += ['[remote "origin"]', f'\turl = "{quoted}"', "\tfetch = +refs/heads/*:refs/remotes/origin/*",
              "\ttagOpt = --no-tags"]
    if partial:
        lines += ["\tpromisor = true", "\tpartialclonefilter = blob:none"]
    return "\n".join(lines) + "\n"


def _object_format(config: Path) -> str:
    """sha256 when the current config says so, else sha1. Read as text: nothing is executed."""
    try:
        text = config.read_text(errors="replace").lower()
    except OSError:
        return "sha1"
    return "sha256" if "objectformat = sha256" in text or "objectformat=sha256" in text else "sha1"


def _write_atomic(path: Path, text: str, tmp_dir: Path) -> None:
    """Replace `path` with `text` through a temporary file in `tmp_dir` (a directory no restore
    iterates, so a concurrent restore never deletes another one's temporary file)."""
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path, ignore_errors=True)
    if path.is_file() and not path.is_symlink():
        try:
            if path.read_text() == text:
                return
        except (OSError, UnicodeDecodeError):
            pass
    fd, tmp = tempfile.mkstemp(prefix=f".auto-code-{path.name}-", dir=tmp_dir)
    try:
        with os.fdopen(fd, "w") as fh:
            fh.write(text)
        os.replace(tmp, path)  # replaces a symlink itself, never what it points at
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _remove(path: Path) -> bool:
    """Delete a file, link or tree; True when something was there."""
    if path.is_symlink() or path.is_file():
        path.unlink(missing_ok=True)
        return True
    if path.is_dir():
        shutil.rmtree(path, ignore_errors=True)
        return True
    return False


def _real_dir(path: Path) -> None:
    """Make `path` a plain directory (a link or file in its place is removed)."""
    if path.is_symlink() or (path.exists() and not path.is_dir()):
        path.unlink()
    path.mkdir(exist_ok=True)


def restore_clone_state(git_dir: Path, url: str, *, partial: bool = False) -> list[str]:
    """Put the shared clone's config, hooks and info back (module docstring); return what was
    changed or removed, relative to `git_dir` (for a log line: a non-empty list means someone
    tampered, or the clone was made by an older version)."""
    changed: list[str] = []
    config = git_dir / "config"
    wanted = known_config(url, _object_format(config), partial=partial)
    try:
        current = config.read_text() if config.is_file() and not config.is_symlink() else None
    except (OSError, UnicodeDecodeError):
        current = None
    if current != wanted:
        _write_atomic(config, wanted, git_dir)
        changed.append("config")
    for planted in (git_dir / "config.worktree", git_dir / "commondir",
                    git_dir / "objects" / "info" / "alternates",
                    git_dir / "objects" / "info" / "http-alternates"):
        if _remove(planted):
            changed.append(str(planted.relative_to(git_dir)))
    worktrees = git_dir / "worktrees"
    if worktrees.is_dir() and not worktrees.is_symlink():
        for entry in worktrees.iterdir():
            if _remove(entry / "config.worktree"):
                changed.append(str((entry / "config.worktree").relative_to(git_dir)))
    for name in ("hooks", "info"):
        directory = git_dir / name
        if directory.is_symlink() or (directory.exists() and not directory.is_dir()):
            changed.append(name)
        _real_dir(directory)
        for entry in directory.iterdir():
            if name == "info" and entry.name == "exclude" and entry.is_file() and not entry.is_symlink():
                continue
            if _remove(entry):
                changed.append(f"{name}/{entry.name}")
    exclude = git_dir / "info" / "exclude"
    try:
        same = exclude.is_file() and not exclude.is_symlink() and exclude.read_text() == DEFAULT_EXCLUDE
    except (OSError, UnicodeDecodeError):
        same = False
    if not same:
        if exclude.is_symlink() or exclude.is_dir():
            _remove(exclude)
        _write_atomic(exclude, DEFAULT_EXCLUDE, git_dir)
        changed.append("info/exclude")
    return changed
