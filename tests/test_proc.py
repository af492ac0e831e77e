"""app.proc: real subprocesses — exit codes, capped output, timeouts and cancellation that kill the
whole process group, missing programs, the scrubbed environment."""

from __future__ import annotations

import asyncio
import os
import sys
import threading
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import TypeVar

import pytest

from app.proc import SECRET_ENV_NAMES, run_command, run_command_sync, scrubbed_env

PY = sys.executable
T = TypeVar("T")
# A kill test that hangs fails here within seconds instead of at pytest's 300 s timeout.
BOUND_S = 15.0


async def bounded(aw: Awaitable[T], within: float = BOUND_S) -> T:
    """Await `aw` (a run_command call, or its task) for at most `within` seconds, else fail.

    Plain `asyncio.wait_for` is not enough: its ONE cancellation lands in run_command's own
    kill-and-reap (`except CancelledError: await _kill_group`), which, with a broken group kill,
    waits for the leader forever too. So cancel repeatedly until the task gives up, then fail."""
    task = asyncio.ensure_future(aw)
    done, _ = await asyncio.wait({task}, timeout=within)
    if task in done:
        return task.result()
    for _ in range(10):
        task.cancel()
        done, _ = await asyncio.wait({task}, timeout=1)
        if done:
            break
    pytest.fail(f"not done within {within:g}s: the process group was not killed")


def bounded_sync(fn: Callable[[], T], within: float = BOUND_S) -> T:
    """Run the blocking `fn` in a daemon thread for at most `within` seconds, else fail (the thread
    is left behind; being a daemon, it does not keep pytest from exiting)."""
    box: list[T] = []
    errors: list[BaseException] = []

    def target() -> None:
        try:
            box.append(fn())
        except BaseException as exc:  # re-raised in the caller's thread
            errors.append(exc)

    thread = threading.Thread(target=target, daemon=True)
    thread.start()
    thread.join(within)
    if thread.is_alive():
        pytest.fail(f"not done within {within:g}s: the process group was not killed")
    if errors:
        raise errors[0]
    return box[0]


def pid_gone(pid: int) -> bool:
    """True when the pid no longer runs (absent, or a zombie waiting for PID 1 to reap it)."""
    try:
        with open(f"/proc/{pid}/status") as fh:
            state = next(line for line in fh if line.startswith("State:"))
    except (FileNotFoundError, ProcessLookupError):
        return True
    return "Z" in state.split()[1]


def wait_gone(pid: int, within: float = 3.0) -> bool:
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        if pid_gone(pid):
            return True
        time.sleep(0.05)
    return pid_gone(pid)


# A parent that starts a sleeping grandchild (which ignores SIGTERM), prints both pids, then hangs.
HANG_WITH_GRANDCHILD = """
import os, subprocess, sys, time
child = subprocess.Popen([sys.executable, "-c",
    "import signal, time; signal.signal(signal.SIGTERM, signal.SIG_IGN); time.sleep(600)"])
print(os.getpid(), child.pid, flush=True)
time.sleep(600)
"""


def _pids(output: str) -> tuple[int, int]:
    line = next(ln for ln in output.splitlines() if ln.strip() and ln.split()[0].isdigit())
    parent, child = line.split()[:2]
    return int(parent), int(child)


class TestExitAndOutput:
    async def test_success_merges_stdout_and_stderr(self, tmp_path: Path) -> None:
        code = "import sys; print('out'); print('err', file=sys.stderr)"
        res = await run_command([PY, "-c", code], cwd=tmp_path, env=None, timeout=30)
        assert res.exit_code == 0 and res.ok and not res.timed_out
        assert "out" in res.output and "err" in res.output
        assert res.duration_s > 0

    async def test_failure_exit_code_is_reported(self, tmp_path: Path) -> None:
        res = await run_command([PY, "-c", "raise SystemExit(3)"], cwd=tmp_path, env=None, timeout=30)
        assert res.exit_code == 3 and not res.ok

    async def test_runs_in_cwd(self, tmp_path: Path) -> None:
        res = await run_command([PY, "-c", "import os; print(os.getcwd())"], cwd=tmp_path, env=None,
                                timeout=30)
        assert res.output.strip() == str(tmp_path)

    async def test_stdin_is_fed(self, tmp_path: Path) -> None:
        res = await run_command([PY, "-c", "import sys; print(sys.stdin.read().upper())"], cwd=tmp_path,
                                env=None, timeout=30, stdin=b"hello")
        assert res.output.strip() == "HELLO"

    async def test_big_output_is_capped_keeping_the_end(self, tmp_path: Path) -> None:
        # 5 MB through the pipe: must neither deadlock nor keep it all.
        code = (
            "import sys\n"
            "for i in range(100000): sys.stdout.write(f'line {i:06d} ' + 'x'*40 + '\\n')\n"
            "print('THE END')"
        )
        res = await run_command([PY, "-c", code], cwd=tmp_path, env=None, timeout=60, max_output_chars=1000)
        assert res.exit_code == 0
        assert res.output.rstrip().endswith("THE END")
        assert res.output.startswith("[... ") and "chars cut ...]" in res.output
        body = res.output.split("\n", 1)[1]
        assert len(body) == 1000
        cut = int(res.output.split()[1])
        assert cut + 1000 == 100000 * 53 + len("THE END\n")

    async def test_small_output_is_not_marked(self, tmp_path: Path) -> None:
        res = await run_command([PY, "-c", "print('hi')"], cwd=tmp_path, env=None, timeout=30,
                                max_output_chars=1000)
        assert res.output == "hi\n"

    async def test_event_loop_stays_responsive(self, tmp_path: Path) -> None:
        ticks = 0

        async def ticker() -> None:
            nonlocal ticks
            while True:
                await asyncio.sleep(0.05)
                ticks += 1

        task = asyncio.create_task(ticker())
        await run_command([PY, "-c", "import time; time.sleep(1)"], cwd=tmp_path, env=None, timeout=30)
        task.cancel()
        assert ticks >= 10


