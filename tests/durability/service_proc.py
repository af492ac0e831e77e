"""Real auto-code services as subprocesses, for the durability tests (restart, dedup, scale-out).

`ServiceProc` runs `python -m app.cli serve --host 127.0.0.1 --port <free>` (the interpreter running
pytest, so no `uv run` start-up) in its own process group, with an environment built only from what
the test passes (conftest's `settings_env` + the demo remote + `MOCK_CLAUDE_SCRIPT`) plus PATH/HOME:
nothing leaks in from the test process or from a `.env` (the working directory is the service's
own temp directory). `start()` waits for `GET /health`; `kill9()` sends SIGKILL to the whole group
(the crash under test); `stop()` is SIGTERM then SIGKILL. The `procs` fixture of the test modules
keeps every process it made and kills the groups that are still alive at teardown, and an `atexit`
hook does the same if pytest itself is interrupted, so no service outlives its test.

`recover_cli(...)` runs the documented `auto-code recover --executor ID` the same way (argument
list, timeout, process-group kill) and returns its parsed JSON output.

Reading the database directly (`db_rows`) is how the tests see what the API does not show: the
DBOS executor of a run, and the run's log lines (one line per execution of a step).
"""

from __future__ import annotations

import atexit
import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import sqlalchemy as sa

from app.services.runner.store import make_engine

ROOT = Path(__file__).resolve().parents[2]
START_TIMEOUT_S = 30.0
_LIVE: dict[int, subprocess.Popen[bytes]] = {}  # pid -> process, for the atexit safety net


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def base_env(**settings: str) -> dict[str, str]:
    """The child's whole environment: the given settings, plus what git and Python need."""
    env = {name: os.environ[name] for name in ("PATH", "HOME", "LANG", "TMPDIR") if name in os.environ}
    env.update(PYTHONPATH=str(ROOT), PYTHONUNBUFFERED="1", PYTHONDONTWRITEBYTECODE="1",
               CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC="1")
    env.update(settings)
    return env


def _kill_group(proc: subprocess.Popen[bytes], sig: int) -> None:
    try:
        os.killpg(proc.pid, sig)  # start_new_session=True: the group id is the child's pid
    except ProcessLookupError:
        pass


@atexit.register
def _kill_leftovers() -> None:
    for proc in list(_LIVE.values()):
        if proc.poll() is None:  # an exited leader's pid may belong to someone else by now
            _kill_group(proc, signal.SIGKILL)


@dataclass
class ServiceProc:
    """One service process. `env` is its full environment (see `base_env`); `home` its own dir."""

    name: str
    env: dict[str, str]
    home: Path
    port: int = field(default_factory=free_port)
    proc: subprocess.Popen[bytes] | None = None
    starts: int = 0

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def workspace(self) -> Path:
        return Path(self.env["WORKSPACE_DIR"])

    @property
    def log_path(self) -> Path:
        return self.home / f"{self.name}.log"

    def start(self, timeout: float = START_TIMEOUT_S) -> None:
        self.launch()
        self.wait_healthy(timeout)

    def launch(self) -> None:
        """Start the process without waiting (start several, then `wait_healthy` each)."""
        assert not self.alive, f"{self.name} is already running"
        self.home.mkdir(parents=True, exist_ok=True)
        self.starts += 1
        with self.log_path.open("ab") as log:
            log.write(f"\n===== start #{self.starts} =====\n".encode())
            log.flush()
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "app.cli", "serve", "--host", "127.0.0.1", "--port", str(self.port)],
                cwd=self.home, env=self.env, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        _LIVE[self.proc.pid] = self.proc

    def wait_healthy(self, timeout: float = START_TIMEOUT_S) -> None:
        assert self.proc is not None
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise AssertionError(f"{self.name} exited with {self.proc.returncode}:\n{self.log_tail()}")
            try:
                if httpx.get(f"{self.url}/health", timeout=2).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.05)
        self.kill9()
        raise AssertionError(f"{self.name} not healthy within {timeout}s:\n{self.log_tail()}")

    @property
    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def kill9(self) -> None:
        """The crash: SIGKILL to the whole process group, no chance to clean up."""
        if self.proc is None:
            return
        _kill_group(self.proc, signal.SIGKILL)
        self.proc.wait(timeout=10)
        _LIVE.pop(self.proc.pid, None)

    def stop(self, grace: float = 10.0) -> None:
        if self.proc is None:
            return
        if self.proc.poll() is None:
            _kill_group(self.proc, signal.SIGCONT)  # a paused group would not act on SIGTERM
            _kill_group(self.proc, signal.SIGTERM)
            try:
                self.proc.wait(timeout=grace)
            except subprocess.TimeoutExpired:
                pass
        self.kill9()

    def pause(self) -> None:
        """SIGSTOP the group: a host that is alive but takes nothing from the queue meanwhile."""
        assert self.proc is not None
        _kill_group(self.proc, signal.SIGSTOP)

    def resume(self) -> None:
        assert self.proc is not None
        _kill_group(self.proc, signal.SIGCONT)

    def restart(self) -> None:
        self.kill9()
        self.start()

    def log_tail(self, lines: int = 40) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return "(no log)"

    # ----- HTTP -----
    def deliver(self, key: str, summary: str = "Do the thing") -> dict[str, Any]:
        resp = httpx.post(f"{self.url}/webhook/jira", json={"key": key, "summary": summary}, timeout=10)
        assert resp.status_code == 202, f"{resp.status_code} {resp.text}\n{self.log_tail()}"
        return resp.json()

    def run(self, run_id: str) -> dict[str, Any]:
        resp = httpx.get(f"{self.url}/runs/{run_id}", timeout=10)
        assert resp.status_code == 200, resp.text
        return resp.json()

    def runs(self, ticket: str) -> list[dict[str, Any]]:
        resp = httpx.get(f"{self.url}/runs", params={"ticket": ticket, "limit": 500}, timeout=10)
        assert resp.status_code == 200, resp.text
        return resp.json()

    def wait_run(self, run_id: str, until: Callable[[dict[str, Any]], bool], timeout: float = 30,
                 what: str = "condition") -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        run: dict[str, Any] = {}
        while time.monotonic() < deadline:
            run = self.run(run_id)
            if until(run):
                return run
            time.sleep(0.1)
        raise AssertionError(f"{what} not reached for {run_id} in {timeout}s: {run}\n{self.log_tail()}")


