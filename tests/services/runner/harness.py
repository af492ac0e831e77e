"""A running service for pipeline tests: the real app (lifespan, DBOS on SQLite, queue, runner),
real git against a bare demo remote, local PR records, and a scripted Claude supplied through
`Collaborators` (the path production's composition root takes). Tests deliver tickets through
`POST /webhook/jira` and read results through the runs API.
"""

from __future__ import annotations

import contextlib
import dataclasses
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from fastapi.testclient import TestClient

from app.composition import Collaborators, Services
from app.config import Settings
from app.main import create_app, services_of
from app.models import FINAL_STATUSES
from app.services.claude_code.scripted import ScriptedClaudeCode
from app.services.github.local import LocalPullRequests
from tests.gitrepos import make_remote, workspace_settings


@dataclass
class Service:
    client: TestClient
    app: Any
    remote: Path
    workspace: Path
    claude: ScriptedClaudeCode

    def deliver(self, key: str, summary: str = "Do the thing", **extra: Any) -> dict[str, Any]:
        resp = self.client.post("/webhook/jira", json={"key": key, "summary": summary, **extra})
        assert resp.status_code == 202, resp.text
        return resp.json()

    def wait(self, run_id: str, timeout: float = 60) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            run = self.client.get(f"/runs/{run_id}").json()
            if run["status"] in FINAL_STATUSES:
                return run
            time.sleep(0.05)
        raise AssertionError(f"run {run_id} did not finish in {timeout}s: {run}")

    def run(self, key: str, summary: str = "Do the thing") -> dict[str, Any]:
        return self.wait(self.deliver(key, summary)["run_id"])

    def prs(self) -> list[dict[str, Any]]:
        return LocalPullRequests(self.workspace / "pull-requests.json").records()

    @property
    def services(self) -> Services:
        return services_of(self.app)

    def logs(self, run_id: str) -> list[str]:
        return [line.message for line in self.services.store.sync.logs_after(run_id)]


def step(run: dict[str, Any], name: str) -> dict[str, Any]:
    matches = [s for s in run["steps"] if s["name"] == name]
    assert matches, f"no step {name} in {[s['name'] for s in run['steps']]}"
    return matches[0]


@contextlib.contextmanager
def running_service(tmp_path: Path, script: dict[str, Any] | None = None, *,
                    collaborators: Callable[[Settings], Collaborators] | None = None,
                    **env: Any) -> Iterator[Service]:
    """`collaborators`: builds what the test supplies from the service's settings (the scripted
    Claude of `script` is added unless it supplies its own)."""
    demo = make_remote(tmp_path / "target")
    settings = workspace_settings(tmp_path, demo, **{k: str(v) for k, v in env.items()})
    given = collaborators(settings) if collaborators else Collaborators()
    claude = given.claude if isinstance(given.claude, ScriptedClaudeCode) else None
    claude = claude or ScriptedClaudeCode(script or {})
    app = create_app(settings, dataclasses.replace(given, claude=given.claude or claude))
    with TestClient(app) as client:
        yield Service(client=client, app=app, remote=demo.remote, workspace=settings.workspace_dir,
                      claude=claude)
