"""The `two` fixture: two bare remotes and two fake GitHub repositories (see kit.py)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.repositories.kit import two_repositories


@pytest.fixture
def two(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[dict[str, Any]]:
    with two_repositories(tmp_path, monkeypatch) as repos:
        yield repos
