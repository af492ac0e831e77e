"""The real service over real HTTP for the browser and CLI tests: the app of `create_app` (lifespan,
DBOS on SQLite, queue, runner, real git against a bare demo remote, local PR records) served by
uvicorn on 127.0.0.1 in a thread of the test process, with a scripted Claude supplied as a
collaborator (as tests/services/runner/harness.py does).

`GatedClaude` holds every `implement` call until the test releases it, so a test can open a page
while a step is running and then let the step finish - no sleeps, no race with the page load.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import uvicorn

from app.composition import Collaborators
from app.main import create_app, services_of
from app.models import FINAL_STATUSES
from app.services.claude_code.base import AgentRequest, AgentRun, ReviewResult
from app.services.claude_code.scripted import ScriptedClaudeCode
from tests.gitrepos import make_remote, workspace_settings

START_TIMEOUT_S = 60.0


class GatedClaude(ScriptedClaudeCode):
    """The scripted Claude, except that `implement` waits for `release` and `review` for
    `release_review` (set by the test; set from the start unless gated). `entered` /
    `entered_review` are set when such a call is waiting."""

    def __init__(self, script: dict[str, Any] | None = None, *, gated: bool = False,
                 gated_review: bool = False) -> None:
        super().__init__(script)
        self.entered, self.release = threading.Event(), threading.Event()
        self.entered_review, self.release_review = threading.Event(), threading.Event()
        if not gated:
            self.release.set()
        if not gated_review:
            self.release_review.set()

    @staticmethod
    async def _hold(entered: threading.Event, release: threading.Event) -> None:
        entered.set()
        while not release.is_set():  # cancellable: a cancelled run stops here
            await asyncio.sleep(0.02)

    async def implement(self, req: AgentRequest) -> AgentRun:
        await self._hold(self.entered, self.release)
        return await super().implement(req)

    async def review(self, req: AgentRequest) -> ReviewResult:
        await self._hold(self.entered_review, self.release_review)
        return await super().review(req)


@dataclass
class LiveService:
    url: str
    app: Any
    claude: GatedClaude
    workspace: Path

    @property
    def store(self) -> Any:
        return services_of(self.app).store.sync  # the real SqlRunStore (sync API) behind the routes

    def deliver(self, key: str, summary: str = "Do the thing") -> str:
        resp = httpx.post(f"{self.url}/webhook/jira", json={"key": key, "summary": summary}, timeout=10)
        assert resp.status_code == 202, resp.text
        return str(resp.json()["run_id"])

    def get_run(self, run_id: str, headers: dict[str, str] | None = None) -> dict[str, Any]:
        resp = httpx.get(f"{self.url}/runs/{run_id}", headers=headers or {}, timeout=10)
        assert resp.status_code == 200, resp.text
        return dict(resp.json())

    def get_run_list(self, **params: Any) -> list[dict[str, Any]]:
        token = self.app.state.settings.operator_token
        headers = {"Authorization": f"Bearer {token.get_secret_value()}"} if token else {}
        resp = httpx.get(f"{self.url}/runs", params=params, headers=headers, timeout=10)
        assert resp.status_code == 200, resp.text
        return list(resp.json())

    def wait(self, run_id: str, until: Any = None, headers: dict[str, str] | None = None,
             timeout: float = 60) -> dict[str, Any]:
        """Poll the runs API until `until(run)` (default: a final status)."""
        check = until or (lambda run: run["status"] in FINAL_STATUSES)
        deadline = time.monotonic() + timeout
        run: dict[str, Any] = {}
        while time.monotonic() < deadline:
            run = self.get_run(run_id, headers)
            if check(run):
                return run
            time.sleep(0.05)
        raise AssertionError(f"run {run_id}: condition not reached in {timeout}s: {run}")

    def step_status(self, run_id: str, name: str, headers: dict[str, str] | None = None) -> str | None:
        steps = {s["name"]: s["status"] for s in self.get_run(run_id, headers)["steps"]}
        return steps.get(name)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@contextlib.contextmanager
def live_service(tmp_path: Path, script: dict[str, Any] | None = None, *, gated: bool = False,
                 gated_review: bool = False, **env: Any) -> Iterator[LiveService]:
    demo = make_remote(tmp_path / "target")
    settings = workspace_settings(tmp_path, demo, **{k: str(v) for k, v in env.items()})
    claude = GatedClaude(script, gated=gated, gated_review=gated_review)
    app = create_app(settings, Collaborators(claude=claude))
    port = free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_config=None,
                                           lifespan="on", timeout_graceful_shutdown=5))
    thread = threading.Thread(target=server.run, name="live-service", daemon=True)
    thread.start()
    deadline = time.monotonic() + START_TIMEOUT_S
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            server.should_exit = True
            raise AssertionError("the service did not start")
        time.sleep(0.02)
    try:
        yield LiveService(url=f"http://127.0.0.1:{port}", app=app, claude=claude,
                          workspace=settings.workspace_dir)
    finally:
        claude.release.set()
        claude.release_review.set()
        server.should_exit = True
        thread.join(30)
