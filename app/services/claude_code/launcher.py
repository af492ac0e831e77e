"""Start the Claude Code CLI in its own session with a scrubbed environment, and kill its tree.

The SDK spawns `cli_path` itself (no `start_new_session`, no way to remove inherited variables), so
`cli_path` points at a tiny launcher written here. The launcher, before `exec`ing the real CLI:
  - deletes the variables named in AUTO_CODE_DROP (see env.py) and its own AUTO_CODE_* variables;
  - calls `setsid()`, so the CLI leads a new session and process group (pgid == its pid) and one
    `killpg` reaches it and the shells/tests it started;
  - writes its pid (unchanged by exec) to AUTO_CODE_PIDFILE, so the client can kill the tree
    without reaching into the SDK's private transport;
  - when AUTO_CODE_SANDBOX holds a JSON argv prefix (the run's bubblewrap command, ending in `--`),
    execs the CLI through it: the pid written is then bubblewrap's, whose death ends the sandbox.
Nothing secret is in the launcher's argv or file; it runs under the service's own interpreter in
isolated mode (`-I`: no PYTHON* variables, no user site).
"""

from __future__ import annotations

import contextlib
import os
import signal
import sys
from pathlib import Path

LAUNCHER_SOURCE = """\
#!{python} -I
# Written by auto-code (app/services/claude_code/launcher.py); rewritten on start-up.
import json, os, sys
env = os.environ
real = env.pop("AUTO_CODE_CLI")
for name in env.pop("AUTO_CODE_DROP", "").split(","):
    if name:
        env.pop(name, None)
pidfile = env.pop("AUTO_CODE_PIDFILE", "")
sandbox = json.loads(env.pop("AUTO_CODE_SANDBOX", "") or "[]")
if not os.access(real, os.X_OK):
    sys.stderr.write(f"auto-code launcher: no executable Claude Code CLI at {{real}}\\n")
    sys.exit(127)
os.setsid()
if pidfile:
    with open(pidfile, "w") as f:
        f.write(str(os.getpid()))
argv = [*sandbox, real, *sys.argv[1:]]
os.execv(argv[0], argv)
"""


def bundled_cli() -> str:
    """The CLI inside the claude-agent-sdk wheel (no Node or npm needed)."""
    import claude_agent_sdk

    return str(Path(claude_agent_sdk.__file__).parent / "_bundled" / "claude")


def write_launcher(directory: Path) -> Path:
    """Write the launcher (atomically: several processes may share the directory) and return it."""
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / "claude-launch"
    tmp = directory / f".claude-launch.{os.getpid()}"
    tmp.write_text(LAUNCHER_SOURCE.format(python=sys.executable))
    tmp.chmod(0o700)
    tmp.replace(path)
    return path


def read_pid(pidfile: Path) -> int | None:
    try:
        return int(pidfile.read_text().strip())
    except (OSError, ValueError):
        return None


def _children_map() -> dict[int, list[int]]:
    children: dict[int, list[int]] = {}
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        try:
            stat = Path(entry.path, "stat").read_text()
        except OSError:
            continue
        # Field 4 (ppid) follows the parenthesised command name, which may itself contain spaces.
        ppid = int(stat.rsplit(")", 1)[1].split()[1])
        children.setdefault(ppid, []).append(int(entry.name))
    return children


def descendants(pid: int) -> list[int]:
    """Every live descendant of `pid` (Linux /proc), children before grandchildren."""
    tree = _children_map() if Path("/proc").is_dir() else {}
    out: list[int] = []
    stack = list(tree.get(pid, []))
    while stack:
        child = stack.pop(0)
        out.append(child)
        stack.extend(tree.get(child, []))
    return out


def kill_tree(pid: int) -> None:
    """SIGKILL the CLI's process group and any descendant that left it (setsid'd children).
    Never raises: a process that is already gone is what we want."""
    family = descendants(pid)
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pid, signal.SIGKILL)
    for p in [pid, *family]:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.kill(p, signal.SIGKILL)
