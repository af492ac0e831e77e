"""`auto-code serve` refuses to start with ONE line on stderr and exit code 2, no traceback.

Real subprocesses (`python -m app.cli serve`), each in an empty directory (no `.env`) with a minimal
environment: a bad production configuration (every problem named), a configuration that does not
validate (the rejected value never echoed), a workspace the service cannot write (with the uid it
would need, before any database is opened), bubblewrap missing, and a sandbox self-check that fails.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest

from tests.procs import run_captured

ROOT = Path(__file__).resolve().parent.parent
PROD = {
    "NODE_ENV": "production",
    "REPO_URL": "https://github.com/acme/widgets.git",
    "ANTHROPIC_API_KEY": "sk-ant-test-0123456789abcdef",
    "GH_TOKEN": "ghp_test0123456789abcdef",
    "WEBHOOK_SECRET": "w" * 16 + "-a1b2c3",
    "OPERATOR_TOKEN": "op-0123456789abcdef",
    "ALLOWED_PROJECTS": "PROJ",
}


def serve(tmp_path: Path, env: dict[str, str], prefix: list[str] | None = None):
    base = {"PATH": os.environ.get("PATH", os.defpath), "HOME": str(tmp_path), "LANG": "C.UTF-8",
            "PYTHONPATH": str(ROOT)}
    argv = [*(prefix or []), sys.executable, "-m", "app.cli", "serve", "--port", "1"]
    return run_captured(argv, cwd=tmp_path, env={**base, **env}, timeout=120)


def one_line(done) -> str:
    lines = done.stderr.splitlines()
    assert done.returncode == 2, f"exit {done.returncode}; stderr:\n{done.stderr}"
    assert len(lines) == 1, f"stderr is not one line:\n{done.stderr}"
    assert "Traceback" not in done.stderr + done.stdout
    assert lines[0].startswith("auto-code: ")
    return lines[0]


def test_bad_production_configuration_names_every_problem(tmp_path: Path) -> None:
    line = one_line(serve(tmp_path, {"NODE_ENV": "production", "WORKSPACE_DIR": str(tmp_path / "ws")}))
    assert line.startswith("auto-code: invalid production configuration: ")
    for name in ("REPO_URL", "ANTHROPIC_API_KEY", "GH_TOKEN", "WEBHOOK_SECRET", "OPERATOR_TOKEN",
                 "ALLOWED_PROJECTS"):
        assert name in line


def test_invalid_values_are_named_without_echoing_them(tmp_path: Path) -> None:
    env = {"MAX_CONCURRENT_RUNS": "many-not-a-number", "OPERATOR_TOKEN": " ", "SANDBOX": "chroot",
           "WORKSPACE_DIR": str(tmp_path / "ws")}
    line = one_line(serve(tmp_path, env))
    assert line.startswith("auto-code: invalid configuration: ")
    assert "MAX_CONCURRENT_RUNS" in line and "OPERATOR_TOKEN" in line and "SANDBOX" in line
    assert "many-not-a-number" not in line and "chroot" not in line


def test_workspace_that_cannot_be_created_is_reported_with_the_uid(tmp_path: Path) -> None:
    (tmp_path / "file").write_text("not a directory")
    ws = tmp_path / "file" / "ws"
    line = one_line(serve(tmp_path, {**PROD, "WORKSPACE_DIR": str(ws)}))
    assert f"WORKSPACE_DIR {ws} cannot be created" in line
    assert f"writable by uid {os.getuid()}" in line


def test_unwritable_workspace_is_reported_before_the_database_is_opened(tmp_path: Path) -> None:
    if os.geteuid() == 0:
        # root writes anywhere: run the service as nobody against a root-owned 0755 directory
        # (outside pytest's 0700 base directory, which nobody could not even enter).
        if not os.access("/usr/bin/setpriv", os.X_OK):
            pytest.skip("setpriv not installed")
        base = Path(tempfile.mkdtemp(prefix="auto-code-ws-test-"))
        base.chmod(0o755)
        prefix, uid = ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups"], 65534
    else:
        base, prefix, uid = tmp_path, [], os.getuid()
    ws = base / "ws"
    ws.mkdir()
    ws.chmod(0o555)
    try:
        done = serve(base, {"NODE_ENV": "development", "ALLOWED_PROJECTS": "PROJ", "WORKSPACE_DIR": str(ws)},
                     prefix)
        line = one_line(done)
        assert f"WORKSPACE_DIR {ws} is not writable" in line
        assert f"writable by uid {uid}" in line and "owner uid" in line
        assert list(ws.iterdir()) == []  # no database file, no probe left behind
    finally:
        if base != tmp_path:
            shutil.rmtree(base, ignore_errors=True)


def test_missing_bubblewrap_is_one_line(tmp_path: Path) -> None:
    ws = tmp_path / "ws"
    env = {"ALLOWED_PROJECTS": "PROJ", "WORKSPACE_DIR": str(ws), "SANDBOX_BWRAP_PATH": "/nonexistent/bwrap"}
    line = one_line(serve(tmp_path, env))
    assert "bubblewrap ('/nonexistent/bwrap') is not installed" in line
    assert not (ws / "auto-code.sqlite").exists(), "the database was opened before the sandbox check"


def test_failing_self_check_is_one_line_with_bubblewraps_message(tmp_path: Path) -> None:
    # A `bwrap` that fails as it does in a container without the seccomp profile (two lines).
    fake = tmp_path / "bwrap"
    fake.write_text("#!/bin/sh\necho 'bwrap: No permissions to create new namespace' >&2\n"
                    "echo 'likely because the kernel does not allow it' >&2\nexit 1\n")
    fake.chmod(0o755)
    ws = tmp_path / "ws"
    env = {"ALLOWED_PROJECTS": "PROJ", "WORKSPACE_DIR": str(ws), "SANDBOX_BWRAP_PATH": str(fake),
           "SANDBOX_SELF_CHECK": "true"}
    line = one_line(serve(tmp_path, env))
    assert "sandbox self-check failed" in line
    assert "No permissions to create new namespace / likely because" in line


def test_a_passing_self_check_is_logged_by_serve(tmp_path: Path) -> None:
    """The self-check's result line reaches the service log: `serve` configures logging before it
    proves the sandbox (the operator's only evidence the boundary was checked at start-up)."""
    if shutil.which("bwrap") is None:
        pytest.skip("bubblewrap is not installed (apt-get install bubblewrap)")
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    env = {"PATH": os.environ.get("PATH", os.defpath), "HOME": str(tmp_path), "LANG": "C.UTF-8",
           "PYTHONPATH": str(ROOT), "ALLOWED_PROJECTS": "PROJ", "WORKSPACE_DIR": str(tmp_path / "ws"),
           "SANDBOX_SELF_CHECK": "true"}
    proc = subprocess.Popen([sys.executable, "-m", "app.cli", "serve", "--port", str(port)], cwd=tmp_path,
                            env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            start_new_session=True)
    seen: list[str] = []
    try:
        deadline = time.monotonic() + 120
        assert proc.stdout is not None
        for line in proc.stdout:  # ends when the process exits; the deadline bounds a hang below
            seen.append(line)
            if '"sandbox_self_check_passed"' in line or '"serving"' in line or time.monotonic() > deadline:
                break
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=30)
    assert any('"sandbox_self_check_passed"' in line for line in seen), "".join(seen)[-3000:]


def test_a_bad_public_base_url_is_one_line_naming_it(tmp_path: Path) -> None:
    env = {"PUBLIC_BASE_URL": "auto-code.example.com", "WORKSPACE_DIR": str(tmp_path / "ws")}
    line = one_line(serve(tmp_path, env))
    assert line.startswith("auto-code: invalid configuration: PUBLIC_BASE_URL: ")
    assert "must be an http(s) URL" in line
