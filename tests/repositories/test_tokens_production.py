"""GitHub tokens per repository in production: GH_TOKEN is required only by what would use it.

A repositories file where every repository names its own token (`token_env`) starts in production
without GH_TOKEN - `auto-code serve` as a real subprocess, whose lifespan scrubs the secrets from
its environment before it loads the file - and each repository's PR client talks to its own GitHub
with its own token (the real lifespan, the fake GitHub REST API per repository). A repository left
with no token at all is refused at start-up by `auto-code serve`, naming that repository.
"""

from __future__ import annotations

import contextlib
import functools
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from app.errors import ConfigError
from app.main import create_app, services_of
from app.repositories import load_repositories
from tests.conftest import make_settings
from tests.fakes.github_api import FakeGitHub
from tests.test_cli_startup import ROOT, one_line, serve

WEB_TOKEN = "ghp_WEB_own_token_0a1b2c3d4e5f6a7b"
API_TOKEN = "ghp_API_own_token_9f8e7d6c5b4a3f2e"
PRODUCTION = {
    "NODE_ENV": "production",
    "ANTHROPIC_API_KEY": "sk-ant-test-0123456789abcdef",
    "WEBHOOK_SECRET": "w" * 16 + "-a1b2c3",
    "OPERATOR_TOKEN": "op-0123456789abcdef",
    "ALLOWED_PROJECTS": "WEB,API",
    "CLAUDE_CLIENT": "",
    "GITHUB_CLIENT": "",  # unset: production always talks to GitHub
    "SANDBOX": "bwrap",
}


def _file(tmp_path: Path, gh_web: Any, gh_api: Any, *, api_token_env: bool = True) -> Path:
    path = tmp_path / "repositories.toml"
    api_token = 'token_env = "GH_TOKEN_API"' if api_token_env else ""
    path.write_text(f"""
[[repositories]]
name = "web"
url = "https://github.com/acme/web.git"
github_repository = "{gh_web.slug}"
github_api_url = "{gh_web.base_url}"
token_env = "GH_TOKEN_WEB"
default = true

[[repositories]]
name = "api"
url = "https://github.com/acme/api.git"
github_repository = "{gh_api.slug}"
github_api_url = "{gh_api.base_url}"
{api_token}
[[repositories.routes]]
project = "API"
""")
    return path


def test_every_repository_with_its_own_token_starts_in_production_without_gh_token(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GH_TOKEN_WEB", WEB_TOKEN)
    monkeypatch.setenv("GH_TOKEN_API", API_TOKEN)
    with FakeGitHub(owner="acme", repo="web", token=WEB_TOKEN) as gh_web, \
            FakeGitHub(owner="acme", repo="api", token=API_TOKEN) as gh_api:
        settings = make_settings(tmp_path / "ws", REPOSITORIES_FILE=str(_file(tmp_path, gh_web, gh_api)),
                                 **PRODUCTION)
        assert settings.gh_token is None
        app = create_app(settings)  # the production check passes
        with TestClient(app) as client:  # and so does the lifespan's load of the file
            for repo in services_of(app).deps.repositories:
                opened = client.portal.call(functools.partial(
                    repo.pull_requests.open_or_reuse, head=f"ticket/{repo.name}-1", base="main",
                    title=f"{repo.name} PR", body="body"))
                assert opened.number == 1
    # Each PR reached its own GitHub, which answers only to that repository's own token.
    assert [p["title"] for p in gh_web.prs] == ["web PR"]
    assert [p["title"] for p in gh_api.prs] == ["api PR"]


def _serve_until_started(tmp_path: Path, env: dict[str, str]) -> list[str]:
    """`auto-code serve` in a clean environment until its lifespan logs `service_started` or it
    exits (then the lines say why); killed after. The deadline only bounds a hang."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    base = {"PATH": os.environ.get("PATH", os.defpath), "HOME": str(tmp_path), "LANG": "C.UTF-8",
            "PYTHONPATH": str(ROOT), "HOST": "127.0.0.1"}
    proc = subprocess.Popen([sys.executable, "-m", "app.cli", "serve", "--port", str(port)], cwd=tmp_path,
                            env={**base, **env}, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            start_new_session=True)
    seen: list[str] = []
    try:
        deadline = time.monotonic() + 180
        assert proc.stdout is not None
        for line in proc.stdout:  # ends when the process exits
            seen.append(line)
            if '"service_started"' in line or time.monotonic() > deadline:
                break
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=30)
    return seen


def test_serve_starts_in_production_on_the_repositories_own_tokens(tmp_path: Path) -> None:
    """The real start: the checks before uvicorn, then the lifespan, which removes GH_TOKEN_WEB and
    GH_TOKEN_API from the process environment before it loads the file (the tokens must survive)."""
    with FakeGitHub(owner="acme", repo="web", token=WEB_TOKEN) as gh_web, \
            FakeGitHub(owner="acme", repo="api", token=API_TOKEN) as gh_api:
        path = _file(tmp_path, gh_web, gh_api)
        seen = _serve_until_started(tmp_path, {
            **PRODUCTION, "WORKSPACE_DIR": str(tmp_path / "ws"), "REPOSITORIES_FILE": str(path),
            "GH_TOKEN_WEB": WEB_TOKEN, "GH_TOKEN_API": API_TOKEN})
    out = "".join(seen)
    assert any('"service_started"' in line and '"github": "api"' in line for line in seen), out[-3000:]
    assert WEB_TOKEN not in out and API_TOKEN not in out


def test_a_repository_without_any_token_is_refused_naming_it(tmp_path: Path) -> None:
    with FakeGitHub(owner="acme", repo="web", token=WEB_TOKEN) as gh_web, \
            FakeGitHub(owner="acme", repo="api", token=API_TOKEN) as gh_api:
        path = _file(tmp_path, gh_web, gh_api, api_token_env=False)
    ws = tmp_path / "ws"
    line = one_line(serve(tmp_path, {**PRODUCTION, "WORKSPACE_DIR": str(ws), "REPOSITORIES_FILE": str(path),
                                     "GH_TOKEN_WEB": WEB_TOKEN}))
    assert line.startswith(f"auto-code: invalid REPOSITORIES_FILE {path}: ")
    assert "repositories[1] (api): no GitHub token (set GH_TOKEN, or token_env)" in line
    assert "(web): no GitHub token" not in line  # web has its own
    assert WEB_TOKEN not in line
    assert not (ws / "auto-code.sqlite").exists()  # refused before the database was opened


def test_gh_token_is_still_required_without_a_repositories_file(tmp_path: Path) -> None:
    settings = make_settings(tmp_path / "ws", REPO_URL="https://github.com/acme/web.git", **PRODUCTION)
    with pytest.raises(ConfigError, match="GH_TOKEN is required"):
        settings.check_production()


def test_a_placeholder_in_a_token_env_variable_is_refused_in_production(tmp_path: Path) -> None:
    with FakeGitHub(owner="acme", repo="web") as gh_web, FakeGitHub(owner="acme", repo="api") as gh_api:
        path = _file(tmp_path, gh_web, gh_api)
    settings = make_settings(tmp_path / "ws", REPOSITORIES_FILE=str(path), **PRODUCTION)
    settings.check_production()  # GH_TOKEN is not required with the file ...
    environ = {"GH_TOKEN_WEB": "replace-with-github-token", "GH_TOKEN_API": API_TOKEN}
    with pytest.raises(ConfigError) as info:
        load_repositories(settings, environ=environ)
    assert "repositories[0] (web): token_env GH_TOKEN_WEB is a placeholder value" in info.value.detail
    assert "(api)" not in info.value.detail  # ... and the one with a real token is fine
