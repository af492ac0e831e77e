"""GitWorkspace against real git and local bare remotes: clone vs fetch, branch reset, push and
force-with-lease, locking across processes, REPO_DIR fallback, clear errors."""

from __future__ import annotations

import asyncio
import sys
import time
from pathlib import Path

import pytest

from app.demo_repo import DemoRepo
from app.errors import WorkspaceError
from app.proc import run_command
from app.services.workspace import GitWorkspace, build_workspace
from tests.gitrepos import commit_to_remote, git, make_remote, remote_sha, workspace_settings


@pytest.fixture
def demo(tmp_path: Path) -> DemoRepo:
    return make_remote(tmp_path / "demo")


@pytest.fixture
def ws(tmp_path: Path, demo: DemoRepo) -> GitWorkspace:
    return GitWorkspace(workspace_settings(tmp_path, demo))


class TestCloneThenFetch:
    async def test_first_prepare_clones_later_ones_fetch_new_base(
        self, ws: GitWorkspace, demo: DemoRepo
    ) -> None:
        first = await ws.prepare("PROJ-1")
        assert (ws.repo_dir / ".git").is_dir()
        assert first.base_sha == remote_sha(demo.remote, "main")
        marker = (ws.repo_dir / ".git" / "marker")
        marker.write_text("same clone")  # proves the second prepare fetched instead of re-cloning
        new_sha = commit_to_remote(demo.remote, {"CHANGELOG.md": "- new\n"}, "upstream change")
        second = await ws.prepare("PROJ-2")
        assert second.base_sha == new_sha != first.base_sha
        assert (second.path / "CHANGELOG.md").exists() and marker.exists()

    async def test_clone_has_no_checkout_and_no_stray_scratch(self, ws: GitWorkspace) -> None:
        await ws.prepare("PROJ-1")
        assert not (ws.repo_dir / "README.md").exists()
        assert not list(ws.root.glob(".repo-clone-*"))

    async def test_broken_repo_dir_is_recloned(self, ws: GitWorkspace) -> None:
        ws.repo_dir.mkdir(parents=True)
        (ws.repo_dir / "junk").write_text("half a clone")
        wt = await ws.prepare("PROJ-1")
        assert (wt.path / "README.md").exists()

    async def test_changed_repo_url_is_followed(self, tmp_path: Path, demo: DemoRepo) -> None:
        ws = GitWorkspace(workspace_settings(tmp_path, demo))
        await ws.prepare("PROJ-1")
        other = make_remote(tmp_path / "other")
        sha = commit_to_remote(other.remote, {"OTHER.md": "other\n"}, "other repo")
        moved = GitWorkspace(workspace_settings(tmp_path, other))
        wt = await moved.prepare("PROJ-1")
        assert wt.base_sha == sha and (wt.path / "OTHER.md").exists()


class TestBranchReset:
    async def test_same_ticket_twice_resets_branch_to_base(self, ws: GitWorkspace) -> None:
        wt = await ws.prepare("PROJ-9")
        (wt.path / "a.txt").write_text("a\n")
        await ws.commit(wt, "PROJ-9: a")
        again = await ws.prepare("PROJ-9")
        head = git(again.path, "rev-parse", "HEAD").strip()
        branch = git(again.path, "rev-parse", "--abbrev-ref", "HEAD").strip()
        assert head == again.base_sha and branch == "ticket/proj-9"

    async def test_stale_worktree_dir_deleted_by_hand(self, ws: GitWorkspace) -> None:
        import shutil

        wt = await ws.prepare("PROJ-9")
        shutil.rmtree(wt.path)  # registration left behind in repo/.git/worktrees
        again = await ws.prepare("PROJ-9")
        assert (again.path / "README.md").exists()
        listing = git(ws.repo_dir, "worktree", "list", "--porcelain")
        assert listing.count("ticket-proj-9") == 1

    async def test_remove_keeps_branch_and_unregisters(self, ws: GitWorkspace) -> None:
        wt = await ws.prepare("PROJ-9")
        await ws.remove(wt)
        assert "ticket-proj-9" not in git(ws.repo_dir, "worktree", "list")
        assert "ticket/proj-9" in git(ws.repo_dir, "branch", "--list", "ticket/*")


