"""Fixtures of the durability tests: the process registry (no orphan survives a test), the database
backend (embedded SQLite or a throwaway PostgreSQL database), and a service environment builder."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from app.demo_repo import DemoRepo
from tests.conftest import settings_env
from tests.durability.service_proc import Procs, base_env
from tests.gitrepos import make_remote


@pytest.fixture
def procs() -> Iterator[Procs]:
    registry = Procs()
    try:
        yield registry
    finally:
        registry.cleanup()


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def database_url(request: pytest.FixtureRequest) -> str | None:
    """None = the embedded SQLite file under each service's WORKSPACE_DIR; else a PostgreSQL URL."""
    if request.param == "postgres":
        return request.getfixturevalue("pg_database")
    return None


@pytest.fixture
def demo(tmp_path: Path) -> DemoRepo:
    return make_remote(tmp_path / "target")


EnvBuilder = Callable[..., dict[str, str]]


@pytest.fixture
def service_env(tmp_path: Path, demo: DemoRepo) -> EnvBuilder:
    """`service_env(workspace, script, **settings)` -> a service's whole environment: isolated
    settings on `workspace` cloning the demo remote, Claude scripted by `script` (a dict written to
    a JSON file for MOCK_CLAUDE_SCRIPT), generous rate limit, overrides by env name."""

    def build(workspace: Path, script: dict[str, Any] | None = None, **overrides: Any) -> dict[str, str]:
        values: dict[str, Any] = {**demo.env(), "RATE_LIMIT": "100000/minute", **overrides}
        if script is not None:
            path = workspace.parent / f"{workspace.name}-claude-script.json"
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(json.dumps(script))
            values["MOCK_CLAUDE_SCRIPT"] = str(path)
        values = {k: v for k, v in values.items() if v is not None}
        return base_env(**settings_env(workspace, **values))

    return build
