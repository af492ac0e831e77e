"""What tests/e2e/test_attack_persistence.py needs to perform an attack as a hostile ticket would.

- `Scratch`: a per-test directory OUTSIDE /tmp and HOME (the sandbox hides both wholesale, so a
  workspace under tmp_path would be hidden for the wrong reason; production's /workspace is not
  under /tmp). It holds the service's WORKSPACE_DIR (`ws`), the service user's HOME (`home`) and
  `loot`: the host place the attacks try to reach. Anything that appears in `loot` is a success.
- `LazyRule`: a scripted-model rule whose turns are built from the request being answered (the
  attacker's paths are computed when the session asks, as a model that reads its context would).
- `replace_lint(source)`: the turns that make the agent's own code the repo's lint script
  (`scripts/lint.py`, the demo's LINT_COMMAND): a Read first (the CLI refuses to overwrite a file
  it has not read), then the Write. With ENABLE_LINT=1 the gate runs it in the checks' sandbox and
  the agent may run it with its Bash tool (`Bash(python3 scripts/lint.py:*)`) in the CLI's sandbox.
- `ATTEMPT_PRELUDE`: Python for those scripts: `attempt(name, fn)` prints one line `ATTEMPT <name>:
  OK <what>` or `ATTEMPT <name>: BLOCKED <exception>` - this is what the gate's output in the run's
  record shows. The scripts never print a secret or a marker value (the record is in the database
  the tests search).
"""

from __future__ import annotations

import contextlib
import json
import re
import shutil
import threading
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tests.fakes.anthropic_api import RecordedRequest, Rule, Turn, read, write
from tests.scratch import SCRATCH


@dataclass
class Scratch:
    base: Path

    @property
    def ws(self) -> Path:
        return self.base / "ws"

    @property
    def home(self) -> Path:
        return self.base / "home"

    @property
    def loot(self) -> Path:
        return self.base / "loot"

    def looted(self) -> list[str]:
        """What the attacks left in `loot` (relative names; [] means they got nothing there)."""
        return sorted(str(p.relative_to(self.loot)) for p in self.loot.rglob("*"))

    @classmethod
    @contextlib.contextmanager
    def make(cls) -> Iterator[Scratch]:
        base = SCRATCH / uuid.uuid4().hex[:12]
        scratch = cls(base)
        for d in (scratch.home, scratch.loot):
            d.mkdir(parents=True)
        try:
            yield scratch
        finally:
            shutil.rmtree(base, ignore_errors=True)


_local = threading.local()


@dataclass
class LazyRule(Rule):
    """A `Rule` whose turns come from `build(request)` (called for every request it answers)."""

    build: Callable[[RecordedRequest], list[Turn]] | None = None
    turns: list[Turn] = field(default_factory=list)

    def fits(self, req: RecordedRequest) -> bool:
        ok = super().fits(req)
        if ok:
            _local.req = req  # `_choose` calls turn_for right after, on the same thread
        return ok

    def turn_for(self, step: int) -> Turn:
        assert self.build is not None
        self.turns = self.build(_local.req)
        return super().turn_for(step)


def replace_lint(source: str) -> list[Turn]:
    return [read("{cwd}/scripts/lint.py"), write("{cwd}/scripts/lint.py", source)]


ATTEMPT_PRELUDE = '''\
import os, socket, sqlite3, subprocess, sys, time


def attempt(name, fn):
    try:
        what = fn()
    except BaseException as exc:  # noqa: BLE001 - the report is the point
        print(f"ATTEMPT {name}: BLOCKED {type(exc).__name__}: {str(exc)[:120]}", flush=True)
        return False
    print(f"ATTEMPT {name}: OK {what}", flush=True)
    return True


def put(path, text, mode="w"):
    with open(path, mode) as fh:
        fh.write(text)
    return "written"

'''


def lint_source(body: str, **constants: Any) -> str:
    """A complete scripts/lint.py: the prelude, `NAME = <json value>` per constant, then `body`;
    it always ends with exit 0 (so the gate passes and the run goes on to what the attack waits for)."""
    consts = "".join(f"{name} = {json.dumps(value)}\n" for name, value in constants.items())
    return ATTEMPT_PRELUDE + consts + "\n" + body.rstrip() + '\n\nprint("lint: 0 problem(s)")\nsys.exit(0)\n'


def attempts(output: str) -> dict[str, str]:
    """`ATTEMPT <name>: <verdict...>` lines of a gate's output, by name."""
    found: dict[str, str] = {}
    for m in re.finditer(r"^ATTEMPT (.+?): (OK|BLOCKED)(.*)$", output, re.MULTILINE):
        found[m.group(1)] = (m.group(2) + m.group(3)).strip()
    return found


def lint_output(run: dict[str, Any]) -> str:
    from tests.e2e.conftest import step

    rounds = step(run, "lint")["detail"]["rounds"]
    return "\n".join(r.get("output", "") for r in rounds if r.get("kind") == "check")


def project_key(path: Path | str) -> str:
    """The CLI's per-project directory name for a cwd (`projects/<key>`), as bundled CLI 2.1.329
    names it: every character that is not a letter or digit becomes `-`."""
    return re.sub(r"[^A-Za-z0-9]", "-", str(path))


def project_keys(path: Path | str) -> list[str]:
    """The CLI's per-project directory names for a cwd (`projects/<key>`): `/` -> `-`, and the
    variant where every non-alphanumeric character becomes `-` (both, so a guess never misses)."""
    s = str(path)
    return sorted({s.replace("/", "-"), re.sub(r"[^A-Za-z0-9]", "-", s)})


def files_containing(root: Path, needle: bytes) -> list[str]:
    """Every regular file under `root` whose bytes contain `needle`."""
    if not root.exists():
        return []
    hits = []
    for path in root.rglob("*"):
        try:
            if path.is_file() and not path.is_symlink() and needle in path.read_bytes():
                hits.append(str(path))
        except OSError:
            continue
    return hits


def database_files(ws: Path) -> list[Path]:
    return sorted(p for p in ws.glob("auto-code.sqlite*") if p.is_file())


class TcpListener:
    """A host service on 127.0.0.1 that records every connection it accepts."""

    def __init__(self) -> None:
        import socket

        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(8)
        self.sock.settimeout(0.1)
        self.port = self.sock.getsockname()[1]
        self.accepted: list[str] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._thread.start()

    def _serve(self) -> None:
        while not self._stop.is_set():
            try:
                conn, addr = self.sock.accept()
            except OSError:
                continue
            self.accepted.append(str(addr))
            conn.close()

    def close(self) -> None:
        self._stop.set()
        self._thread.join(2)
        self.sock.close()
