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
from app.services.workspace.gitenv import CREDENTIAL_HELPER, git_env, redact, token_allowed
from tests.gitrepos import git, make_remote, remote_sha, workspace_settings
from tests.services.workspace.git_http_server import GitHttpServer

TOKEN = "ghp_TESTtoken0123456789abcdefXYZ"


def _all_text_under(root: Path) -> str:
    parts = []
    for path in root.rglob("*"):
        if path.is_file() and "objects" not in path.parts:
            parts.append(path.read_bytes().decode(errors="replace"))
    return "\n".join(parts)


URL = "https://github.com/o/r.git"


def _fill(env: dict[str, str], request: str, cwd: Path) -> list[str]:
    res = run_command_sync(["git", "credential", "fill"], cwd=cwd, env=env, timeout=30,
                           stdin=request.encode())
    return res.output.splitlines()


def _with_unscoped_helper(env: dict[str, str]) -> dict[str, str]:
    """`env` plus our helper configured for every host: only its own host check is left."""
    n = int(env["GIT_CONFIG_COUNT"])
    return {**env, "GIT_CONFIG_COUNT": str(n + 1), f"GIT_CONFIG_KEY_{n}": "credential.helper",
            f"GIT_CONFIG_VALUE_{n}": CREDENTIAL_HELPER}


class TestCredentialHelper:
    def test_git_credential_fill_answers_from_the_environment(self, tmp_path: Path) -> None:
        lines = _fill(git_env(token=TOKEN, url=URL), "protocol=https\nhost=github.com\n\n", tmp_path)
        assert f"password={TOKEN}" in lines
        assert "username=x-access-token" in lines

    def test_without_token_git_fails_instead_of_prompting(self, tmp_path: Path) -> None:
        res = run_command_sync(["git", "credential", "fill"], cwd=tmp_path, env=git_env(), timeout=30,
                               stdin=b"protocol=https\nhost=github.com\n\n")
        assert not res.ok and TOKEN not in res.output

    @pytest.mark.parametrize("request_text", [
        "protocol=https\nhost=evil.example\n\n",  # another host
        "protocol=http\nhost=github.com\n\n",  # the right host over another scheme
        "protocol=https\nhost=github.com.evil.example\n\n",  # a prefix is not the host
        "protocol=https\nhost=github.com:8443\n\n",  # nor another port
    ])
    def test_no_password_for_anything_but_the_configured_host(
        self, tmp_path: Path, request_text: str
    ) -> None:
        scoped = git_env(token=TOKEN, url=URL)
        for env in (scoped, _with_unscoped_helper(scoped)):  # config scope, then the helper's own check
            lines = _fill(env, request_text, tmp_path)
            assert not any(TOKEN in line for line in lines), lines

    def test_helper_itself_answers_its_host_even_when_configured_for_all(self, tmp_path: Path) -> None:
        env = _with_unscoped_helper(git_env(token=TOKEN, url="http://127.0.0.1:8123/r.git"))
        lines = _fill(env, "protocol=http\nhost=127.0.0.1:8123\n\n", tmp_path)
        assert f"password={TOKEN}" in lines  # the control for the refusals above

    def test_env_holds_the_token_only_in_its_own_variable(self) -> None:
        env = git_env(token=TOKEN, url=URL)
        assert [k for k, v in env.items() if TOKEN in v] == ["AUTO_CODE_GIT_TOKEN"]
        assert env["GIT_TERMINAL_PROMPT"] == "0"
        assert env["GIT_CONFIG_NOSYSTEM"] == "1" and env["GIT_CONFIG_GLOBAL"] == "/dev/null"
        assert "GH_TOKEN" not in env

    def test_a_token_needs_its_url(self) -> None:
        with pytest.raises(ValueError):
            git_env(token=TOKEN)

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
        assert not list((ws.root / "transit").iterdir())  # the throwaway repos are gone
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
