"""`run_captured`: a test's blocking subprocess call with stdout and stderr kept apart (for output
parsed as JSON/YAML), a timeout, and the whole process group killed if it hangs.

`app.proc.run_command_sync` is the service's version; it merges the two streams, which these
callers cannot use."""

from __future__ import annotations

import os
import signal
import subprocess
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
