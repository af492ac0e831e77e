"""The token reaches git through its environment only: proven end to end against a local smart-HTTP
git server that demands it, and by looking everywhere it must not be (config files, remote URL,
every process's argv during the requests, logs, errors)."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

from app.errors import WorkspaceError
from app.proc import run_command_sync
from app.services.workspace import GitWorkspace
from app.services.workspace.gitenv import git_env, redact, token_allowed
from tests.gitrepos import git, make_remote, remote_sha, workspace_settings
from tests.services.workspace.git_http_server import GitHttpServer

TOKEN = "ghp_TESTtoken0123456789abcdefXYZ"


def _all_text_under(root: Path) -> str:
    parts = []
    for path in root.rglob("*"):
        if path.is_file() and "objects" not in path.parts:
            parts.append(path.read_bytes().decode(errors="replace"))
    return "\n".join(parts)


class TestCredentialHelper:
    def test_git_credential_fill_answers_from_the_environment(self, tmp_path: Path) -> None:
        res = run_command_sync(["git", "credential", "fill"], cwd=tmp_path, env=git_env(token=TOKEN),
                               timeout=30, stdin=b"protocol=https\nhost=github.com\n\n")
        assert res.ok, res.output
        assert f"password={TOKEN}" in res.output.splitlines()
        assert "username=x-access-token" in res.output.splitlines()

    def test_without_token_git_fails_instead_of_prompting(self, tmp_path: Path) -> None:
        res = run_command_sync(["git", "credential", "fill"], cwd=tmp_path, env=git_env(), timeout=30,
                               stdin=b"protocol=https\nhost=github.com\n\n")
        assert not res.ok and TOKEN not in res.output

    def test_env_holds_the_token_only_in_its_own_variable(self) -> None:
        env = git_env(token=TOKEN)
        assert [k for k, v in env.items() if TOKEN in v] == ["AUTO_CODE_GIT_TOKEN"]
        assert env["GIT_TERMINAL_PROMPT"] == "0"
        assert "GH_TOKEN" not in env

    def test_token_scope(self) -> None:
        assert token_allowed("https://github.com/o/r.git")
        assert token_allowed("http://127.0.0.1:8080/r.git")
        assert not token_allowed("http://example.com/r.git")
        assert not token_allowed("/srv/repo.git") and not token_allowed("file:///srv/repo.git")
        assert redact(f"fatal: {TOKEN} bad", TOKEN) == "fatal: *** bad"


class TestOverHttp:
    async def test_clone_fetch_push_with_token_and_no_trace_of_it(
        self, tmp_path: Path, caplog: pytest.LogCaptureFixture
    ) -> None:
        caplog.set_level(logging.DEBUG)
        demo = make_remote(tmp_path / "srv")
        with GitHttpServer(tmp_path / "srv", TOKEN) as server:
            ws = GitWorkspace(workspace_settings(tmp_path, demo, REPO_URL=server.url("remote.git"),
                                                 GH_TOKEN=TOKEN))
            wt = await ws.prepare("PROJ-1")  # clone
            wt = await ws.prepare("PROJ-1")  # fetch
            (wt.path / "x.txt").write_text("x\n")
            sha = await ws.commit(wt, "PROJ-1: x")
            await ws.push(wt)
            requests = list(server.requests)
        assert remote_sha(demo.remote, "ticket/proj-1") == sha
        assert any(r.authorized and r.method == "POST" and "receive-pack" in r.path for r in requests)
        assert all(r.authorized for r in requests if "receive-pack" in r.path and r.method == "POST")
        assert not any(r.token_in_argv for r in requests)
        assert TOKEN not in _all_text_under(ws.root)  # .git/config, worktree metadata, files
        assert TOKEN not in git(ws.repo_dir, "remote", "-v")
        assert TOKEN not in git(ws.repo_dir, "config", "--list", "--show-origin")
        assert TOKEN not in caplog.text

    async def test_wrong_token_fails_fast_and_is_redacted(
        self, tmp_path: Path, caplog: pytest.LogCaptureFixture
    ) -> None:
        caplog.set_level(logging.DEBUG)
        demo = make_remote(tmp_path / "srv")
        wrong = "ghp_WRONGtoken9876543210"
        with GitHttpServer(tmp_path / "srv", TOKEN) as server:
            ws = GitWorkspace(workspace_settings(tmp_path, demo, REPO_URL=server.url("remote.git"),
                                                 GH_TOKEN=wrong), network_timeout=30)
            with pytest.raises(WorkspaceError) as info:
                await ws.prepare("PROJ-1")
        assert "Authentication failed" in info.value.stderr or "401" in info.value.stderr
        for text in (str(info.value), info.value.stderr, caplog.text):
            assert wrong not in text and TOKEN not in text

    async def test_local_remote_works_with_a_token_configured(self, tmp_path: Path) -> None:
        demo = make_remote(tmp_path / "demo")
        ws = GitWorkspace(workspace_settings(tmp_path, demo, GH_TOKEN=TOKEN))
        assert token_allowed(str(demo.remote)) is False
        wt = await ws.prepare("PROJ-1")
        assert wt.path.is_dir()
