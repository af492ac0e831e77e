"""The bubblewrap sandbox, for real: each property of base.Sandbox's contract, tried from inside.

Every test runs a real `bwrap` and a real probe (python) inside it, and most pair the attempt with
a control that shows the same attempt succeeds without the sandbox (`Unsandboxed`), so a test
cannot pass because the attempt itself was broken.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import socket
import sys
import threading
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from app.config import Settings
from app.errors import SandboxError
from app.services.sandbox import BwrapSandbox, Endpoint, Sandbox, SandboxCall, Unsandboxed
from tests.conftest import make_settings
from tests.procs import marked_processes, wait_until
from tests.scratch import SCRATCH

PY = sys.executable


# Outside /tmp and HOME, which the sandbox hides wholesale: a workspace there would be hidden for
# the wrong reason. Production's /workspace is such a place; so is a scratch folder of the checkout.


@pytest.fixture
def layout(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[dict[str, Path]]:
    """A workspace with two worktrees, a database file and the service's .env in its cwd."""
    base = SCRATCH / uuid.uuid4().hex[:12]
    ws = base / "ws"
    mine = ws / "worktrees" / "ticket-a"
    other = ws / "worktrees" / "ticket-b"
    for d in (mine, other, ws / "repo" / ".git"):
        d.mkdir(parents=True)
    (other / "secret.txt").write_text("OTHER_TICKET_SECRET")
    (ws / "auto-code.sqlite").write_text("DATABASE_BYTES")
    (ws / "repo" / ".git" / "config").write_text("[core]\n")
    service_cwd = base / "service"
    service_cwd.mkdir()
    (service_cwd / ".env").write_text("GH_TOKEN=DOTENV_SECRET\n")
    monkeypatch.chdir(service_cwd)
    yield {"ws": ws, "mine": mine, "other": other, "env": service_cwd / ".env", "tmp": tmp_path}
    shutil.rmtree(base, ignore_errors=True)


def _settings(layout: dict[str, Path], **env: str) -> Settings:
    return make_settings(layout["ws"], **env)


async def _py(sandbox: Sandbox, code: str, worktree: Path, *args: str, **call: object) -> tuple[int | None, str]:
    res = await sandbox.run([PY, "-c", code, *args], SandboxCall(worktree=worktree, **call),  # type: ignore[arg-type]
                            timeout=30, max_output_chars=20_000)
    return res.exit_code, res.output


READ = "import sys\ntry:\n    print(open(sys.argv[1]).read())\nexcept OSError as e:\n    print('BLOCKED', type(e).__name__)"


class TestFiles:
    @pytest.mark.parametrize("target", ["database", "other_worktree", "shared_clone_config", "dotenv"])
    async def test_what_is_not_visible(self, layout: dict[str, Path], target: str) -> None:
        path = {"database": layout["ws"] / "auto-code.sqlite",
                "other_worktree": layout["other"] / "secret.txt",
                "shared_clone_config": layout["ws"] / "repo" / ".git" / "config",
                "dotenv": layout["env"]}[target]
        s = _settings(layout)
        _, inside = await _py(BwrapSandbox(s), READ, layout["mine"], str(path))
        _, control = await _py(Unsandboxed(), READ, layout["mine"], str(path))
        assert "BLOCKED" not in control  # the read itself works without the sandbox
        assert "BLOCKED" in inside or inside.strip() == "", inside  # .env reads as empty (/dev/null)
        assert path.read_text() not in inside

    async def test_the_worktree_is_writable_and_the_system_is_not(self, layout: dict[str, Path]) -> None:
        code = ("import os\nopen('made.txt','w').write('ok')\n"
                "try:\n    open('/usr/auto-code-x', 'w')\n    print('WROTE')\n"
                "except OSError as e:\n    print('BLOCKED', type(e).__name__)\n"
                "open(os.path.dirname(os.getcwd()) + '/beside', 'w').write('x')")
        rc, out = await _py(BwrapSandbox(_settings(layout)), code, layout["mine"])
        assert rc == 0 and (layout["mine"] / "made.txt").read_text() == "ok"
        assert "BLOCKED" in out and "WROTE" not in out, out
        # Beside the worktree is the sandbox's own tmpfs over the workspace: the write lands there
        # and vanishes with the call; the host's workspace never sees it.
        assert not (layout["mine"].parent / "beside").exists()

    async def test_home_and_tmp_are_fresh_for_every_call(self, layout: dict[str, Path]) -> None:
        sb = BwrapSandbox(_settings(layout))
        plant = ("import os\nopen(os.path.expanduser('~/.bashrc'),'w').write('echo PWNED')\n"
                 "open(os.environ['TMPDIR'] + '/left','w').write('x')\nprint(os.environ['HOME'])")
        rc, home = await _py(sb, plant, layout["mine"])
        assert rc == 0
        look = "import os\nprint(sorted(os.listdir(os.environ['HOME'])), sorted(os.listdir(os.environ['TMPDIR'])))"
        _, listing = await _py(sb, look, layout["mine"])
        home_files, tmp_files = listing.strip().split("] [")
        assert home_files == "[" and "left" not in tmp_files, listing  # nothing the first call left
        assert home.strip() != os.environ.get("HOME")

    async def test_the_state_dir_is_the_only_other_writable_place(self, layout: dict[str, Path]) -> None:
        state = layout["ws"] / "claude-config" / "runs" / "PROJ-1_x"
        other_state = layout["ws"] / "claude-config" / "runs" / "PROJ-2_y"
        other_state.mkdir(parents=True)
        (other_state / "t.jsonl").write_text("OTHER_TRANSCRIPT")
        code = (f"open({str(state / 't.jsonl')!r},'w').write('mine')\n" + READ)
        _, out = await _py(BwrapSandbox(_settings(layout)), code, layout["mine"], str(other_state / "t.jsonl"),
                           state_dir=state)
        assert (state / "t.jsonl").read_text() == "mine"
        assert "OTHER_TRANSCRIPT" not in out and "BLOCKED" in out

    async def test_a_missing_worktree_is_a_sandbox_error(self, layout: dict[str, Path]) -> None:
        with pytest.raises(SandboxError):
            BwrapSandbox(_settings(layout)).wrap(["true"], SandboxCall(worktree=layout["ws"] / "gone"))

    def test_missing_bubblewrap_is_a_clear_error(self, layout: dict[str, Path]) -> None:
        with pytest.raises(SandboxError, match="bubblewrap"):
            BwrapSandbox(_settings(layout, SANDBOX_BWRAP_PATH="/nonexistent/bwrap"))


