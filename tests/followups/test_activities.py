"""`build_activities` (app/followups/activities.py) with two repositories: one PR-activity client per
repository on its own API URL and token (real HTTP to a fake GitHub each, answering only to its
token), found by owner/name lower-cased; the service's account per token; each client closed once."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest

from app.followups.activities import build_activities
from app.followups.deps import FollowupDeps
from app.followups.store import FollowupStore
from app.repositories.load import load_repositories
from app.repositories.registry import build_repositories
from tests.conftest import make_settings
from tests.repositories.kit import API_TOKEN, WEB_TOKEN, repositories_file, two_repositories


def test_one_client_per_repository_each_with_its_own_url_token_and_account(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import sqlalchemy as sa

    with two_repositories(tmp_path, monkeypatch) as two:
        gh_web, gh_api = two["gh_web"], two["gh_api"]
        gh_web.activity.token_login = "web-bot"
        path = repositories_file(tmp_path, two["web"], two["api"], gh_web, gh_api)
        settings = make_settings(tmp_path / "ws", REPOSITORIES_FILE=str(path), GITHUB_CLIENT="api",
                                 GH_TOKEN=API_TOKEN, GITHUB_SERVICE_LOGIN="api-service")
        repos = build_repositories(settings, load_repositories(settings, environ={"GH_TOKEN_WEB": WEB_TOKEN}))
        activities = build_activities(settings, repos)
        fu = FollowupDeps(store=FollowupStore(sa.create_engine("sqlite://")), activities=activities)

        async def use() -> dict[str, Any]:
            web, api = fu.activity("acme/web"), fu.activity("acme/api")
            assert web is not None and api is not None and web is not api
            out = {
                "web_pr": await web.permission("nobody"),  # each answers on its own fake (token checked)
                "api_pr": await api.permission("nobody"),
                "logins": [await fu.service_login("acme/web"), await fu.service_login("acme/web"),
                           await fu.service_login("acme/api"), await fu.service_login("acme/elsewhere")],
            }
            await activities.aclose()
            out["closed"] = [web._rest.http.is_closed, api._rest.http.is_closed]  # type: ignore[attr-defined]
            return out

        out = asyncio.run(use())
    assert activities.keys == ["acme/web", "acme/api"] and activities.talks_to_github
    assert not activities.configured("acme/elsewhere") and activities.get("acme/elsewhere") is None
    assert out["web_pr"] == out["api_pr"] == "none" and out["closed"] == [True, True]
    web_paths = [r.path for r in gh_web.requests]
    api_paths = [r.path for r in gh_api.requests]
    assert web_paths == ["/repos/acme/web/collaborators/nobody/permission", "/user"]  # GET /user once
    assert api_paths == ["/repos/acme/api/collaborators/nobody/permission"]  # no GET /user: configured
    # web has its own token (token_env): its account is learned; GITHUB_SERVICE_LOGIN is GH_TOKEN's.
    assert out["logins"] == ["web-bot", "web-bot", "api-service", None]
    assert all(r.headers["authorization"].endswith(WEB_TOKEN) for r in gh_web.requests)
    assert all(r.headers["authorization"].endswith(API_TOKEN) for r in gh_api.requests)


def test_without_a_repositories_file_the_one_client_is_the_given_one(tmp_path: Path) -> None:
    settings = make_settings(tmp_path / "ws", GITHUB_REPOSITORY="Acme/Greeter", REPO_URL=str(tmp_path),
                             GITHUB_SERVICE_LOGIN="bot")
    from app.repositories.config import RepositoryConfig
    from app.repositories.registry import Repository

    given: Any = object()  # the collaborator a test or the demo supplies; never called here
    repos = [Repository(RepositoryConfig.from_settings(settings), workspace=given, pull_requests=given)]
    activities = build_activities(settings, repos, given)
    assert activities.keys == ["acme/greeter"] and activities.get("acme/greeter") is given
    assert activities.entry("acme/greeter").login == "bot"  # type: ignore[union-attr]
