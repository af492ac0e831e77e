"""Fixtures for driving the REAL Claude Code CLI (bundled in the claude-agent-sdk wheel) against the
scripted Messages API on 127.0.0.1, with the service's secrets planted in the environment so every
test also checks they do not reach the agent."""

from __future__ import annotations

import contextlib
import os
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from app.services.claude_code.base import AgentRequest
from app.services.claude_code.client import SdkClaudeCode
from tests.conftest import make_settings
from tests.fakes.anthropic_api import FakeAnthropicAPI, fake_anthropic  # noqa: F401 - fixture

PLANTED_SECRETS = {
    "GH_TOKEN": "ghp_PLANTED_gh_token_value",
    "GITHUB_TOKEN": "ghs_PLANTED_github_token",
    "WEBHOOK_SECRET": "PLANTED_webhook_secret_value",
    "JIRA_WEBHOOK_SECRET": "PLANTED_jira_hmac_secret",
    "JIRA_API_TOKEN": "PLANTED_jira_api_token",
    "OPERATOR_TOKEN": "PLANTED_operator_token_value",
    "LANGFUSE_SECRET_KEY": "sk-lf-PLANTED",
    "LANGFUSE_PUBLIC_KEY": "pk-lf-PLANTED",
    "DATABASE_URL": "postgresql://u:PLANTED_db_password@127.0.0.1/x",
}
API_KEY = "sk-ant-test-key-from-settings"


@pytest.fixture
def cli_env(
    fake_anthropic: FakeAnthropicAPI,  # noqa: F811 - the imported fixture
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
) -> FakeAnthropicAPI:
    """The process environment a real deployment would have, pointed at the fake model; fast
    failures (no retries, 3 s to response headers).

    HOME is an empty directory: the CLI's Bash tool starts a login shell, and this machine's
    ~/.bashrc runs `pyenv rehash`, whose lock file is left behind whenever a killed tree catches it
    mid-way - every later shell then waits 60 s for it."""
    home = tmp_path / "home"
    home.mkdir()
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.setenv("ANTHROPIC_BASE_URL", fake_anthropic.url)
    monkeypatch.setenv("CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC", "1")
    monkeypatch.setenv("CLAUDE_CODE_MAX_RETRIES", "0")
    monkeypatch.setenv("API_TIMEOUT_MS", "3000")
    for name, value in PLANTED_SECRETS.items():
        monkeypatch.setenv(name, value)
    return fake_anthropic


@pytest.fixture
def worktree(tmp_path: Path) -> Path:
    wt = tmp_path / "worktrees" / "ticket-proj-1"
    wt.mkdir(parents=True)
    (wt / "README.md").write_text("# seed\n")
    return wt


@pytest.fixture
async def make_sdk(tmp_path: Path, cli_env: FakeAnthropicAPI) -> AsyncIterator[Any]:
    """Build SdkClaudeCode instances on settings for this test's workspace; all closed afterwards
    and checked to leave no CLI process behind."""
    built: list[SdkClaudeCode] = []

    def build(
        extra_allowed_tools: tuple[str, ...] = (), tracer: Any = None, **overrides: Any
    ) -> SdkClaudeCode:
        values = {
            "CLAUDE_CLIENT": "sdk",
            "ANTHROPIC_API_KEY": API_KEY,
            "CLAUDE_TIMEOUT_SEC": "30",
            **overrides,
        }
        client = SdkClaudeCode(
            make_settings(tmp_path / "workspace", **values), tracer, extra_allowed_tools=extra_allowed_tools
        )
        built.append(client)
        return client

    yield build
    for client in built:
        await client.aclose()
    assert wait_no_cli_under(tmp_path), f"claude processes left: {cli_processes_under(tmp_path)}"


def request(cwd: Path, prompt: str, lines: list[str] | None = None, *, gate: str | None = None,
            round: int = 0) -> AgentRequest:
    """A request; `gate`/`round` make it a fix round of that gate (the fields a client labels by)."""
    return AgentRequest(
        cwd=cwd,
        prompt=prompt,
        ticket_key="PROJ-1",
        run_id="PROJ-1:test",
        log=lines.append if lines is not None else None,
        phase="fix" if gate else "implement",
        gate=gate,
        round=round,
    )


def cli_processes_under(root: Path) -> list[tuple[int, str]]:
    """Live processes whose working directory is inside `root` (the CLI runs with cwd=worktree;
    other tests' CLIs elsewhere are not ours to count)."""
    found = []
    root_s = str(root.resolve())
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        with contextlib.suppress(OSError):
            cwd = os.readlink(f"/proc/{entry.name}/cwd")
            state = Path(f"/proc/{entry.name}/stat").read_text().rsplit(")", 1)[1].split()[0]
            cmd = (
                Path(f"/proc/{entry.name}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
            )
            if state != "Z" and (cwd == root_s or cwd.startswith(root_s + "/")):
                found.append((int(entry.name), cmd[:120]))
    return found


def wait_no_cli_under(root: Path, within: float = 5.0) -> bool:
    deadline = time.monotonic() + within
    while cli_processes_under(root) and time.monotonic() < deadline:
        time.sleep(0.05)
    return not cli_processes_under(root)
