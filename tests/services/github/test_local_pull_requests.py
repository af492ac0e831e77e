"""LocalPullRequests (the offline PR store) and the pull-request factory."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

from app.config import Settings
from app.services.github import (
    GitHubPullRequests,
    LocalPullRequests,
    build_pull_requests,
)


class TestInMemory:
    async def test_opens_then_reuses_the_open_pr_for_a_head(self) -> None:
        prs = LocalPullRequests()
        first = await prs.open_or_reuse(head="ticket/a-1", base="main", title="A-1: x", body="one")
        again = await prs.open_or_reuse(head="ticket/a-1", base="main", title="A-1: y", body="two")
        other = await prs.open_or_reuse(head="ticket/a-2", base="main", title="A-2", body="")
        assert first.created and not again.created and other.created
        assert (first.number, again.number, other.number) == (1, 1, 2)
        assert first.html_url == "local://pr/1"
        [a1, a2] = prs.records()
        assert (a1["head"], a1["base"], a1["title"], a1["body"]) == ("ticket/a-1", "main", "A-1: y", "two")
        assert a2["head"] == "ticket/a-2"

    async def test_a_closed_pr_is_not_reused(self) -> None:
        prs = LocalPullRequests()
        first = await prs.open_or_reuse(head="ticket/a-3", base="main", title="t", body="b")
        prs.close(first.number)
        second = await prs.open_or_reuse(head="ticket/a-3", base="main", title="t", body="b")
        assert second.created and second.number == 2


class TestFile:
    async def test_records_are_in_a_json_file_other_instances_read(self, tmp_path: Path) -> None:
        path = tmp_path / "ws" / "pull-requests.json"
        pr = await LocalPullRequests(path).open_or_reuse(head="ticket/b-1", base="main", title="t", body="b")
        assert pr.html_url == f"{path.resolve().as_uri()}#pr-1"
        data = json.loads(path.read_text())
        assert data["pull_requests"][0]["head"] == "ticket/b-1"
        # A second instance (another process, the CLI) sees and reuses the same record.
        other = LocalPullRequests(path)
        again = await other.open_or_reuse(head="ticket/b-1", base="main", title="t2", body="b")
        assert not again.created and again.number == 1
        assert [p.name for p in path.parent.iterdir() if p.name.endswith(".tmp")] == []

    def test_concurrent_processes_never_lose_or_duplicate_a_record(self, tmp_path: Path) -> None:
        path = tmp_path / "pull-requests.json"
        script = textwrap.dedent(
            """
            import asyncio, sys
            from pathlib import Path
            from app.services.github.local import LocalPullRequests

            async def main(worker):
                prs = LocalPullRequests(Path(sys.argv[1]))
                for i in range(15):
                    await prs.open_or_reuse(head=f"ticket/w{worker}-{i}", base="main", title="t", body="b")
                    await prs.open_or_reuse(head="ticket/shared-1", base="main", title=f"w{worker}", body="b")

            asyncio.run(main(sys.argv[2]))
            """
        )
        procs = [
            subprocess.Popen([sys.executable, "-c", script, str(path), str(n)], start_new_session=True)
            for n in range(4)
        ]
        try:
            codes = [p.wait(timeout=60) for p in procs]
        finally:
            for p in procs:
                if p.poll() is None:
                    os.killpg(p.pid, signal.SIGKILL)
                    p.wait()
        assert codes == [0, 0, 0, 0]
        records = json.loads(path.read_text())["pull_requests"]
        heads = [r["head"] for r in records]
        assert len(records) == 4 * 15 + 1  # one shared PR, reused by every worker
        assert len(set(heads)) == len(heads) and heads.count("ticket/shared-1") == 1
        assert sorted(r["number"] for r in records) == list(range(1, len(records) + 1))


class TestFactory:
    def make(self, tmp_path: Path, **env: object) -> Settings:
        return Settings(_env_file=None, WORKSPACE_DIR=str(tmp_path), **env)  # type: ignore[call-arg]

    def test_local_records_without_a_token(self, tmp_path: Path) -> None:
        prs = build_pull_requests(self.make(tmp_path))
        assert isinstance(prs, LocalPullRequests) and prs.path == tmp_path / "pull-requests.json"

    async def test_the_api_with_a_token_and_a_new_instance_per_call(self, tmp_path: Path) -> None:
        settings = self.make(tmp_path, GH_TOKEN="ghp_x", GITHUB_REPOSITORY="acme/widgets")
        prs = build_pull_requests(settings)
        assert isinstance(prs, GitHubPullRequests)
        again = build_pull_requests(settings)
        assert again is not prs  # no cache: the composition root builds it once per lifetime
        await again.aclose()
        await prs.aclose()

    def test_github_client_local_wins_over_a_token(self, tmp_path: Path) -> None:
        settings = self.make(tmp_path, GH_TOKEN="ghp_x", GITHUB_CLIENT="local")
        assert isinstance(build_pull_requests(settings), LocalPullRequests)

