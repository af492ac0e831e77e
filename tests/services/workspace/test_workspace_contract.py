"""The `Workspace` contract, run against the real git workspace (local bare remote) and the
directory-backed fake alike: what the runner relies on must hold for both."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from app.demo_repo import SEED_FILES
from app.errors import WorkspaceError
from app.services.workspace import GitWorkspace, Workspace
from tests.fakes.workspace import InMemoryWorkspace
from tests.gitrepos import make_remote, workspace_settings


@pytest.fixture(params=["git", "memory"])
def ws(request: pytest.FixtureRequest, tmp_path: Path) -> Workspace:
    if request.param == "git":
        demo = make_remote(tmp_path / "demo")
        return GitWorkspace(workspace_settings(tmp_path, demo))
    return InMemoryWorkspace(tmp_path / "mem", seed_files=SEED_FILES)


class TestPrepare:
    async def test_worktree_on_ticket_branch_with_base_files(self, ws: Workspace) -> None:
        wt = await ws.prepare("PROJ-12")
        assert wt.branch == "ticket/proj-12"
        assert wt.path.name == "ticket-proj-12" and wt.path.parent.name == "worktrees"
        assert (wt.path / "greeter" / "greeting.py").read_text() == SEED_FILES["greeter/greeting.py"]
        assert len(wt.base_sha) == 40
        assert not await ws.has_changes(wt)
        assert await ws.diff_summary(wt) == ""

    async def test_rerun_resets_to_base(self, ws: Workspace) -> None:
        first = await ws.prepare("PROJ-1")
        (first.path / "new.txt").write_text("first attempt\n")
        await ws.commit(first, "PROJ-1: first attempt")
        (first.path / "scratch.txt").write_text("uncommitted\n")
        again = await ws.prepare("PROJ-1")
        assert again.path == first.path and again.branch == first.branch
        assert again.base_sha == first.base_sha
        assert not (again.path / "new.txt").exists() and not (again.path / "scratch.txt").exists()
        assert not await ws.has_changes(again)

    async def test_two_tickets_in_parallel_are_isolated(self, ws: Workspace) -> None:
        a, b = await asyncio.gather(ws.prepare("PROJ-1"), ws.prepare("PROJ-2"))
        assert a.path != b.path
        (a.path / "only_a.txt").write_text("a\n")
        assert await ws.has_changes(a)
        assert not await ws.has_changes(b)
        assert not (b.path / "only_a.txt").exists()


class TestChanges:
    async def test_untracked_file_counts_and_shows_in_summary(self, ws: Workspace) -> None:
        wt = await ws.prepare("PROJ-3")
        (wt.path / "greeter" / "farewell.py").write_text("def bye() -> str:\n    return 'bye'\n")
        assert await ws.has_changes(wt)
        assert "greeter/farewell.py" in await ws.diff_summary(wt)

    async def test_edit_and_delete_count(self, ws: Workspace) -> None:
        wt = await ws.prepare("PROJ-4")
        (wt.path / "README.md").unlink()
        assert await ws.has_changes(wt)
        assert "README.md" in await ws.diff_summary(wt)

    async def test_committed_work_still_counts_as_changes(self, ws: Workspace) -> None:
        wt = await ws.prepare("PROJ-5")
        (wt.path / "x.txt").write_text("x\n")
        await ws.commit(wt, "PROJ-5: x")
        assert await ws.has_changes(wt)
        assert "x.txt" in await ws.diff_summary(wt)


class TestCommitPushRemove:
    async def test_commit_returns_new_head_and_refuses_empty(self, ws: Workspace) -> None:
        wt = await ws.prepare("PROJ-6")
        with pytest.raises(WorkspaceError):
            await ws.commit(wt, "PROJ-6: nothing")
        (wt.path / "x.txt").write_text("x\n")
        sha = await ws.commit(wt, "PROJ-6: add x")
        assert len(sha) == 40 and sha != wt.base_sha
        with pytest.raises(WorkspaceError):
            await ws.commit(wt, "PROJ-6: again")
        (wt.path / "x.txt").write_text("y\n")
        assert await ws.commit(wt, "PROJ-6: change x") != sha

    async def test_push_after_commit(self, ws: Workspace) -> None:
        wt = await ws.prepare("PROJ-7")
        (wt.path / "x.txt").write_text("x\n")
        await ws.commit(wt, "PROJ-7: x")
        await ws.push(wt)  # raises on failure

    async def test_remove_deletes_and_is_idempotent(self, ws: Workspace) -> None:
        wt = await ws.prepare("PROJ-8")
        await ws.remove(wt)
        assert not wt.path.exists()
        await ws.remove(wt)
        again = await ws.prepare("PROJ-8")
        assert again.path.is_dir()
