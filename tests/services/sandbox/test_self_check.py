"""The start-up self-check: it passes on a working sandbox, names what got through on a broken one,
and a production service refuses to start unless it passes."""

from __future__ import annotations

import shutil
import stat
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from app.errors import SandboxError
from app.main import create_app
from app.services.sandbox import BwrapSandbox, Unsandboxed
from app.services.sandbox.probe import self_check
from tests.conftest import make_settings
from tests.services.sandbox.test_bwrap_sandbox import SCRATCH
from tests.test_config import GOOD

# A "bubblewrap" that isolates nothing: it skips its own options and runs the command as it is.
FAKE_BWRAP = f"""#!{sys.executable}
import os, sys
args = sys.argv[1:]
rest = args[args.index("--") + 1:]
os.execv(rest[0], rest)
"""


@pytest.fixture
def workspace() -> Iterator[Path]:
    ws = SCRATCH / uuid.uuid4().hex[:12] / "ws"
    ws.mkdir(parents=True)
    yield ws
    shutil.rmtree(ws.parent, ignore_errors=True)


@pytest.fixture
def fake_bwrap(tmp_path: Path) -> str:
    path = tmp_path / "bwrap"
    path.write_text(FAKE_BWRAP)
    path.chmod(path.stat().st_mode | stat.S_IXUSR)
    return str(path)


async def test_passes_on_bubblewrap(workspace: Path) -> None:
    (workspace / "auto-code.sqlite").write_text("DB")  # what the probe must not read
    s = make_settings(workspace)
    got = await self_check(BwrapSandbox(s), s)
    assert all(got[k].startswith("blocked") for k in ("workspace_file", "database", "network", "environment"))


async def test_names_everything_that_got_through_without_isolation(workspace: Path) -> None:
    (workspace / "auto-code.sqlite").write_text("DB")  # what the probe must not read
    s = make_settings(workspace, SANDBOX="none")
    with pytest.raises(SandboxError) as info:
        await self_check(Unsandboxed(), s)
    for what in ("workspace_file reached", "database reached", "network reached",
                 "a connection reached the service's loopback listener", "a daemon outlived the call"):
        assert what in info.value.detail


async def test_catches_a_bwrap_that_does_not_isolate(workspace: Path, fake_bwrap: str) -> None:
    (workspace / "auto-code.sqlite").write_text("DB")  # what the probe must not read
    s = make_settings(workspace, SANDBOX_BWRAP_PATH=fake_bwrap)
    with pytest.raises(SandboxError, match="database reached"):
        await self_check(BwrapSandbox(s), s)


def _production(workspace: Path, **env: str):
    return create_app(make_settings(workspace, **{**GOOD, "ALLOWED_PROJECTS": "PROJ", **env}))


def test_production_starts_when_the_sandbox_holds(workspace: Path) -> None:
    with TestClient(_production(workspace)) as client:
        assert client.get("/health").status_code == 200


@pytest.mark.parametrize("broken", ["missing", "not_isolating"])
def test_production_refuses_to_start_without_a_working_sandbox(workspace: Path, fake_bwrap: str,
                                                               broken: str) -> None:
    path = "/nonexistent/bwrap" if broken == "missing" else fake_bwrap
    app = _production(workspace, SANDBOX_BWRAP_PATH=path)
    with pytest.raises(SandboxError, match="bubblewrap" if broken == "missing" else "self-check failed"):
        with TestClient(app):
            pass


def test_development_skips_the_check_unless_asked(workspace: Path, fake_bwrap: str) -> None:
    with TestClient(create_app(make_settings(workspace, SANDBOX_BWRAP_PATH=fake_bwrap))) as client:
        assert client.get("/health").status_code == 200
    with pytest.raises(SandboxError, match="self-check failed"):
        with TestClient(create_app(make_settings(workspace, SANDBOX_BWRAP_PATH=fake_bwrap,
                                                 SANDBOX_SELF_CHECK="true"))):
            pass
