"""Helpers for the route tests: the REAL app (`create_app`, real SQLite DBOS under a temp
WORKSPACE_DIR, mock Claude, local GitHub) behind Starlette's TestClient, plus run counting through
the runs API."""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from fastapi.testclient import TestClient

from tests.conftest import make_settings

URL = "/webhook/jira"
# A trusted peer by default (TRUSTED_PROXIES defaults to loopback), so forwarding headers count.
LOOPBACK = ("127.0.0.1", 50000)


@contextmanager
def service(workspace: Path, *, client: tuple[str, int] = LOOPBACK, **env: Any) -> Iterator[TestClient]:
    """Start the real app with its lifespan. QUEUE_POLL_INTERVAL_SEC is long by default so accepted
    runs stay queued for the test's lifetime (a second delivery is then deterministically a
    duplicate, and nothing runs the pipeline)."""
    from app.main import create_app

    env.setdefault("QUEUE_POLL_INTERVAL_SEC", "30")
    settings = make_settings(workspace, **env)
    with TestClient(create_app(settings), client=client) as tc:
        yield tc


def post(client: TestClient, body: Any, headers: dict[str, str] | None = None, **kw: Any) -> Any:
    """POST a JSON value (or raw bytes) with Content-Type application/json unless overridden."""
    content = body if isinstance(body, bytes) else json.dumps(body).encode()
    h = {"Content-Type": "application/json", **(headers or {})}
    return client.post(URL, content=content, headers=h, **kw)


def runs(client: TestClient, ticket: str | None = None) -> list[dict[str, Any]]:
    params: dict[str, Any] = {"limit": 500}
    if ticket:
        params["ticket"] = ticket
    r = client.get("/runs", params=params)
    assert r.status_code == 200, r.text
    return r.json()


def assert_error(response: Any, status: int, code: str | None = None) -> dict[str, Any]:
    assert response.status_code == status, response.text
    body = response.json()
    assert set(body) == {"error", "detail"}, body
    if code is not None:
        assert body["error"] == code, body
    return body