class TestEnvironment:
    async def test_nothing_is_inherited(self, layout: dict[str, Path], monkeypatch: pytest.MonkeyPatch) -> None:
        monkeypatch.setenv("GH_TOKEN", "ghp_inherited_by_accident")
        code = "import os\nprint(sorted(os.environ))"
        _, out = await _py(BwrapSandbox(_settings(layout)), code, layout["mine"], env={"PATH": "/usr/bin:/bin"})
        assert "GH_TOKEN" not in out
        assert eval(out.strip()) == ["HOME", "PATH", "TMPDIR"] or set(eval(out.strip())) <= {  # noqa: S307
            "HOME", "PATH", "TMPDIR", "PWD", "LC_CTYPE"}


class TestNetwork:
    @pytest.fixture
    def listener(self) -> Iterator[tuple[int, list[bytes]]]:
        srv = socket.socket()
        srv.bind(("127.0.0.1", 0))
        srv.listen(4)
        got: list[bytes] = []

        def accept() -> None:
            while True:
                try:
                    conn, _ = srv.accept()
                except OSError:
                    return
                got.append(conn.recv(100))
                conn.close()

        threading.Thread(target=accept, daemon=True).start()
        yield srv.getsockname()[1], got
        srv.close()

    CONNECT = ("import socket, sys\ntry:\n    s = socket.create_connection(('127.0.0.1', int(sys.argv[1])), 2)\n"
               "    s.sendall(b'hello'); print('CONNECTED')\nexcept OSError as e:\n    print('BLOCKED', e)")

    async def test_no_network_by_default(self, layout: dict[str, Path], listener: tuple[int, list[bytes]]) -> None:
        port, got = listener
        _, inside = await _py(BwrapSandbox(_settings(layout)), self.CONNECT, layout["mine"], str(port))
        assert "BLOCKED" in inside and got == []
        _, control = await _py(Unsandboxed(), self.CONNECT, layout["mine"], str(port))
        assert "CONNECTED" in control and wait_until(lambda: got == [b"hello"])

    async def test_unix_sockets_under_tmp_and_run_are_not_visible(self, layout: dict[str, Path]) -> None:
        path = layout["tmp"] / "svc.sock"  # think: /run/postgresql/.s.PGSQL.5432
        srv = socket.socket(socket.AF_UNIX)
        srv.bind(str(path))
        srv.listen(1)
        code = ("import socket, sys\ns = socket.socket(socket.AF_UNIX)\ntry:\n    s.connect(sys.argv[1])\n"
                "    print('CONNECTED')\nexcept OSError as e:\n    print('BLOCKED', e)")
        try:
            _, out = await _py(BwrapSandbox(_settings(layout)), code, layout["mine"], str(path))
        finally:
            srv.close()
        assert "BLOCKED" in out

    async def test_an_endpoint_reaches_exactly_its_service_socket(self, layout: dict[str, Path],
                                                                  listener: tuple[int, list[bytes]]) -> None:
        path = Path(f"/tmp/ac-test-{uuid.uuid4().hex[:8]}.sock")
        srv = socket.socket(socket.AF_UNIX)
        srv.bind(str(path))
        srv.listen(4)
        got: list[bytes] = []

        def echo() -> None:
            conn, _ = srv.accept()
            data = conn.recv(100)
            got.append(data)
            conn.sendall(b"echo:" + data)
            conn.close()

        threading.Thread(target=echo, daemon=True).start()
        code = ("import socket, sys\ns = socket.create_connection(('127.0.0.1', 8790), 5)\ns.sendall(b'ping')\n"
                "print(s.recv(100).decode())\n" + self.CONNECT.replace("import socket, sys\n", ""))
        port, other = listener
        try:
            rc, out = await _py(BwrapSandbox(_settings(layout)), code, layout["mine"], str(port),
                                endpoints=(Endpoint("model", path, 8790),))
        finally:
            srv.close()
            path.unlink()
        assert rc == 0, out
        assert "echo:ping" in out and got == [b"ping"]
        assert "BLOCKED" in out and other == []  # the endpoint opens nothing else


