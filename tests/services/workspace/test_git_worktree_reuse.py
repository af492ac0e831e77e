"""A finished worktree is parked by `remove` and reset by the next `prepare` (spares.py, reuse.py):
the next ticket's worktree is exactly what a fresh `worktree add` makes - no file, mode, branch,
reflog, stash, per-worktree ref or config of the previous run survives - and a spare that cannot
be made so is replaced by a fresh worktree. Real git; the previous run's agent is hostile."""

from __future__ import annotations

import logging
import os
import stat
from pathlib import Path

import pytest

from app.config import Settings
from app.services.workspace import GitWorkspace, Worktree
from app.services.workspace.spares import SPARE_PREFIX
from tests.gitrepos import git, make_remote, workspace_settings


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return workspace_settings(tmp_path, make_remote(tmp_path / "demo"))


@pytest.fixture
def ws(settings: Settings) -> GitWorkspace:
    return GitWorkspace(settings)


def _snapshot(root: Path) -> dict[str, tuple[str, int, bytes]]:
    """Every entry under `root` but `.git`: kind, permission bits, content (a link: its target)."""
    out: dict[str, tuple[str, int, bytes]] = {}
    for top, dirs, files in os.walk(root):
        dirs[:] = [d for d in dirs if not (top == str(root) and d == ".git")]
        for name in [*dirs, *files]:
            path = Path(top) / name
            if path == root / ".git":
                continue
            st = path.lstat()
            rel = str(path.relative_to(root))
            if stat.S_ISLNK(st.st_mode):
                out[rel] = ("link", 0, os.readlink(path).encode())
            elif stat.S_ISDIR(st.st_mode):
                out[rel] = ("dir", stat.S_IMODE(st.st_mode), b"")
            else:
                out[rel] = ("file", stat.S_IMODE(st.st_mode), path.read_bytes())
    return out


async def _fresh_snapshot(tmp_path: Path, settings: Settings, key: str) -> dict[str, tuple[str, int, bytes]]:
    """What a fresh worktree of the same base looks like (a second workspace, no spares)."""
    fresh = GitWorkspace(settings, root=tmp_path / "fresh-ws", spare_worktrees=0)
    return _snapshot((await fresh.prepare(key)).path)


def _hostile_finish(ws: GitWorkspace, wt: Worktree, outside: Path) -> None:
    """What the previous run's agent (unsandboxed, our uid) leaves in its worktree and registration."""
    p = wt.path
    (p / "README.md").write_text("the agent's readme\n")  # tracked, modified
    (p / "greeter" / "greeting.py").unlink()  # tracked, deleted
    (p / "left-behind.txt").write_text("untracked\n")
    (p / "__pycache__").mkdir()
    (p / "__pycache__" / "x.pyc").write_bytes(b"ignored")  # ignored by .gitignore
    nested = p / "vendor" / "lib"
    nested.mkdir(parents=True)
    git(nested, "init", "--quiet")  # a nested repository
    (nested / "inner.txt").write_text("x\n")
    # The agent's modes (what an attacker wants: files others on the host may rewrite).
    os.chmod(p / "scripts" / "lint.py", 0o777)  # noqa: S103 - executable now: git sees the +x
    os.chmod(p / "tests" / "__init__.py", 0o666)  # noqa: S103 - world-writable: git does not see it
    os.chmod(p / "tests", 0o777)  # noqa: S103 - git does not track directory modes at all
    (p / "greeter" / "__init__.py").unlink()
    (p / "greeter").rmdir()
    (p / "greeter").symlink_to(outside)  # a tracked directory replaced by a link out of the tree
    (p / ".git").write_text(f"gitdir: {outside}\n")  # the pointer redirected
    reg = ws.repo_dir / ".git" / "worktrees" / p.name
    (reg / "ORIG_HEAD").write_text(f"{wt.base_sha}\n")
    (reg / "refs" / "bisect").mkdir(parents=True)
    (reg / "refs" / "bisect" / "bad").write_text(f"{wt.base_sha}\n")
    (reg / "config.worktree").write_text("[core]\n\thooksPath = /tmp/evil\n")
    (reg / "locked").write_text("mine\n")
    (reg / "info").mkdir(exist_ok=True)
    (reg / "info" / "sparse-checkout").write_text("/README.md\n")


