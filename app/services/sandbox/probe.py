"""The start-up self-check: prove, with a real sandboxed call, that the sandbox holds.

A probe process runs inside the sandbox exactly as a lint command would and tries what an attacker
would: read a file of the workspace outside its worktree (the database's neighbour), read the
database file itself, connect to a port the service opened on 127.0.0.1, find a secret variable in
its environment, and leave a double-forked `setsid` daemon behind. The check passes only when every
attempt failed, the host-side listener accepted nothing, and the daemon is gone once the call has
returned. Anything else raises `SandboxError` naming what got through; in production (or with
SANDBOX_SELF_CHECK=true) the service then refuses to start.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import secrets
import shutil
import socket
import sys
import time
from pathlib import Path

from app.config import Settings
from app.errors import SandboxError
from app.proc import is_secret_env_name, scrubbed_env
from app.services.sandbox.base import Sandbox, SandboxCall

log = logging.getLogger(__name__)

DAEMON_GRACE_S = 2.0  # how long a killed namespace may take to disappear from the host's /proc

# Runs inside the sandbox with `python -I -S -c PROBE secret db port marker`; prints one JSON line.
PROBE = r"""
import json, os, socket, sys, time
secret, db, port, marker = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4]
got = {}
def attempt(name, fn):
    try:
        fn()
        got[name] = "reached"
    except Exception as exc:
        got[name] = "blocked: " + type(exc).__name__
attempt("workspace_file", lambda: open(secret).read())
if db:
    attempt("database", lambda: open(db, "rb").read(16))
attempt("network", lambda: socket.create_connection(("127.0.0.1", port), timeout=2).close())
leaked = sorted(k for k in os.environ if k in json.loads(sys.argv[5]))
got["environment"] = ("reached: " + ",".join(leaked)) if leaked else "blocked: clean"
pid = os.fork()
if pid == 0:
    os.setsid()
    if os.fork() == 0:
        null = os.open(os.devnull, os.O_RDWR)
        for fd in (0, 1, 2):
            os.dup2(null, fd)  # let go of the caller's pipe, as a real daemon would
        os.execv(sys.executable, [sys.executable, "-I", "-S", "-c", "import time; time.sleep(60)", marker])
    os._exit(0)
os.waitpid(pid, 0)
time.sleep(0.1)
print(json.dumps(got), flush=True)
"""


def _daemon_alive(marker: str) -> bool:
    needle = marker.encode()
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        with contextlib.suppress(OSError):
            cmdline = Path(entry.path, "cmdline").read_bytes()
            state = Path(entry.path, "stat").read_text().rsplit(")", 1)[1].split()[0]
            if needle in cmdline and state != "Z" and cmdline.startswith(sys.executable.encode()):
                return True
    return False


def _database_file(settings: Settings) -> str:
    url = settings.system_database_url
    return url.removeprefix("sqlite:///") if url.startswith("sqlite:///") else ""


async def self_check(sandbox: Sandbox, settings: Settings) -> dict[str, str]:
    """Run the probe; return what each attempt met. Raises SandboxError when anything got through."""
    root = settings.workspace_dir / "sandbox-probe" / secrets.token_hex(6)
    worktree = root / "worktree"
    worktree.mkdir(parents=True)
    secret_file = root / "outside.txt"
    secret_file.write_text(secrets.token_hex(16))
    marker = f"auto-code-probe-daemon-{secrets.token_hex(8)}"
    listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    listener.bind(("127.0.0.1", 0))
    listener.listen(8)
    listener.setblocking(False)
    port = listener.getsockname()[1]
    # A secret-looking variable in the environment the caller passes: the sandbox must not add any,
    # and this proves the probe would see one (names only; values are never printed).
    names = [*sorted(n for n in os.environ if is_secret_env_name(n)), "AUTO_CODE_PROBE_SECRET"]
    started = time.monotonic()
    try:
        res = await sandbox.run(
            [sys.executable, "-I", "-S", "-c", PROBE, str(secret_file), _database_file(settings), str(port),
             marker, json.dumps(names)],
            SandboxCall(worktree=worktree, env=scrubbed_env()),
            timeout=30, max_output_chars=4000,
        )
        problems: list[str] = []
        try:
            got: dict[str, str] = json.loads(res.output.strip().splitlines()[-1])
        except (ValueError, IndexError):
            raise SandboxError(f"sandbox self-check failed: the probe did not report "
                               f"(exit {res.exit_code}): {res.output[-500:]}") from None
        problems += [f"{name} {what}" for name, what in got.items() if not what.startswith("blocked")]
        with contextlib.suppress(BlockingIOError):
            conn, _ = listener.accept()
            conn.close()
            problems.append("a connection reached the service's loopback listener")
        for _ in range(int(DAEMON_GRACE_S / 0.05)):  # a dying namespace takes a moment to vanish
            if not _daemon_alive(marker):
                break
            await asyncio.sleep(0.05)
        if _daemon_alive(marker):
            problems.append("a daemon outlived the call")
            _kill_marked(marker)
    finally:
        listener.close()
        shutil.rmtree(root, ignore_errors=True)
    if problems:
        raise SandboxError(f"sandbox self-check failed ({sandbox.name}): " + "; ".join(problems))
    got["duration_ms"] = f"{(time.monotonic() - started) * 1000:.0f}"
    log.info("sandbox_self_check_passed", extra={"sandbox": sandbox.name, **got})
    return got


def _kill_marked(marker: str) -> None:
    needle = marker.encode()
    for entry in os.scandir("/proc"):
        if entry.name.isdigit():
            with contextlib.suppress(OSError):
                if needle in Path(entry.path, "cmdline").read_bytes():
                    os.kill(int(entry.name), 9)
