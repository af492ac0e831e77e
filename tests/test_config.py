"""Production fail-fast: `check_production()` names every missing or invalid item in one message."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from app.config import Settings
from app.errors import ConfigError
from tests.conftest import make_settings

GOOD = {
    "NODE_ENV": "production",
    "REPO_URL": "https://github.com/acme/widgets.git",
    "ANTHROPIC_API_KEY": "sk-ant-test-0123456789abcdef",
    "GH_TOKEN": "ghp_test0123456789abcdef",
    "WEBHOOK_SECRET": "w" * 16 + "-a1b2c3",
    "OPERATOR_TOKEN": "op-0123456789abcdef",
    "ALLOWED_PROJECTS": "PROJ",
    "CLAUDE_CLIENT": "",
    "GITHUB_CLIENT": "",
}


def prod(tmp_path: Path, **changes: Any) -> Settings:
    env = {k: v for k, v in {**GOOD, **changes}.items() if v is not None}
    s = make_settings(tmp_path, **env)
    # settings_env's defaults must not mask a removed item
    for name, value in changes.items():
        if value is None:
            assert getattr(s, name.lower()) in (None, "", []), name
    return s


def problem(settings: Settings) -> str:
    with pytest.raises(ConfigError) as info:
        settings.check_production()
    return info.value.detail


def test_complete_production_config_passes(tmp_path: Path) -> None:
    prod(tmp_path).check_production()


def test_jira_hmac_secret_alone_is_enough(tmp_path: Path) -> None:
    prod(tmp_path, WEBHOOK_SECRET=None, JIRA_WEBHOOK_SECRET="j" * 20).check_production()


@pytest.mark.parametrize(
    ("missing", "named"),
    [
        ("REPO_URL", "REPO_URL is required"),
        ("ANTHROPIC_API_KEY", "ANTHROPIC_API_KEY is required"),
        ("GH_TOKEN", "GH_TOKEN is required"),
        ("WEBHOOK_SECRET", "WEBHOOK_SECRET or JIRA_WEBHOOK_SECRET is required"),
        ("OPERATOR_TOKEN", "OPERATOR_TOKEN is required"),
        ("ALLOWED_PROJECTS", "ALLOWED_PROJECTS is required (project keys, or * for all projects)"),
    ],
)
def test_each_missing_item_is_named(tmp_path: Path, missing: str, named: str) -> None:
    detail = problem(prod(tmp_path, **{missing: None}))
    assert named in detail
    assert detail.count("; ") == 0  # exactly that one problem


@pytest.mark.parametrize("name", ["WEBHOOK_SECRET", "JIRA_WEBHOOK_SECRET", "OPERATOR_TOKEN"])
def test_short_secret_is_named(tmp_path: Path, name: str) -> None:
    detail = problem(prod(tmp_path, **{name: "short-15-chars!"}))
    assert f"{name} must be at least 16 characters" in detail
    assert "short-15-chars!" not in detail  # the value itself never appears


def test_placeholder_secret_is_refused(tmp_path: Path) -> None:
    detail = problem(prod(tmp_path, WEBHOOK_SECRET="replace-me-with-a-secret"))
    assert "WEBHOOK_SECRET is a placeholder value" in detail


def test_everything_missing_is_named_in_one_message(tmp_path: Path) -> None:
    s = prod(tmp_path, REPO_URL=None, ANTHROPIC_API_KEY=None, GH_TOKEN=None, WEBHOOK_SECRET=None,
             OPERATOR_TOKEN=None)
    detail = problem(s)
    for name in ("REPO_URL", "ANTHROPIC_API_KEY", "GH_TOKEN", "WEBHOOK_SECRET or JIRA_WEBHOOK_SECRET",
                 "OPERATOR_TOKEN"):
        assert name in detail


@pytest.mark.parametrize(("name", "value"), [("CLAUDE_CLIENT", "mock"), ("GITHUB_CLIENT", "local")])
def test_offline_clients_are_refused_in_production(tmp_path: Path, name: str, value: str) -> None:
    assert f"{name}={value} is not allowed in production" in problem(prod(tmp_path, **{name: value}))


def test_secrets_never_appear_in_the_message_or_repr(tmp_path: Path) -> None:
    s = prod(tmp_path, REPO_URL=None)
    detail = problem(s)
    for name in ("ANTHROPIC_API_KEY", "GH_TOKEN", "WEBHOOK_SECRET", "OPERATOR_TOKEN"):
        assert GOOD[name] not in detail
        assert GOOD[name] not in repr(s)


def test_development_does_not_check(tmp_path: Path) -> None:
    make_settings(tmp_path, NODE_ENV="development").check_production()


def test_create_app_refuses_a_bad_production_config(tmp_path: Path) -> None:
    from app.main import create_app

    with pytest.raises(ConfigError, match="GH_TOKEN is required"):
        create_app(prod(tmp_path, GH_TOKEN=None))


@pytest.mark.parametrize("name", ["REPO_URL", "ANTHROPIC_API_KEY", "GH_TOKEN"])
def test_an_empty_value_counts_as_missing(tmp_path: Path, name: str) -> None:
    assert f"{name} is required" in problem(prod(tmp_path, **{name: ""}))


def test_the_template_cannot_go_live(tmp_path: Path) -> None:
    """`.env.example` copied as is into production: every placeholder it ships is named."""
    from dotenv import dotenv_values

    template = Path(__file__).resolve().parent.parent / ".env.example"
    values = {k: v for k, v in dotenv_values(template).items() if v is not None}
    detail = problem(make_settings(tmp_path, **{**values, "CLAUDE_CLIENT": "", "GITHUB_CLIENT": ""}))
    for name in ("REPO_URL", "ANTHROPIC_API_KEY", "GH_TOKEN", "WEBHOOK_SECRET", "OPERATOR_TOKEN",
                 "ALLOWED_PROJECTS"):
        assert f"{name} is a placeholder value" in detail, name


# ----- intake: who may start work, bind address, hardening ---------------------------------------
def test_allowed_projects_star_is_accepted_in_production(tmp_path: Path) -> None:
    s = prod(tmp_path, ALLOWED_PROJECTS="*")
    s.check_production()
    assert s.all_projects_allowed


def test_allowed_projects_missing_is_named_among_the_others(tmp_path: Path) -> None:
    detail = problem(prod(tmp_path, ALLOWED_PROJECTS=None, GH_TOKEN=None))
    assert "ALLOWED_PROJECTS is required" in detail and "GH_TOKEN is required" in detail


def test_allowed_projects_empty_means_all_in_development(tmp_path: Path) -> None:
    s = make_settings(tmp_path)
    s.check_production()
    assert s.all_projects_allowed and not make_settings(tmp_path, ALLOWED_PROJECTS="P").all_projects_allowed


@pytest.mark.parametrize(
    ("cli", "environ", "production", "expected"),
    [
        (None, {}, False, "127.0.0.1"),
        (None, {}, True, "0.0.0.0"),
        (None, {"HOST": "0.0.0.0"}, False, "0.0.0.0"),
        (None, {"HOST": "127.0.0.1"}, True, "127.0.0.1"),
        ("::1", {"HOST": "0.0.0.0"}, True, "::1"),
    ],
)
def test_serve_binds_loopback_unless_production(cli: str | None, environ: dict[str, str],
                                                production: bool, expected: str) -> None:
    from app.cli import bind_host

    assert bind_host(cli, production, environ) == expected


def test_the_app_lifespan_hardens_the_process(tmp_path: Path) -> None:
    """`uvicorn app.main:app` builds the app through `app.main.app` and runs its lifespan: the
    process is non-dumpable once it serves (checked in a fresh interpreter: it is permanent)."""
    import json
    import os
    import subprocess
    import sys

    if not sys.platform.startswith("linux"):
        pytest.skip("prctl is Linux-only")
    code = (
        "import json; from fastapi.testclient import TestClient; from app.hardening import is_dumpable\n"
        "import app.main as m\n"
        "before = is_dumpable()\n"
        "with TestClient(m.app) as tc: during = is_dumpable(); ok = tc.get('/health').status_code\n"
        "print(json.dumps({'before': before, 'during': during, 'health': ok}))"
    )
    root = Path(__file__).resolve().parent.parent
    env = {k: v for k, v in os.environ.items() if not k.startswith(("WEBHOOK", "JIRA", "OPERATOR"))}
    env.update({"PYTHONPATH": str(root), "WORKSPACE_DIR": str(tmp_path), "NODE_ENV": "development",
                "CLAUDE_CLIENT": "mock", "GITHUB_CLIENT": "local", "SANDBOX": "none", "SCRUB_ENV": "0",
                "LOG_LEVEL": "WARNING"})
    done = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, env=env, capture_output=True,
                          text=True, timeout=120, check=False)
    assert done.returncode == 0, done.stderr[-3000:]
    result = json.loads(done.stdout.strip().splitlines()[-1])
    assert result == {"before": True, "during": False, "health": 200}


# ----- PUBLIC_BASE_URL: checked in every environment ----------------------------------------------
@pytest.mark.parametrize(("value", "says"), [
    ("auto-code.example.com", "must be an http(s) URL"),
    ("ftp://auto-code.example.com", "must be an http(s) URL"),
    ("https://", "names no host"),
    ("https://auto-code.example.com:99999", "valid host and port"),
    ("https://ops:hunter2-secret@auto-code.example.com", "must not contain a user name or password"),
    ("https://auto-code.example.com/?next=x", "must not have a query or fragment"),
    ("https://auto-code.example.com /", "must not contain spaces"),
    ("", "is set but empty"),
])
def test_a_bad_public_base_url_is_refused_with_the_reason(tmp_path: Path, value: str, says: str) -> None:
    from pydantic import ValidationError

    from app.startup import describe_validation_error

    with pytest.raises(ValidationError) as info:
        make_settings(tmp_path, PUBLIC_BASE_URL=value)
    line = describe_validation_error(info.value)
    assert "PUBLIC_BASE_URL" in line and says in line
    assert "hunter2" not in line  # the value is never repeated (a pasted URL may hold a password)


@pytest.mark.parametrize(("value", "origin"), [
    ("https://Auto-Code.Example.com/", "https://auto-code.example.com"),
    ("https://auto-code.example.com:443/auto-code", "https://auto-code.example.com"),
    ("http://auto-code.example.com:8080", "http://auto-code.example.com:8080"),
    ("http://[::1]:3001/", "http://[::1]:3001"),
    (None, None),
])
def test_public_origin_is_the_origin_a_browser_sends(tmp_path: Path, value: str | None,
                                                     origin: str | None) -> None:
    env = {} if value is None else {"PUBLIC_BASE_URL": value}
    assert make_settings(tmp_path, **env).public_origin == origin
