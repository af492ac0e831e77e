"""The `two` fixture: two bare remotes and two fake GitHub repositories (see kit.py)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.fakes.github_api import FakeGitHub
from tests.gitrepos import make_remote
from tests.repositories.kit import API_TOKEN, WEB_TOKEN


@pytest.fixture
def two(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[dict[str, Any]]:
    monkeypatch.setenv("GH_TOKEN_WEB", WEB_TOKEN)  # the web repository's own token (token_env)
    web, api = make_remote(tmp_path / "web"), make_remote(tmp_path / "api")
    with FakeGitHub(owner="acme", repo="web", token=WEB_TOKEN) as gh_web, \
            FakeGitHub(owner="acme", repo="api", token=API_TOKEN) as gh_api:
        yield {"web": web, "api": api, "gh_web": gh_web, "gh_api": gh_api}
