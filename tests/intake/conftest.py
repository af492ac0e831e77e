"""Builders shared by the intake tests: settings without any .env, and fixture loading."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from app.config import Settings

FIXTURES = Path(__file__).parent / "fixtures"


def load_fixture(name: str) -> dict[str, Any]:
    return json.loads((FIXTURES / f"{name}.json").read_text(encoding="utf-8"))


def make_settings(**env: Any) -> Settings:
    """Settings from explicit values only (never the developer's .env)."""
    return Settings(_env_file=None, **env)  # type: ignore[call-arg]


@pytest.fixture
def settings() -> Settings:
    return make_settings()
