"""SdkClaudeCode when the CLI itself fails (a stand-in executable as CLAUDE_CLI_PATH, run through the
real launcher and SDK): a clear AgentError carrying the CLI's stderr, which also reaches the run log."""

from __future__ import annotations

from pathlib import Path

import pytest

from app.errors import AgentError
from app.services.claude_code.base import AgentRequest
from app.services.claude_code.client import SdkClaudeCode
from tests.conftest import make_settings

ROOT_REFUSAL = "Error: --permission-mode bypassPermissions cannot be used with root/sudo privileges"


def client(tmp_path: Path, cli: str) -> SdkClaudeCode:
    settings = make_settings(
        tmp_path / "workspace", CLAUDE_CLIENT="sdk", ANTHROPIC_API_KEY="sk-ant-x", CLAUDE_CLI_PATH=cli,
        CLAUDE_TIMEOUT_SEC="20",
    )
    return SdkClaudeCode(settings)


async def test_a_crashing_cli_is_an_agent_error_with_its_stderr(tmp_path: Path) -> None:
    cli = tmp_path / "broken-claude"
    cli.write_text(f"#!/bin/sh\necho '{ROOT_REFUSAL}' >&2\nexit 1\n")
    cli.chmod(0o700)
    lines: list[str] = []
    claude = client(tmp_path, str(cli))
    with pytest.raises(AgentError) as err:
        await claude.implement(
            AgentRequest(cwd=tmp_path, prompt="x", ticket_key="P-1", run_id="P-1:r", log=lines.append)
        )
    assert err.value.terminal_reason == "process_error"
    assert ROOT_REFUSAL in err.value.detail
    assert lines == [f"claude[implement] stderr: {ROOT_REFUSAL}"]
    await claude.aclose()


async def test_a_missing_cli_is_an_agent_error(tmp_path: Path) -> None:
    claude = client(tmp_path, str(tmp_path / "no-such-claude"))
    with pytest.raises(AgentError) as err:
        await claude.implement(AgentRequest(cwd=tmp_path, prompt="x", ticket_key="P-1", run_id="P-1:r"))
    assert err.value.terminal_reason == "process_error"
    assert "no-such-claude" in err.value.detail


async def test_a_failed_review_session_is_reported_not_raised(tmp_path: Path) -> None:
    claude = client(tmp_path, str(tmp_path / "no-such-claude"))
    result = await claude.review(AgentRequest(cwd=tmp_path, prompt="x", ticket_key="P-1", run_id="P-1:r"))
    assert not result.ok and "process_error" in (result.error or "")


async def test_a_failed_warm_up_never_raises(tmp_path: Path) -> None:
    claude = client(tmp_path, str(tmp_path / "no-such-claude"))
    await claude.warm(tmp_path, "PROJ-1:warm")
    assert claude._warm == {}
