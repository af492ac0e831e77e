"""The one fetch of `prepare` (transit.fetch_via_transit): the pack lands in the shared clone's own
object store, and the clone's `refs/remotes/origin/*` follow the remote exactly (a new branch
appears, a moved one moves, a deleted one goes). Real git, local bare remotes."""

from __future__ import annotations

from pathlib import Path

from app.services.workspace import GitWorkspace
from tests.gitrepos import commit_to_remote, git, make_remote, remote_sha, workspace_settings


def _origin_refs(ws: GitWorkspace) -> dict[str, str]:
    out = git(ws.repo_dir, "for-each-ref", "--format=%(refname) %(objectname)", "refs/remotes/origin/")
    refs = dict(line.split(" ") for line in out.splitlines())
    refs.pop("refs/remotes/origin/HEAD", None)  # what `git clone` itself writes; fetches never touch it
    return refs


class TestFetchMovesRefs:
    async def test_clone_refs_follow_the_remote(self, tmp_path: Path) -> None:
        demo = make_remote(tmp_path / "demo")
        commit_to_remote(demo.remote, {"old.txt": "old\n"}, "a branch that will go", branch="old")
        ws = GitWorkspace(workspace_settings(tmp_path, demo))
        await ws.prepare("PROJ-1")
        assert set(_origin_refs(ws)) == {"refs/remotes/origin/main", "refs/remotes/origin/old"}
        git(demo.remote, "branch", "-D", "old")
        new_main = commit_to_remote(demo.remote, {"CHANGELOG.md": "- new\n"}, "main moves")
        commit_to_remote(demo.remote, {"f.txt": "f\n"}, "a new branch", branch="feature")
        wt = await ws.prepare("PROJ-2")
        assert _origin_refs(ws) == {"refs/remotes/origin/main": new_main,
                                    "refs/remotes/origin/feature": remote_sha(demo.remote, "feature")}
        assert wt.base_sha == new_main and (wt.path / "CHANGELOG.md").read_text() == "- new\n"
        # The objects are the clone's own (no alternates, nothing left in a transit repo).
        assert not (ws.repo_dir / ".git" / "objects" / "info" / "alternates").exists()
        git(ws.repo_dir, "cat-file", "-e", f"{new_main}^{{tree}}")
        transit = ws.root / "transit"
        assert not transit.exists() or not list(transit.iterdir())

    async def test_nothing_new_leaves_refs_alone(self, tmp_path: Path) -> None:
        demo = make_remote(tmp_path / "demo")
        ws = GitWorkspace(workspace_settings(tmp_path, demo))
        await ws.prepare("PROJ-1")
        before = _origin_refs(ws)
        again = await ws.prepare("PROJ-2")
        assert _origin_refs(ws) == before and again.base_sha == before["refs/remotes/origin/main"]
