"""Fixtures shared by the whole suite: settings builders, a throwaway PostgreSQL database, and the
environment every test process needs (no traffic beyond 127.0.0.1)."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from pydantic_settings import SettingsConfigDict

from app.config import Settings

# The real CLI must never look up api.anthropic.com from a test; retries stay short.
os.environ.setdefault("CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC", "1")
os.environ.setdefault("DISABLE_TELEMETRY", "1")
os.environ.setdefault("DISABLE_AUTOUPDATER", "1")

PG_ADMIN_URL = os.environ.get("AUTO_CODE_TEST_PG", "postgresql://postgres@127.0.0.1:5432/postgres")


def settings_env(workspace: Path, **overrides: Any) -> dict[str, str]:
    """Environment-style settings for a test service: embedded SQLite under `workspace`, mock
    Claude, local PR records, fast queue polling. Overrides use the env names (e.g. DRY_RUN="1")."""
    env = {
        "NODE_ENV": "development",
        "WORKSPACE_DIR": str(workspace),
        "CLAUDE_CLIENT": "mock",
        "GITHUB_CLIENT": "local",
        "QUEUE_POLL_INTERVAL_SEC": "0.1",
        "SCRUB_ENV": "0",
        "RATE_LIMIT": "1000/minute",
        "EXECUTOR_ID": "test-executor",
        "LOG_LEVEL": "WARNING",
    }
    env.update({k: str(v) for k, v in overrides.items()})
    return env


def make_settings(workspace: Path, **overrides: Any) -> Settings:
    """A Settings object built only from the given values (no .env file, no process env)."""
    class _Isolated(Settings):
        model_config = SettingsConfigDict(**{**Settings.model_config, "env_file": None})

        @classmethod
        def settings_customise_sources(cls, settings_cls: Any, init_settings: Any, *_: Any, **__: Any) -> Any:
            return (init_settings,)

    return _Isolated(**settings_env(workspace, **overrides))


@pytest.fixture
def settings_factory(tmp_path: Path) -> Any:
    def build(**overrides: Any) -> Settings:
        return make_settings(tmp_path / "workspace", **overrides)

    return build


def _pg_available() -> str | None:
    try:
        import psycopg

        with psycopg.connect(PG_ADMIN_URL, connect_timeout=3) as conn:
            conn.execute("select 1")
        return None
    except Exception as exc:
        return f"PostgreSQL at {PG_ADMIN_URL} unreachable: {exc}"


@pytest.fixture
def pg_database() -> Iterator[str]:
    """A throwaway PostgreSQL database for one test (dropped afterwards). Skips with the reason
    when the server is unreachable - never passes silently."""
    reason = _pg_available()
    if reason:
        pytest.skip(reason)
    import psycopg

    name = f"autocode_test_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(PG_ADMIN_URL, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    url = PG_ADMIN_URL.rsplit("/", 1)[0] + f"/{name}"
    try:
        yield url
    finally:
        with psycopg.connect(PG_ADMIN_URL, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