def step_status(run: dict[str, Any], name: str) -> str | None:
    return next((s["status"] for s in run["steps"] if s["name"] == name), None)


def is_final(run: dict[str, Any]) -> bool:
    return run["status"] in {"succeeded", "failed", "no_changes", "cancelled"}


def recover_cli(home: Path, env: dict[str, str], dead_executor: str,
                timeout: float = 60) -> list[dict[str, str]]:
    """`auto-code recover --executor <dead>` as a subprocess; its printed JSON list."""
    home.mkdir(parents=True, exist_ok=True)
    proc = subprocess.Popen(
        [sys.executable, "-m", "app.cli", "recover", "--executor", dead_executor],
        cwd=home, env=env, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
        start_new_session=True,
    )
    _LIVE[proc.pid] = proc
    try:
        out, err = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        _kill_group(proc, signal.SIGKILL)
        proc.communicate()
        raise AssertionError(f"auto-code recover did not finish in {timeout}s") from None
    finally:
        _kill_group(proc, signal.SIGKILL)  # whatever it left in its group
        _LIVE.pop(proc.pid, None)
    text = out.decode(errors="replace")
    assert proc.returncode == 0, f"recover exited {proc.returncode}:\n{text}\n{err.decode(errors='replace')}"
    # Log lines are JSON objects on their own line; the result is the indented JSON list.
    lines = text.splitlines()
    start = next((i for i, line in enumerate(lines) if line.startswith("[")), None)
    assert start is not None, f"no JSON list in recover output:\n{text}"
    return json.loads("\n".join(lines[start:]))


def db_rows(url: str, sql: str, **params: Any) -> list[dict[str, Any]]:
    """Rows of one read-only query on the service's database (SQLite file URL or PostgreSQL)."""
    engine = make_engine(url)
    try:
        with engine.connect() as conn:
            return [dict(r) for r in conn.execute(sa.text(sql), params).mappings().all()]
    finally:
        engine.dispose()


def run_logs(url: str, run_id: str) -> list[str]:
    rows = db_rows(url, "select message from ac_run_logs where run_id = :r order by id", r=run_id)
    return [r["message"] for r in rows]


def workflow_executors(url: str) -> dict[str, tuple[str, str]]:
    """DBOS's view: workflow id -> (status, executor_id), for every run of the queue."""
    table = "dbos.workflow_status" if url.startswith("postgres") else "workflow_status"
    rows = db_rows(url, f"select workflow_uuid, status, executor_id from {table}")  # noqa: S608
    return {r["workflow_uuid"]: (r["status"], r["executor_id"]) for r in rows}


class Procs:
    """Every process a test started; `cleanup()` (the fixture's teardown) kills what is left."""

    def __init__(self) -> None:
        self.all: list[ServiceProc] = []

    def new(self, name: str, env: dict[str, str], home: Path) -> ServiceProc:
        svc = ServiceProc(name=name, env=env, home=home)
        self.all.append(svc)
        return svc

    def cleanup(self) -> None:
        for svc in self.all:
            try:
                svc.stop(grace=5)
            except Exception:
                if svc.proc is not None:
                    _kill_group(svc.proc, signal.SIGKILL)
