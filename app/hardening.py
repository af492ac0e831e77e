"""Keep the service's secrets out of reach of code that runs as the service's own uid.

The threat: the agent (the Claude Code CLI, a child of the service) and the lint/test commands it
edits run as the service's uid. Removing secrets from `os.environ` does not remove them from the
process's initial environment block, which any process of the same uid can read through
`/proc/<service pid>/environ`; `/proc/<pid>/mem` and ptrace expose the rest of the memory (the
`Settings` object included).

`harden_process()` marks the process non-dumpable (`prctl(PR_SET_DUMPABLE, 0)`). The kernel then
makes its `/proc/<pid>/*` files root-owned and refuses `environ`, `mem` and ptrace to every
process without CAP_SYS_PTRACE, same uid or not. Call it as early as possible in the serving
process (the secrets are in the environment block from exec on).

What it does not cover, by kernel design:
- Children: non-dumpability is reset by execve, so the CLI, git and the checks are ordinary
  processes again. That is intended: they get a scrubbed environment (a child that is handed a
  secret, such as git's push, is readable by the same uid while it runs).
- A later uid/gid change resets the flag (to fs.suid_dumpable): call it after dropping privileges.
- Side effect on the process itself (non-root): its own root-owned 0400 /proc files
  (/proc/self/environ, /proc/self/io) become unreadable to it; stat, status, fd and maps still work.
- The parent: whatever started the service (a shell, `uv run`) keeps its own copy of the
  environment. In the container the parent is tini running as root, which the service uid cannot
  read (see the Dockerfile).

Contract: returns what it did (one entry per measure; empty where there is nothing to do, i.e.
off Linux); raises OSError if the kernel refuses or the flag does not read back as set.
"""

from __future__ import annotations

import ctypes
import os
import sys

# <linux/prctl.h>
PR_GET_DUMPABLE = 3
PR_SET_DUMPABLE = 4


def _prctl(option: int, arg: int = 0) -> int:
    """Call prctl(2) through the C library already loaded into the interpreter."""
    libc = ctypes.CDLL(None, use_errno=True)
    fn = libc.prctl
    fn.argtypes = [ctypes.c_int, ctypes.c_ulong, ctypes.c_ulong, ctypes.c_ulong, ctypes.c_ulong]
    fn.restype = ctypes.c_int
    result = fn(option, arg, 0, 0, 0)
    if result < 0:
        err = ctypes.get_errno()
        raise OSError(err, f"prctl({option}) failed: {os.strerror(err)}")
    return int(result)


def is_dumpable() -> bool | None:
    """Whether other same-uid processes may read this one's /proc files; None off Linux."""
    if not sys.platform.startswith("linux"):
        return None
    return _prctl(PR_GET_DUMPABLE) != 0


def harden_process() -> list[str]:
    """Make this process non-dumpable (Linux); return the measures taken (see the module docstring)."""
    if not sys.platform.startswith("linux"):
        return []
    _prctl(PR_SET_DUMPABLE, 0)
    if is_dumpable():  # never trust a security measure that cannot be read back
        raise OSError("prctl(PR_SET_DUMPABLE, 0) did not take effect")
    return ["non_dumpable"]