class TestProcesses:
    async def test_a_double_forked_daemon_dies_with_the_call(self, layout: dict[str, Path]) -> None:
        marker = f"daemon-{uuid.uuid4().hex}"
        code = ("import os, sys, time\nif os.fork() == 0:\n    os.setsid()\n    if os.fork() == 0:\n"
                "        os.execv(sys.executable, [sys.executable, '-c', 'import time; time.sleep(120)', sys.argv[1]])\n"
                "    os._exit(0)\ntime.sleep(0.3)\nprint('parent done')")
        rc, out = await _py(BwrapSandbox(_settings(layout)), code, layout["mine"], marker)
        assert rc == 0 and "parent done" in out
        assert wait_until(lambda: not marked_processes(marker)), marked_processes(marker)

    async def test_the_daemon_survives_without_the_sandbox(self, layout: dict[str, Path]) -> None:
        """Control for the test above: the same daemon outlives an unsandboxed call's group kill."""
        marker = f"daemon-{uuid.uuid4().hex}"
        code = ("import os, sys, time\nif os.fork() == 0:\n    os.setsid()\n    if os.fork() == 0:\n"
                "        os.execv(sys.executable, [sys.executable, '-c', 'import time; time.sleep(30)', sys.argv[1]])\n"
                "    os._exit(0)\ntime.sleep(0.3)")
        await _py(Unsandboxed(), code, layout["mine"], marker)
        try:
            await asyncio.sleep(0.3)
            assert marked_processes(marker)
        finally:
            for pid in marked_processes(marker):
                os.kill(pid, 9)

    async def test_only_its_own_processes_are_visible(self, layout: dict[str, Path]) -> None:
        code = "import os\nprint(sorted(int(p) for p in os.listdir('/proc') if p.isdigit()))"
        _, out = await _py(BwrapSandbox(_settings(layout)), code, layout["mine"])
        pids = eval(out.strip())  # noqa: S307 - our own probe's output
        assert os.getpid() not in pids or len(pids) <= 3, pids
        assert len(pids) <= 3  # bwrap's init, the probe (and perhaps prlimit's exec'd image)


class TestLimits:
    async def test_file_size_limit(self, layout: dict[str, Path]) -> None:
        code = ("import os\ntry:\n    with open('big', 'wb') as f:\n        f.write(b'x' * (3 * 1024 * 1024))\n"
                "    print('WROTE')\nexcept OSError as e:\n    print('BLOCKED', e)")
        _, out = await _py(BwrapSandbox(_settings(layout, SANDBOX_MAX_FILE_MB="1")), code, layout["mine"])
        assert "BLOCKED" in out, out
        _, ok = await _py(BwrapSandbox(_settings(layout, SANDBOX_MAX_FILE_MB="8")), code, layout["mine"])
        assert "WROTE" in ok

    async def test_memory_limit(self, layout: dict[str, Path]) -> None:
        code = "try:\n    b = bytearray(600 * 1024 * 1024)\n    print('ALLOCATED')\nexcept MemoryError:\n    print('BLOCKED')"
        _, out = await _py(BwrapSandbox(_settings(layout, SANDBOX_MEMORY_MB="300")), code, layout["mine"])
        assert "BLOCKED" in out, out
        _, ok = await _py(BwrapSandbox(_settings(layout, SANDBOX_MEMORY_MB="2048")), code, layout["mine"])
        assert "ALLOCATED" in ok

    async def test_wall_time_kills_the_whole_sandbox(self, layout: dict[str, Path]) -> None:
        marker = f"hang-{uuid.uuid4().hex}"
        res = await BwrapSandbox(_settings(layout)).run(
            [PY, "-c", "import time; time.sleep(120)", marker], SandboxCall(worktree=layout["mine"]),
            timeout=1.0, max_output_chars=1000)
        assert res.timed_out and res.exit_code is None
        assert wait_until(lambda: not marked_processes(marker))
