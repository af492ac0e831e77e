"""The token reaches git through its environment only: proven end to end against a local smart-HTTP
git server that demands it, and by looking everywhere it must not be (config files, remote URL,
every process's argv during the requests, logs, errors), raw and base64-encoded alike."""

from __future__ import annotations

import base64
import logging
import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Callable
from pathlib import Path

import pytest

from app.errors import WorkspaceError
from app.proc import run_command_sync
from app.services.workspace import GitWorkspace
from app.services.workspace.gitenv import CREDENTIAL_HELPER, GIT_USERNAME, git_env, redact, token_allowed
from tests.gitrepos import git, make_remote, remote_sha, workspace_settings
from tests.services.workspace.git_http_server import (
    USERNAME,
    GitHttpServer,
    text_has_token,
    token_forms,
    token_in_any_cmdline,
)

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


def _b64(text: str) -> str:
    return base64.b64encode(text.encode()).decode()


class TestTokenScanner:
    """The argv scan the http tests rely on finds the token in each form it could take there."""

    def test_the_helper_speaks_for_the_user_the_server_demands(self) -> None:
        assert GIT_USERNAME == USERNAME
        forms = token_forms(TOKEN)
        assert TOKEN in forms and _b64(f"{USERNAME}:{TOKEN}") in forms and _b64(TOKEN) in forms

    @pytest.mark.parametrize("render", [
        lambda t: t,
        lambda t: f"http.extraHeader=Authorization: Basic {_b64(f'{USERNAME}:{t}')}",
        lambda t: _b64(t),
        lambda t: _b64(f"user:{t}"),  # another user name: the token's stretch of base64 still shows
        lambda t: _b64(f"u:{t}"),
    ], ids=["raw", "basic-header", "base64", "base64-other-user", "base64-offset"])
    def test_finds_each_form_on_a_live_argv(self, render: Callable[[str], str]) -> None:
        token = f"ghp_scan{uuid.uuid4().hex}"  # unique: no other process can hold it
        assert not token_in_any_cmdline(token)
        arg = render(token)
        assert token not in arg or arg == token  # the encoded forms are found as base64
        proc = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)", arg],
                                start_new_session=True)
        try:
            deadline = time.monotonic() + 10
            while not token_in_any_cmdline(token) and time.monotonic() < deadline:
                time.sleep(0.02)  # until the child has exec'd with its argv
            assert token_in_any_cmdline(token) and text_has_token(arg, token)
        finally:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(10)
        assert not token_in_any_cmdline(token)


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
        assert not any(r.token_in_argv for r in requests)  # raw and base64 forms (token_forms)
        assert not text_has_token(_all_text_under(ws.root), TOKEN)  # .git/config, worktree metadata
        assert not list((ws.root / "transit").iterdir())  # the throwaway repos are gone
        assert not text_has_token(git(ws.repo_dir, "remote", "-v"), TOKEN)
        assert not text_has_token(git(ws.repo_dir, "config", "--list", "--show-origin"), TOKEN)
        assert not text_has_token(caplog.text, TOKEN)

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
            assert not text_has_token(text, wrong) and not text_has_token(text, TOKEN)

    async def test_local_remote_works_with_a_token_configured(self, tmp_path: Path) -> None:
        demo = make_remote(tmp_path / "demo")
        ws = GitWorkspace(workspace_settings(tmp_path, demo, GH_TOKEN=TOKEN))
        assert token_allowed(str(demo.remote)) is False
        wt = await ws.prepare("PROJ-1")
        assert wt.path.is_dir()
