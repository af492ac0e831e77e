"""`run_captured`: a test's blocking subprocess call with stdout and stderr kept apart (for output
parsed as JSON/YAML), a timeout, and the whole process group killed if it hangs.

`app.proc.run_command_sync` is the service's version; it merges the two streams, which these
callers cannot use."""

from __future__ import annotations

import os
import signal
import subprocess
import time
from collections.abc import Callable
from pathlib import Path


def run_captured(argv: list[str], *, cwd: Path | str = "/", env: dict[str, str] | None = None,
                 timeout: float = 60) -> subprocess.CompletedProcess[str]:
    proc = subprocess.Popen(argv, cwd=cwd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            start_new_session=True)
    try:
        out, err = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.communicate()
        raise
    return subprocess.CompletedProcess(argv, proc.returncode, out, err)


def marked_processes(marker: str) -> list[int]:
    """Live (non-zombie) processes on this host whose command line contains `marker`. Sandboxed
    processes have pids of their own namespace; the host sees them under host pids, found this way."""
    found: list[int] = []
    needle = marker.encode()
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            cmdline = Path(entry.path, "cmdline").read_bytes()
            state = Path(entry.path, "stat").read_text().rsplit(")", 1)[1].split()[0]
        except OSError:
            continue
        if needle in cmdline and state != "Z" and b"bwrap" not in cmdline.split(b"\0", 1)[0]:
            found.append(int(entry.name))
    return found


def wait_until(predicate: Callable[[], bool], within: float = 5.0) -> bool:
    """Poll `predicate` until it holds or `within` seconds pass (a kill is not instantaneous)."""
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.05)
    return predicate()
