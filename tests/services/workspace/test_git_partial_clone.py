"""The shared clone of a URL remote is partial (`--filter=blob:none`): history's blobs never come,
the blobs a checkout needs come through a transit repo (with the token, never on argv, a URL or
.git/config), and the clone itself never fetches (git's lazy fetch cannot run there). Real git,
`file://` bare remotes with `uploadpack.allowFilter` on, and the smart-HTTP server that demands
the token."""

from __future__ import annotations

from pathlib import Path

import pytest

from app.errors import WorkspaceError
from app.services.workspace import GitWorkspace
from tests.gitrepos import commit_to_remote, git, make_remote, remote_sha, workspace_settings
from tests.services.workspace.git_http_server import GitHttpServer

TOKEN = "ghp_PARTIALtoken0123456789abcdefXYZ"


def _history_remote(root: Path) -> tuple[Path, str]:
    """A demo remote whose README.md changed after the seed; returns it and the OLD blob's id
    (in history only: a partial clone never needs it)."""
    demo = make_remote(root)
    old_blob = git(demo.remote, "rev-parse", "main:README.md").strip()
    commit_to_remote(demo.remote, {"README.md": "# demo-greeter\n\nrewritten\n"}, "rewrite readme")
    git(demo.remote, "config", "uploadpack.allowFilter", "true")
    return demo.remote, old_blob


def _missing(gitdir: Path) -> set[str]:
    out = git(gitdir, "--git-dir", str(gitdir), "rev-list", "--objects", "--missing=print", "--all")
    return {line[1:] for line in out.splitlines() if line.startswith("?")}


class TestPartialClone:
    async def test_history_blobs_stay_on_the_remote_the_worktree_is_whole(self, tmp_path: Path) -> None:
        remote, old_blob = _history_remote(tmp_path / "demo")
        ws = GitWorkspace(workspace_settings(tmp_path, make_remote(tmp_path / "unused"),
                                             REPO_URL=f"file://{remote}"))
        wt = await ws.prepare("PROJ-1")
        gitdir = ws.repo_dir / ".git"
        assert "promisor = true" in (gitdir / "config").read_text()
        assert old_blob in _missing(gitdir)  # the old README never came
        # ...while every file of the base is there, as the remote has it.
        for rel in git(remote, "ls-tree", "-r", "--name-only", "main").split():
            assert (wt.path / rel).read_bytes() == git(remote, "show", f"main:{rel}").encode(), rel
        # A new upstream commit: its blobs come with the fetch; the worktree has them.
        commit_to_remote(remote, {"NEW.md": "new\n"}, "new file")
        again = await ws.prepare("PROJ-2")
        assert (again.path / "NEW.md").read_text() == "new\n"
        # And the service's whole path works on it: commit, outbound reads, push.
        (again.path / "greeting.txt").write_text("hello\n")
        assert "greeting.txt" in dict(await ws.pending_files(again))
        sha = await ws.commit(again, "PROJ-2: work")
        assert any(label == "greeting.txt" for label, _ in await ws.outgoing_objects(again))
        await ws.push(again)
        assert remote_sha(remote, "ticket/proj-2") == sha

    async def test_control_without_the_filter_history_comes_too(self, tmp_path: Path) -> None:
        remote, old_blob = _history_remote(tmp_path / "demo")
        ws = GitWorkspace(workspace_settings(tmp_path, make_remote(tmp_path / "unused"),
                                             REPO_URL=f"file://{remote}"), partial_clone=False)
        await ws.prepare("PROJ-1")
        assert old_blob not in _missing(ws.repo_dir / ".git")
        assert "promisor" not in (ws.repo_dir / ".git" / "config").read_text()

    async def test_the_clone_never_fetches_a_missing_blob_itself(self, tmp_path: Path) -> None:
        # git's lazy fetch would run `git fetch origin` IN the clone (its config, no token): off.
        remote, old_blob = _history_remote(tmp_path / "demo")
        ws = GitWorkspace(workspace_settings(tmp_path, make_remote(tmp_path / "unused"),
                                             REPO_URL=f"file://{remote}"))
        await ws.prepare("PROJ-1")
        with pytest.raises(WorkspaceError):
            await ws.git.clone_git("cat-file", "-p", old_blob)
        assert old_blob in _missing(ws.repo_dir / ".git")  # still missing: nothing was fetched

    async def test_a_local_path_is_cloned_whole(self, tmp_path: Path) -> None:
        remote, old_blob = _history_remote(tmp_path / "demo")  # a path: git clones locally, unfiltered
        ws = GitWorkspace(workspace_settings(tmp_path, make_remote(tmp_path / "unused"),
                                             REPO_URL=str(remote)))
        await ws.prepare("PROJ-1")
        assert old_blob not in _missing(ws.repo_dir / ".git")


class TestPartialCloneOverHttp:
    async def test_blobs_come_with_the_token_through_transit_only(self, tmp_path: Path) -> None:
        remote, old_blob = _history_remote(tmp_path / "srv")
        with GitHttpServer(tmp_path / "srv", TOKEN) as server:
            ws = GitWorkspace(workspace_settings(tmp_path, make_remote(tmp_path / "unused"),
                                                 REPO_URL=server.url("remote.git"), GH_TOKEN=TOKEN),
                              network_timeout=30)
            wt = await ws.prepare("PROJ-1")
            commit_to_remote(remote, {"NEW.md": "new\n"}, "new file")
            again = await ws.prepare("PROJ-2")
            assert (wt.path / "README.md").read_text() == "# demo-greeter\n\nrewritten\n"
            assert (again.path / "NEW.md").read_text() == "new\n"
            assert old_blob in _missing(ws.repo_dir / ".git")
            requests = list(server.requests)
        uploads = [r for r in requests if "upload-pack" in r.path]
        # clone, its blobs, the fetch: each got through with the token (git asks without it first
        # and is refused), and no process ever had the token on its command line.
        assert len([r for r in uploads if r.method == "POST" and r.authorized]) >= 3
        assert not any(r.token_in_argv for r in requests)
        for path in (ws.repo_dir / ".git").rglob("*"):
            if path.is_file() and path.suffix not in (".pack", ".idx"):
                assert TOKEN.encode() not in path.read_bytes(), path
        transit = ws.root / "transit"
        assert not transit.exists() or not list(transit.iterdir())


class TestOncePartial:
    async def test_a_partial_clone_stays_usable_when_the_source_becomes_a_path(self, tmp_path: Path) -> None:
        # REPO_URL moved from a URL to a local path of the same repository: the clone keeps the
        # history it never fetched, so it must stay a partial clone (else those blobs are "missing").
        remote, old_blob = _history_remote(tmp_path / "demo")
        unused = make_remote(tmp_path / "unused")
        await GitWorkspace(workspace_settings(tmp_path, unused, REPO_URL=f"file://{remote}")).prepare("PROJ-1")
        commit_to_remote(remote, {"NEW.md": "new\n"}, "new file")
        moved = GitWorkspace(workspace_settings(tmp_path, unused, REPO_URL=str(remote)))
        wt = await moved.prepare("PROJ-2")
        assert (wt.path / "NEW.md").read_text() == "new\n"
        assert (wt.path / "README.md").read_text() == "# demo-greeter\n\nrewritten\n"
        assert "promisor = true" in (moved.repo_dir / ".git" / "config").read_text()
        assert old_blob in _missing(moved.repo_dir / ".git")