class TestCommitIdentity:
    async def test_commit_uses_service_identity_and_message(self, tmp_path: Path, demo: DemoRepo) -> None:
        settings = workspace_settings(tmp_path, demo, GIT_AUTHOR_NAME="Bot Person",
                                      GIT_AUTHOR_EMAIL="bot@example.invalid")
        ws = GitWorkspace(settings)
        wt = await ws.prepare("PROJ-2")
        (wt.path / "b.txt").write_text("b\n")
        sha = await ws.commit(wt, "PROJ-2: add b\n\nbody line")
        log = git(wt.path, "log", "-1", "--format=%an|%ae|%cn|%ce|%s|%b", sha)
        expected = "Bot Person|bot@example.invalid|Bot Person|bot@example.invalid|PROJ-2: add b|body line"
        assert log.strip() == expected

    async def test_planted_hooks_do_not_run(self, ws: GitWorkspace, tmp_path: Path) -> None:
        # post-commit and reference-transaction hooks are not skipped by --no-verify; a hook an
        # agent planted would otherwise run with the push's environment (and its token).
        wt = await ws.prepare("PROJ-2")
        marker = tmp_path / "hook-ran"
        (ws.repo_dir / ".git" / "hooks").mkdir(exist_ok=True)  # the clone is made without templates
        for name in ("post-commit", "reference-transaction", "pre-push"):
            hook = ws.repo_dir / ".git" / "hooks" / name
            hook.write_text(f"#!/bin/sh\necho {name} >> {marker}\n")
            hook.chmod(0o755)
        (wt.path / "b.txt").write_text("b\n")
        await ws.commit(wt, "PROJ-2: b")
        await ws.push(wt)
        await ws.prepare("PROJ-2")
        assert not marker.exists()


class TestPush:
    async def test_push_creates_branch_on_remote(self, ws: GitWorkspace, demo: DemoRepo) -> None:
        wt = await ws.prepare("PROJ-3")
        (wt.path / "c.txt").write_text("c\n")
        sha = await ws.commit(wt, "PROJ-3: c")
        assert remote_sha(demo.remote, "ticket/proj-3") is None
        await ws.push(wt)
        assert remote_sha(demo.remote, "ticket/proj-3") == sha

    async def test_rerun_force_pushes_over_previous_attempt(self, ws: GitWorkspace, demo: DemoRepo) -> None:
        wt = await ws.prepare("PROJ-3")
        (wt.path / "c.txt").write_text("first\n")
        await ws.commit(wt, "PROJ-3: first")
        await ws.push(wt)
        wt = await ws.prepare("PROJ-3")
        (wt.path / "c.txt").write_text("second\n")
        second = await ws.commit(wt, "PROJ-3: second")
        await ws.push(wt)  # not a fast-forward: needs the (leased) force
        assert remote_sha(demo.remote, "ticket/proj-3") == second

    async def test_lease_refuses_to_clobber_a_foreign_push(self, ws: GitWorkspace, demo: DemoRepo) -> None:
        wt = await ws.prepare("PROJ-3")
        (wt.path / "c.txt").write_text("ours\n")
        await ws.commit(wt, "PROJ-3: ours")
        await ws.push(wt)
        wt = await ws.prepare("PROJ-3")  # fetch: our view of origin/ticket/proj-3 is current
        theirs = commit_to_remote(demo.remote, {"human.txt": "a human pushed\n"}, "human fix",
                                  branch="ticket/proj-3")
        (wt.path / "c.txt").write_text("ours again\n")
        await ws.commit(wt, "PROJ-3: ours again")
        with pytest.raises(WorkspaceError) as info:
            await ws.push(wt)
        assert "stale info" in info.value.stderr or "rejected" in info.value.stderr
        assert remote_sha(demo.remote, "ticket/proj-3") == theirs


    async def test_repeated_push_is_up_to_date(self, ws: GitWorkspace, demo: DemoRepo) -> None:
        # A push step retried after a crash, even one that came before we recorded the push.
        wt = await ws.prepare("PROJ-3")
        (wt.path / "c.txt").write_text("c\n")
        sha = await ws.commit(wt, "PROJ-3: c")
        await ws.push(wt)
        git(ws.repo_dir, "update-ref", "-d", "refs/remotes/origin/ticket/proj-3")
        await ws.push(wt)
        assert remote_sha(demo.remote, "ticket/proj-3") == sha
        assert not list((ws.root / "transit").iterdir())


