"""Shared by the repositories tests: a repositories file for two repositories ("web": routed by
component Frontend, lint on, its own token via token_env; "api": routed by project API, review and
tests on, GH_TOKEN), each on its own bare remote and its own fake GitHub."""

from __future__ import annotations

import contextlib
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from app.demo_repo import DemoRepo
from tests.fakes.github_api import FakeGitHub
from tests.gitrepos import make_remote
from tests.services.runner.harness import running_service, step

WEB_TOKEN = "ghp_WEB_repository_token_0a1b2c3d4e"
API_TOKEN = "ghp_API_service_token_9f8e7d6c5b4a"


def say(text: str) -> str:
    """A check command that prints `text` and passes (argv: python3 -c ...)."""
    return json.dumps(["python3", "-c", f"print({text!r})"])


def repositories_file(tmp_path: Path, web: DemoRepo, api: DemoRepo, gh_web: FakeGitHub, gh_api: FakeGitHub,
                      *, web_extra: str = "", api_extra: str = "") -> Path:
    path = tmp_path / "repositories.toml"
    path.write_text(f"""
[[repositories]]
name = "web"
url = "{web.remote}"
github_repository = "{gh_web.slug}"
github_api_url = "{gh_web.base_url}"
token_env = "GH_TOKEN_WEB"
lint_command = {say("lint of web")}
enable_lint = true
enable_tests = false
{web_extra}
[[repositories.routes]]
component = "Frontend"

[[repositories]]
name = "api"
url = "{api.remote}"
github_repository = "{gh_api.slug}"
github_api_url = "{gh_api.base_url}"
test_command = {say("tests of api")}
enable_lint = false
enable_tests = true
enable_review = true
{api_extra}
[[repositories.routes]]
project = "API"
""")
    return path


def serve(tmp_path: Path, two: dict[str, Any], **kw: Any) -> Any:
    extra = {k: kw.pop(k) for k in ("web_extra", "api_extra") if k in kw}
    path = repositories_file(tmp_path, two["web"], two["api"], two["gh_web"], two["gh_api"], **extra)
    return running_service(tmp_path, kw.pop("script", None), REPOSITORIES_FILE=path, GITHUB_CLIENT="api",
                           GH_TOKEN=API_TOKEN, **kw)


def outputs(run: dict[str, Any], gate: str) -> str:
    return "\n".join(r.get("output", "") for r in step(run, gate)["detail"]["rounds"])


@contextlib.contextmanager
def two_repositories(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[dict[str, Any]]:
    """Two bare remotes ("web", "api") and a fake GitHub for each, answering only to its token."""
    monkeypatch.setenv("GH_TOKEN_WEB", WEB_TOKEN)  # the web repository's own token (token_env)
    web, api = make_remote(tmp_path / "web"), make_remote(tmp_path / "api")
    with FakeGitHub(owner="acme", repo="web", token=WEB_TOKEN) as gh_web, \
            FakeGitHub(owner="acme", repo="api", token=API_TOKEN) as gh_api:
        yield {"web": web, "api": api, "gh_web": gh_web, "gh_api": gh_api}
