"""The service with two repositories (tests/repositories/kit.py's "web" and "api", each on its own
fake GitHub) and the real Claude Code CLI against the scripted model server, for the e2e tests of
several repositories."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from fastapi.testclient import TestClient

from app.main import create_app
from tests.e2e.conftest import API_KEY, E2EService
from tests.fakes.anthropic_api import FakeAnthropicAPI
from tests.gitrepos import make_remote, workspace_settings
from tests.repositories.kit import repositories_file


@contextlib.contextmanager
def two_repository_service(tmp_path: Path, two: dict[str, Any], model: FakeAnthropicAPI,
                           **env: str) -> Iterator[E2EService]:
    """The real app over `two` (a `two_repositories` dict): "web" names GH_TOKEN_WEB, "api" uses
    GH_TOKEN (the api fake's token). `env`: more settings (e.g. GITHUB_WEBHOOK_SECRET)."""
    path = repositories_file(tmp_path, two["web"], two["api"], two["gh_web"], two["gh_api"])
    settings = workspace_settings(
        tmp_path, make_remote(tmp_path / "unused"), CLAUDE_CLIENT="sdk", ANTHROPIC_API_KEY=API_KEY,
        CLAUDE_TIMEOUT_SEC="30", CLAUDE_MAX_TURNS="10", GITHUB_CLIENT="api", GH_TOKEN=two["gh_api"].token,
        REPOSITORIES_FILE=str(path), **env)
    app = create_app(settings)
    with TestClient(app) as client:
        yield E2EService(client=client, app=app, settings=settings, demo=two["web"], model=model,
                         github=two["gh_web"], headers={})