class TestLocking:
    async def test_concurrent_prepares_share_one_clone(self, ws: GitWorkspace) -> None:
        keys = [f"PROJ-{i}" for i in range(1, 5)]
        wts = await asyncio.gather(*(ws.prepare(k) for k in keys))
        assert len({w.path for w in wts}) == 4 and all((w.path / "README.md").exists() for w in wts)

    async def test_waits_for_another_process_holding_the_lock(self, ws: GitWorkspace, tmp_path: Path) -> None:
        ws.root.mkdir(parents=True, exist_ok=True)
        holder = (
            "import fcntl, sys, time\n"
            f"fd = open({str(ws.root / 'repo.lock')!r}, 'w')\n"
            "fcntl.flock(fd, fcntl.LOCK_EX)\n"
            "print('locked', flush=True)\n"
            "time.sleep(1.5)\n"
        )
        other = asyncio.create_task(run_command([sys.executable, "-c", holder], cwd=tmp_path, env=None,
                                                timeout=30))
        await asyncio.sleep(0.5)  # let the other process take the lock
        started = time.monotonic()
        await ws.prepare("PROJ-1")
        waited = time.monotonic() - started
        assert (await other).ok
        assert waited >= 0.7  # blocked until the other process released it

    async def test_lock_wait_times_out_with_a_clear_error(self, tmp_path: Path, demo: DemoRepo) -> None:
        ws = GitWorkspace(workspace_settings(tmp_path, demo), lock_timeout=0.3)
        ws.root.mkdir(parents=True, exist_ok=True)
        holder = (
            "import fcntl, time\n"
            f"fd = open({str(ws.root / 'repo.lock')!r}, 'w')\n"
            "fcntl.flock(fd, fcntl.LOCK_EX)\n"
            "time.sleep(3)\n"
        )
        other = asyncio.create_task(run_command([sys.executable, "-c", holder], cwd=tmp_path, env=None,
                                                timeout=30))
        await asyncio.sleep(0.5)
        with pytest.raises(WorkspaceError, match="waiting for"):
            await ws.prepare("PROJ-1")
        other.cancel()
        with pytest.raises(asyncio.CancelledError):
            await other


class TestRepoDirFallback:
    async def test_local_working_repo_as_source(self, tmp_path: Path, demo: DemoRepo) -> None:
        local = tmp_path / "local-checkout"
        git(tmp_path, "clone", "--quiet", str(demo.remote), str(local))
        ws = GitWorkspace(workspace_settings(tmp_path, demo, REPO_URL="", REPO_DIR=str(local)))
        wt = await ws.prepare("PROJ-4")
        assert wt.base_sha == git(local, "rev-parse", "HEAD").strip()
        (wt.path / "d.txt").write_text("d\n")
        sha = await ws.commit(wt, "PROJ-4: d")
        await ws.push(wt)
        assert git(local, "rev-parse", "refs/heads/ticket/proj-4").strip() == sha


class TestErrors:
    async def test_no_repository_configured(self, tmp_path: Path, demo: DemoRepo) -> None:
        ws = GitWorkspace(workspace_settings(tmp_path, demo, REPO_URL=""))
        with pytest.raises(WorkspaceError, match="REPO_URL"):
            await ws.prepare("PROJ-1")

    async def test_missing_remote_carries_gits_words(self, tmp_path: Path, demo: DemoRepo) -> None:
        ws = GitWorkspace(workspace_settings(tmp_path, demo, REPO_URL=str(tmp_path / "nope.git")))
        with pytest.raises(WorkspaceError) as info:
            await ws.prepare("PROJ-1")
        assert "nope.git" in info.value.stderr and info.value.exit_code not in (0, None)
        assert not ws.repo_dir.exists()

    async def test_missing_base_branch(self, tmp_path: Path, demo: DemoRepo) -> None:
        ws = GitWorkspace(workspace_settings(tmp_path, demo, BASE_BRANCH="develop"))
        with pytest.raises(WorkspaceError, match="develop"):
            await ws.prepare("PROJ-1")

    @pytest.mark.parametrize("key", ["../etc", "PROJ-0", "proj 1", "PROJ-1\n", "-PROJ-1"])
    async def test_invalid_keys_never_reach_a_path(self, ws: GitWorkspace, key: str) -> None:
        with pytest.raises(WorkspaceError, match="invalid ticket key"):
            await ws.prepare(key)

    async def test_credentials_in_repo_url_are_refused(self, tmp_path: Path, demo: DemoRepo) -> None:
        ws = GitWorkspace(workspace_settings(tmp_path, demo, REPO_URL="https://x:ghp_secret@github.com/o/r.git"))
        with pytest.raises(WorkspaceError, match="GH_TOKEN") as info:
            await ws.prepare("PROJ-1")
        assert "ghp_secret" not in str(info.value)

    async def test_has_changes_on_a_removed_worktree_is_an_error(self, ws: GitWorkspace) -> None:
        wt = await ws.prepare("PROJ-1")
        await ws.remove(wt)
        with pytest.raises(WorkspaceError):
            await ws.has_changes(wt)


class TestFactory:
    def test_a_new_git_workspace_per_call(self, tmp_path: Path, demo: DemoRepo) -> None:
        s1 = workspace_settings(tmp_path, demo)
        assert isinstance(build_workspace(s1), GitWorkspace)
        assert build_workspace(s1) is not build_workspace(s1)  # no cache: built once by the root
