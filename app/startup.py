"""Start-up checks whose failure is one line for the operator, not a traceback.

`auto-code serve` (app/cli.py) runs them before uvicorn starts and turns each failure into one
line, `auto-code: <message>` on stderr with exit code 2: a bad or incomplete configuration (every problem
named), a workspace the service cannot write (with the uid it would need), a sandbox that cannot be
built or fails its self-check. The lifespan runs `check_workspace` too, so `uvicorn app.main:app`
reports an unwritable workspace as such instead of as a database error.
"""

from __future__ import annotations

import os
import secrets
from pathlib import Path

from pydantic import ValidationError

from app.errors import ConfigError


def one_line(text: str) -> str:
    """Multi-line detail (bubblewrap's own message, say) folded into one line."""
    return " / ".join(line.strip() for line in text.splitlines() if line.strip())


def describe_validation_error(exc: ValidationError) -> str:
    """`invalid configuration: NAME: message; ...` - every field, never the rejected value (it may be a
    secret)."""
    problems = []
    for err in exc.errors():
        name = ".".join(str(part) for part in err.get("loc", ())) or "(settings)"
        problems.append(f"{name}: {err.get('msg', 'invalid')}")
    return "invalid configuration: " + "; ".join(problems)


def check_workspace(workspace: Path) -> None:
    """WORKSPACE_DIR exists (created if its parent allows) and this process can create, write and
    remove files in it. Raises ConfigError naming the directory, its owner/mode and this uid."""
    uid, gid = os.getuid(), os.getgid()
    need = f"it must be writable by uid {uid} (gid {gid}), the uid the service runs as"
    try:
        workspace.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise ConfigError(f"WORKSPACE_DIR {workspace} cannot be created ({exc.strerror}): {need}") from None
    if not workspace.is_dir():
        raise ConfigError(f"WORKSPACE_DIR {workspace} is not a directory")
    probe = workspace / f".auto-code-write-check-{secrets.token_hex(4)}"
    try:
        fd = os.open(probe, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        os.close(fd)
        probe.unlink()
    except OSError as exc:
        try:
            st = workspace.stat()
            owner = f"owner uid {st.st_uid}, gid {st.st_gid}, mode {st.st_mode & 0o7777:04o}"
        except OSError:
            owner = "owner unknown"
        raise ConfigError(f"WORKSPACE_DIR {workspace} is not writable ({exc.strerror}; {owner}): {need}; "
                          f"e.g. chown -R {uid}:{gid} it, or mount a volume owned by {uid}") from None
