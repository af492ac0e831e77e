"""Builders shared by the intake tests: isolated settings and fixture loading."""

from __future__ import annotations

import json
import tempfile
from pathlib import Path
from typing import Any

from app.config import Settings
from tests.conftest import make_settings as _isolated_settings

FIXTURES = Path(__file__).parent / "fixtures"


def load_fixture(name: str) -> dict[str, Any]:
    return json.loads((FIXTURES / f"{name}.json").read_text(encoding="utf-8"))


def load_raw(name: str) -> bytes:
    return (FIXTURES / f"{name}.json").read_bytes()


def make_settings(**env: Any) -> Settings:
    """Settings from explicit values only (no .env, no process environment). The workspace is never
    touched by the pure intake functions."""
    return _isolated_settings(Path(tempfile.gettempdir()) / "auto-code-intake-unused", **env)
