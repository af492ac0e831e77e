"""app/hardening.py: a hardened process's memory and environment block are closed to its own uid.

Every check runs in a separate process (hardening the pytest process would be permanent). The
proof that matters needs two unprivileged processes of one uid, so it runs only as root (to drop
both to `nobody` with setpriv) and is skipped, with the reason, otherwise.
"""

from __future__ import annotations

import json
import os
import secrets
import select
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from app import hardening
from app.hardening import harden_process, is_dumpable
from tests.procs import run_captured

ROOT = Path(__file__).resolve().parent.parent
SOURCE = Path(hardening.__file__).read_text(encoding="utf-8")
NOBODY = ["--reuid=65534", "--regid=65534", "--clear-groups"]
CANARY_NAME = "AUTO_CODE_TEST_CANARY"

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="prctl is Linux-only")

# Runs the real module source (passed as argv[1], so no file access is needed as `nobody`), scrubs
# the canary from os.environ the way app/main.py scrubs secrets, hardens when asked, then waits.
TARGET = """
import json, os, sys
ns = {"__name__": "hardening"}
exec(compile(sys.argv[1], "app/hardening.py", "exec"), ns)
os.environ.pop("AUTO_CODE_TEST_CANARY")
did = ns["harden_process"]() if sys.argv[2] == "harden" else []
print(json.dumps({"did": did, "dumpable": ns["is_dumpable"]()}), flush=True)
sys.stdin.read()
"""

# What another process of the same uid sees.
READER = """
import json, sys
pid, canary = sys.argv[1], sys.argv[2].encode()
out = {}
try:
    with open(f"/proc/{pid}/environ", "rb") as f:
        out["environ"] = "canary" if canary in f.read() else "no_canary"
except PermissionError:
    out["environ"] = "denied"
try:
    open(f"/proc/{pid}/mem", "rb").close()
    out["mem"] = "opened"
except PermissionError:
    out["mem"] = "denied"
print(json.dumps(out))
"""


def run(argv: list[str], *, env: dict[str, str] | None = None,
        timeout: float = 30) -> subprocess.CompletedProcess[str]:
    return run_captured(argv, env=env, timeout=timeout)


def in_subprocess(code: str) -> dict[str, object]:
    """Run `code` in a fresh interpreter of this project; it prints one JSON object."""
    done = run([sys.executable, "-c", code], env={**os.environ, "PYTHONPATH": str(ROOT)})
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


class TestHardenProcess:
    def test_the_process_is_non_dumpable_afterwards(self) -> None:
        result = in_subprocess(
            "import json; from app.hardening import harden_process, is_dumpable\n"
            "before = is_dumpable(); did = harden_process()\n"
            "print(json.dumps({'before': before, 'did': did, 'after': is_dumpable()}))"
        )
        assert result == {"before": True, "did": ["non_dumpable"], "after": False}

    def test_a_child_it_executes_is_dumpable_again(self) -> None:
        # The agent's CLI, git and the checks are not affected (and carry no service secrets).
        result = in_subprocess(
            "import json, subprocess, sys; from app.hardening import harden_process\n"
            "harden_process()\n"
            "child = subprocess.run([sys.executable, '-c', 'from app.hardening import is_dumpable;"
            " print(is_dumpable())'], capture_output=True, text=True, timeout=30)\n"
            "print(json.dumps({'child': child.stdout.strip()}))"
        )
        assert result == {"child": "True"}

    def test_off_linux_it_does_nothing(self, monkeypatch: pytest.MonkeyPatch) -> None:
        monkeypatch.setattr(sys, "platform", "darwin")
        assert harden_process() == []
        assert is_dumpable() is None


# ----- the real proof: one unprivileged uid, two processes ------------------------------------------
def _nobody_python() -> tuple[list[str], str]:
    """[setpriv ..., python] that runs as uid 65534, or [] and the reason it cannot."""
    if os.geteuid() != 0:
        return [], "not root: cannot start two processes as `nobody`"
    setpriv = shutil.which("setpriv")
    if setpriv is None:
        return [], "no setpriv (util-linux) to drop to `nobody`"
    # This project's interpreter may sit under /root (unreadable to nobody); the module is stdlib-only.
    for python in dict.fromkeys([os.path.realpath(sys.executable), "/usr/bin/python3"]):
        argv = [setpriv, *NOBODY, python]
        if os.path.exists(python) and run([*argv, "-c", "pass"]).returncode == 0:
            return argv, ""
    return [], "no Python interpreter that uid 65534 may execute"


@pytest.fixture(scope="module")
def as_nobody() -> list[str]:
    argv, reason = _nobody_python()
    if not argv:
        pytest.skip(reason)
    return argv


def read_as_same_uid(as_nobody: list[str], *, harden: bool) -> tuple[dict[str, object], dict[str, str]]:
    """Start a target as nobody (hardened or not), then read its /proc files as another nobody."""
    canary = secrets.token_hex(16)
    env = {"PATH": os.defpath, CANARY_NAME: canary}
    target = subprocess.Popen([*as_nobody, "-c", TARGET, SOURCE, "harden" if harden else "plain"], cwd="/",
                              env=env, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                              text=True, start_new_session=True)
    try:
        ready, _, _ = select.select([target.stdout], [], [], 30)
        assert ready, "the target process did not start"
        line = target.stdout.readline() if target.stdout else ""
        assert line, f"the target process failed: {target.stderr.read() if target.stderr else ''}"
        state = json.loads(line)
        done = run([*as_nobody, "-c", READER, str(target.pid), canary], env={"PATH": os.defpath})
        assert done.returncode == 0, done.stderr
        return state, json.loads(done.stdout)
    finally:
        os.killpg(target.pid, signal.SIGKILL)
        target.communicate()


class TestSameUidReader:
    def test_without_hardening_the_scrubbed_secret_is_still_readable(self, as_nobody: list[str]) -> None:
        # The control: os.environ.pop does not touch the environment block in /proc/<pid>/environ.
        state, seen = read_as_same_uid(as_nobody, harden=False)
        assert state == {"did": [], "dumpable": True}
        assert seen["environ"] == "canary"

    def test_hardened_process_refuses_environ_and_mem(self, as_nobody: list[str]) -> None:
        state, seen = read_as_same_uid(as_nobody, harden=True)
        assert state == {"did": ["non_dumpable"], "dumpable": False}
        assert seen == {"environ": "denied", "mem": "denied"}
