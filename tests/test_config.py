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
    "CLAUDE_CLIENT": "",
    "GITHUB_CLIENT": "",
}


def prod(tmp_path: Path, **changes: Any) -> Settings:
    env = {k: v for k, v in {**GOOD, **changes}.items() if v is not None}
    s = make_settings(tmp_path, **env)
    # settings_env's defaults must not mask a removed item
    for name, value in changes.items():
        if value is None:
            assert getattr(s, name.lower()) in (None, ""), name
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
    for name in ("REPO_URL", "ANTHROPIC_API_KEY", "GH_TOKEN", "WEBHOOK_SECRET", "OPERATOR_TOKEN"):
        assert f"{name} is a placeholder value" in detail, name
