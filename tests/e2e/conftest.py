"""The service end to end with the REAL Claude Code CLI (bundled in the claude-agent-sdk wheel).

Nothing is swapped: `create_app(settings)` with CLAUDE_CLIENT=sdk builds the real `SdkClaudeCode`,
which launches the bundled CLI; the CLI talks to the scripted Messages API on 127.0.0.1
(`ANTHROPIC_BASE_URL`, read by the client from the process environment), git works against a local
bare remote, and pull requests go to the fake GitHub REST API (GITHUB_CLIENT=api). Retries and
timeouts are set low so every failure is quick.

- `model`: the scripted model server (tests/fakes/anthropic_api.py), one per test.
- `github`: the fake GitHub REST API, one per test.
- `e2e(**env)`: a context manager running the service for this test's workspace; `env` overrides
  settings by their environment names. Enter it twice (one after the other) for a restart: both
  share the workspace, the SQLite database and the bare remote.
- `claude_processes(root)`: live processes of the bundled CLI that belong to this test.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from app.config import Settings
from app.demo_repo import DemoRepo
from app.main import create_app
from app.models import FINAL_STATUSES
from app.services.claude_code.launcher import bundled_cli
from tests.fakes.anthropic_api import FakeAnthropicAPI, RecordedRequest
from tests.fakes.github_api import FakeGitHub
from tests.gitrepos import make_remote, workspace_settings

API_KEY = "sk-ant-e2e-dummy-key"
GH_TOKEN = "ghp_E2E_SECRET_github_token_5d1c"  # distinctive: searched for in what the agent saw
CLAUDE_BIN = bundled_cli()
IMPLEMENT = "You are implementing Jira ticket"  # prompt markers (app/prompts/ticket_prompts.py)
REVIEW = "You are reviewing a change"


def fix_marker(gate: str) -> str:
    return f"[auto-code fix: gate={gate} "


@dataclass
class E2EService:
    client: TestClient
    app: Any
    settings: Settings
    demo: DemoRepo
    model: FakeAnthropicAPI
    github: FakeGitHub
    headers: dict[str, str]

    @property
    def workspace(self) -> Path:
        return self.settings.workspace_dir

    def worktree(self, key: str) -> Path:
        return self.workspace / "worktrees" / f"ticket-{key.lower()}"

    def deliver(self, key: str, summary: str = "Add a greeting file") -> str:
        resp = self.client.post("/webhook/jira", json={"key": key, "summary": summary}, headers=self.headers)
        assert resp.status_code == 202, resp.text
        assert resp.json()["status"] == "queued", resp.json()
        return resp.json()["run_id"]

    def wait(self, run_id: str, timeout: float = 60) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        run: dict[str, Any] = {}
        while time.monotonic() < deadline:
            run = self.client.get(f"/runs/{run_id}", headers=self.headers).json()
            if run.get("status") in FINAL_STATUSES:
                return run
            time.sleep(0.05)
        raise AssertionError(f"run {run_id} did not finish in {timeout}s: {run}")

    def run(self, key: str, summary: str = "Add a greeting file", timeout: float = 60) -> dict[str, Any]:
        return self.wait(self.deliver(key, summary), timeout)


def step(run: dict[str, Any], name: str) -> dict[str, Any]:
    matches = [s for s in run["steps"] if s["name"] == name]
    assert matches, f"no step {name} in {[s['name'] for s in run['steps']]}"
    return matches[0]


def requests_with(model: FakeAnthropicAPI, marker: str) -> list[RecordedRequest]:
    """Message requests whose current prompt contains `marker`, in the order they arrived."""
    return [r for r in model.message_requests() if marker in r.prompt_text()]


def session_of(req: RecordedRequest) -> str:
    return req.headers.get("x-claude-code-session-id", "")


def tree_hashes(root: Path) -> dict[str, str]:
    """sha256 of every file under `root` (symlinks by target), for byte-for-byte comparisons."""
    out: dict[str, str] = {}
    for path in sorted(root.rglob("*")):
        rel = str(path.relative_to(root))
        if path.is_symlink():
            out[rel] = "-> " + os.readlink(path)
        elif path.is_file():
            out[rel] = hashlib.sha256(path.read_bytes()).hexdigest()
        elif path.is_dir():
            out[rel + "/"] = "dir"
    return out


def claude_processes(root: Path) -> list[tuple[int, str]]:
    """Processes of the bundled CLI (by /proc/<pid>/cmdline) that belong to this test: their cwd or
    their CLAUDE_CONFIG_DIR lies under `root` (other tests may run CLIs at the same time). Zombies
    count too: an unreaped CLI is a leak of its own."""
    found: list[tuple[int, str]] = []
    root_s = str(root.resolve())
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        with contextlib.suppress(OSError):
            cmd = Path(entry.path, "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
            if CLAUDE_BIN not in cmd:
                continue
            state = Path(entry.path, "stat").read_text().rsplit(")", 1)[1].split()[0]
            if state == "Z":
                found.append((int(entry.name), f"<zombie> {cmd[:100]}"))
                continue
            cwd = os.readlink(Path(entry.path, "cwd"))
            environ = Path(entry.path, "environ").read_bytes().split(b"\0")
            config = next((e[len(b"CLAUDE_CONFIG_DIR="):].decode() for e in environ
                           if e.startswith(b"CLAUDE_CONFIG_DIR=")), "")
            if any(p == root_s or p.startswith(root_s + "/") for p in (cwd, config)):
                found.append((int(entry.name), cmd[:120]))
    return found


def no_claude_left(root: Path, within: float = 3.0) -> list[tuple[int, str]]:
    """[] once no CLI process of this test is alive (polled briefly: a kill is not instant)."""
    deadline = time.monotonic() + within
    while (left := claude_processes(root)) and time.monotonic() < deadline:
        time.sleep(0.05)
    return left


@pytest.fixture
def model(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[FakeAnthropicAPI]:
    """The scripted model, and the process environment that points the CLI at it. The client passes
    ANTHROPIC_BASE_URL from os.environ to the CLI; retries and time-to-headers are kept short.

    HOME is an empty directory: the CLI's Bash tool snapshots the user's login shell by sourcing
    ~/.bashrc, and a developer's profile (pyenv's rehash lock, left stale when a killed agent shell
    held it, stalls every later shell for 60 s) must not decide whether these tests pass."""
    home = tmp_path / "home"
    home.mkdir()
    monkeypatch.setenv("HOME", str(home))
    with FakeAnthropicAPI() as server:
        monkeypatch.setenv("ANTHROPIC_BASE_URL", server.url)
        monkeypatch.setenv("CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC", "1")
        monkeypatch.setenv("CLAUDE_CODE_MAX_RETRIES", "1")
        monkeypatch.setenv("API_TIMEOUT_MS", "5000")
        yield server


@pytest.fixture
def github() -> Iterator[FakeGitHub]:
    with FakeGitHub(owner="acme", repo="greeter", token=GH_TOKEN) as gh:
        yield gh


@pytest.fixture
def demo(tmp_path: Path) -> DemoRepo:
    return make_remote(tmp_path / "target")


@pytest.fixture
def e2e(tmp_path: Path, model: FakeAnthropicAPI, github: FakeGitHub,
        demo: DemoRepo) -> Callable[..., contextlib.AbstractContextManager[E2EService]]:
    @contextlib.contextmanager
    def run_service(**env: Any) -> Iterator[E2EService]:
        values = {
            "CLAUDE_CLIENT": "sdk", "ANTHROPIC_API_KEY": API_KEY, "CLAUDE_TIMEOUT_SEC": "30",
            "CLAUDE_MAX_TURNS": "10",
            "GITHUB_CLIENT": "api", "GH_TOKEN": github.token, "GITHUB_API_URL": github.base_url,
            "GITHUB_REPOSITORY": github.slug,
            **{k: str(v) for k, v in env.items()},
        }
        settings = workspace_settings(tmp_path, demo, **values)
        headers = {}
        if settings.webhook_secret is not None:
            headers["X-Webhook-Token"] = settings.webhook_secret.get_secret_value()
        app = create_app(settings)
        with TestClient(app) as client:
            yield E2EService(client=client, app=app, settings=settings, demo=demo, model=model,
                             github=github, headers=headers)

    return run_service