class TestReuse:
    async def test_remove_parks_and_the_next_ticket_reuses_it(
        self, ws: GitWorkspace, caplog: pytest.LogCaptureFixture
    ) -> None:
        first = await ws.prepare("PROJ-1")
        untouched = (first.path / "scripts" / "test.py").stat().st_ino
        await ws.remove(first)
        assert not first.path.exists()
        assert [p.name.startswith(SPARE_PREFIX) for p in ws.worktrees_dir.iterdir()] == [True]
        assert "ticket-proj-1" not in git(ws.repo_dir, "worktree", "list")
        with caplog.at_level(logging.INFO):
            second = await ws.prepare("PROJ-2")
        assert "worktree_reused" in caplog.text
        # The same files, not a new checkout: an unchanged file kept its inode.
        assert (second.path / "scripts" / "test.py").stat().st_ino == untouched
        assert list(ws.worktrees_dir.iterdir()) == [second.path]
        assert git(second.path, "rev-parse", "--abbrev-ref", "HEAD").strip() == "ticket/proj-2"

    async def test_control_without_spares_a_new_checkout_every_time(self, tmp_path: Path) -> None:
        ws = GitWorkspace(workspace_settings(tmp_path, make_remote(tmp_path / "demo")), spare_worktrees=0)
        first = await ws.prepare("PROJ-1")
        inode = (first.path / "scripts" / "test.py").stat().st_ino
        os.link(first.path / "scripts" / "test.py", tmp_path / "held")  # the old inode stays taken
        await ws.remove(first)
        assert not ws.worktrees_dir.exists() or list(ws.worktrees_dir.iterdir()) == []
        second = await ws.prepare("PROJ-2")
        assert (second.path / "scripts" / "test.py").stat().st_ino != inode

    async def test_nothing_of_the_previous_run_survives(
        self, ws: GitWorkspace, settings: Settings, tmp_path: Path, caplog: pytest.LogCaptureFixture
    ) -> None:
        outside = tmp_path / "outside"
        outside.mkdir()
        (outside / "keep.txt").write_text("not the service's to touch\n")
        first = await ws.prepare("PROJ-1")
        (first.path / "work.txt").write_text("PROJ-1's change\n")
        done = await ws.commit(first, "PROJ-1: work")
        # A stash of the agent's (it lands in the shared clone's refs/stash):
        (first.path / "stashed.txt").write_text("stashed\n")
        git(first.path, "add", "stashed.txt")
        git(first.path, "stash", "push", "--quiet")
        _hostile_finish(ws, first, outside)
        await ws.remove(first)
        with caplog.at_level(logging.INFO):
            second = await ws.prepare("PROJ-2")
        assert "worktree_reused" in caplog.text  # reset, not replaced: the reset is what is tested
        # Files, modes, links: exactly a fresh checkout of the base.
        assert _snapshot(second.path) == await _fresh_snapshot(tmp_path, settings, "PROJ-2")
        assert sorted(p.name for p in outside.iterdir()) == ["keep.txt"]  # nothing written through the link
        # git's view: on the new branch at the base, nothing pending, the old commit unreachable.
        assert git(second.path, "rev-parse", "HEAD").strip() == second.base_sha
        assert git(second.path, "rev-parse", "--abbrev-ref", "HEAD").strip() == "ticket/proj-2"
        assert git(second.path, "status", "--porcelain", "--ignored", "--untracked-files=all") == ""
        assert done not in git(second.path, "log", "--format=%H", "HEAD")
        assert not await ws.has_changes(second)
        # The registration: what git needs, a fresh reflog; no stash, no per-worktree refs or config.
        reg = ws.repo_dir / ".git" / "worktrees" / "ticket-proj-2"
        assert sorted(p.name for p in reg.iterdir()) == ["HEAD", "commondir", "gitdir", "index", "logs"]
        assert "PROJ-1" not in (reg / "logs" / "HEAD").read_text()
        assert git(second.path, "stash", "list") == ""
        assert (second.path / ".git").read_text() == f"gitdir: {reg}\n"
        # The old branch keeps its pushed-or-not work (remove never deleted branches).
        assert git(ws.repo_dir, "rev-parse", "ticket/proj-1").strip() == done

    async def test_same_ticket_again_resets_in_place(
        self, ws: GitWorkspace, settings: Settings, tmp_path: Path, caplog: pytest.LogCaptureFixture
    ) -> None:
        first = await ws.prepare("PROJ-3")
        (first.path / "a.txt").write_text("a\n")
        await ws.commit(first, "PROJ-3: a")
        (first.path / "b.txt").write_text("uncommitted\n")
        (first.path / ".git").write_text(f"gitdir: {tmp_path}\n")  # the pointer redirected
        with caplog.at_level(logging.INFO):
            again = await ws.prepare("PROJ-3")  # a re-run finds its worktree still there
        assert "worktree_reused" in caplog.text
        assert again.path == first.path
        assert _snapshot(again.path) == await _fresh_snapshot(tmp_path, settings, "PROJ-3")
        assert git(again.path, "rev-parse", "HEAD").strip() == again.base_sha
        registration = ws.repo_dir / ".git" / "worktrees" / "ticket-proj-3"
        assert (again.path / ".git").read_text() == f"gitdir: {registration}\n"

    async def test_a_broken_spare_is_replaced_by_a_fresh_worktree(
        self, ws: GitWorkspace, settings: Settings, tmp_path: Path
    ) -> None:
        first = await ws.prepare("PROJ-1")
        await ws.remove(first)
        (spare,) = ws.worktrees_dir.iterdir()
        (spare / ".git").unlink()
        (spare / ".git").mkdir()  # the agent's own git dir in place of the pointer: not reusable
        second = await ws.prepare("PROJ-2")
        assert _snapshot(second.path) == await _fresh_snapshot(tmp_path, settings, "PROJ-2")
        assert list(ws.worktrees_dir.iterdir()) == [second.path]  # the broken spare is gone
        assert not (ws.repo_dir / ".git" / "worktrees" / spare.name).exists()

    async def test_spares_are_capped(self, tmp_path: Path) -> None:
        ws = GitWorkspace(workspace_settings(tmp_path, make_remote(tmp_path / "demo")), spare_worktrees=1)
        a, b = await ws.prepare("PROJ-1"), await ws.prepare("PROJ-2")
        await ws.remove(a)
        await ws.remove(b)
        assert len(list(ws.worktrees_dir.iterdir())) == 1
        assert git(ws.repo_dir, "worktree", "list").count("\n") == 2  # the clone and one spare