class TestMissingProgram:
    async def test_missing_executable_is_a_result(self, tmp_path: Path) -> None:
        res = await run_command(["no-such-program-xyz"], cwd=tmp_path, env=None, timeout=5)
        assert res.exit_code == 127 and not res.ok
        assert "no-such-program-xyz" in res.output

    async def test_missing_cwd_is_named(self, tmp_path: Path) -> None:
        res = await run_command([PY, "-c", "pass"], cwd=tmp_path / "nope", env=None, timeout=5)
        assert res.exit_code == 127 and "does not exist" in res.output

    async def test_not_executable_is_126(self, tmp_path: Path) -> None:
        script = tmp_path / "script.sh"
        script.write_text("#!/bin/sh\necho hi\n")
        res = await run_command([str(script)], cwd=tmp_path, env=None, timeout=5)
        assert res.exit_code == 126


class TestKillGroup:
    async def test_timeout_kills_child_and_grandchild(self, tmp_path: Path) -> None:
        started = time.monotonic()
        res = await bounded(run_command([PY, "-c", HANG_WITH_GRANDCHILD], cwd=tmp_path, env=None,
                                        timeout=1.5))
        assert res.timed_out and res.exit_code is None and not res.ok
        assert time.monotonic() - started < 10
        parent, grandchild = _pids(res.output)
        assert wait_gone(parent) and wait_gone(grandchild)

    async def test_cancel_kills_the_group(self, tmp_path: Path) -> None:
        pid_file = tmp_path / "pids"
        code = HANG_WITH_GRANDCHILD.replace(
            "print(os.getpid(), child.pid, flush=True)",
            f"open({str(pid_file)!r}, 'w').write(f'{{os.getpid()}} {{child.pid}}')",
        )
        task = asyncio.create_task(run_command([PY, "-c", code], cwd=tmp_path, env=None, timeout=120))
        for _ in range(200):
            if pid_file.exists() and pid_file.read_text().strip():
                break
            await asyncio.sleep(0.05)
        parent, grandchild = _pids(pid_file.read_text())
        assert not pid_gone(parent) and not pid_gone(grandchild)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await bounded(task)
        assert wait_gone(parent) and wait_gone(grandchild)

    async def test_backgrounded_straggler_dies_with_the_command(self, tmp_path: Path) -> None:
        code = (
            "import subprocess, sys\n"
            "c = subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(600)'])\n"
            "print(c.pid, flush=True)\n"
        )
        started = time.monotonic()
        res = await bounded(run_command([PY, "-c", code], cwd=tmp_path, env=None, timeout=60))
        assert res.exit_code == 0
        assert time.monotonic() - started < 10  # did not wait for the straggler's pipe
        assert wait_gone(int(res.output.split()[0]))


class TestSync:
    def test_sync_success_and_timeout(self, tmp_path: Path) -> None:
        ok = run_command_sync([PY, "-c", "print('x')"], cwd=tmp_path, env=None, timeout=30)
        assert ok.exit_code == 0 and ok.output.strip() == "x"
        res = bounded_sync(lambda: run_command_sync([PY, "-c", HANG_WITH_GRANDCHILD], cwd=tmp_path,
                                                    env=None, timeout=1.5))
        assert res.timed_out and res.exit_code is None
        parent, grandchild = _pids(res.output)
        assert wait_gone(parent) and wait_gone(grandchild)

    def test_sync_missing_program(self, tmp_path: Path) -> None:
        assert run_command_sync(["no-such-program-xyz"], cwd=tmp_path, env=None, timeout=5).exit_code == 127


class TestScrubbedEnv:
    def test_secrets_never_pass(self, monkeypatch: pytest.MonkeyPatch) -> None:
        names = [*SECRET_ENV_NAMES, "LANGFUSE_SECRET_KEY", "LANGFUSE_PUBLIC_KEY", "AWS_SECRET_ACCESS_KEY"]
        for name in names:
            monkeypatch.setenv(name, "s3cr3t-value")
        monkeypatch.setenv("LANG", "C.UTF-8")
        env = scrubbed_env()
        assert "s3cr3t-value" not in env.values()
        assert env["LANG"] == "C.UTF-8" and env["PATH"] == os.environ["PATH"]

    def test_extra_is_applied(self) -> None:
        env = scrubbed_env({"CI": "true"})
        assert env["CI"] == "true"

    async def test_child_sees_only_the_scrubbed_env(
        self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        monkeypatch.setenv("GH_TOKEN", "ghp_should_not_leak")
        res = await run_command([PY, "-c", "import os; print(sorted(os.environ.items()))"], cwd=tmp_path,
                                env=None, timeout=30)
        assert "ghp_should_not_leak" not in res.output and "GH_TOKEN" not in res.output
