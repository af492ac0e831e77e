"""git cannot run the agent's code: not the service's git on a worktree the agent wrote (a
`.gitattributes` naming a driver, a planted config/hook/info in the shared clone), and not git run
inside the sandbox with `sandbox_git_env()` (an implicit bare repo `sub/` with a fsmonitor).
Each attack also runs once WITHOUT the defence, so the marker test can be trusted."""

from __future__ import annotations

from pathlib import Path

import pytest

from app.proc import run_command, scrubbed_env
from app.services.workspace import GitWorkspace, Worktree, gitrun
from app.services.workspace.clonestate import DEFAULT_EXCLUDE, known_config
from app.services.workspace.gitenv import sandbox_git_env
from tests.gitrepos import git, make_remote, remote_sha, workspace_settings


def _script(path: Path, marker: Path) -> Path:
    path.write_text(f'#!/bin/sh\necho "$0 $*" >> {marker}\ncat\n')  # `cat`: a filter that passes data
    path.chmod(0o755)
    return path


def _plant(config: Path, entries: list[tuple[str, str]]) -> None:
    for key, value in entries:
        git(config.parent, "config", "--file", str(config), "--add", key, value)


@pytest.fixture
def marker(tmp_path: Path) -> Path:
    return tmp_path / "planted-command-ran"


@pytest.fixture
def evil(tmp_path: Path, marker: Path) -> Path:
    return _script(tmp_path / "evil.sh", marker)


@pytest.fixture
def ws(tmp_path: Path) -> GitWorkspace:
    return GitWorkspace(workspace_settings(tmp_path, make_remote(tmp_path / "demo")))


def _hostile_clone(ws: GitWorkspace, evil: Path) -> None:
    """What an unsandboxed agent could leave in the shared clone: config that runs `evil`, a hook,
    an attributes file that selects the planted driver for every path, per-worktree config."""
    gitdir = ws.repo_dir / ".git"
    drivers = [("core.fsmonitor", str(evil)), ("filter.evil.clean", str(evil)),
               ("filter.evil.smudge", str(evil)), ("filter.evil.required", "true"),
               ("diff.evil.textconv", str(evil)), ("diff.evil.command", str(evil)),
               ("diff.external", str(evil)), ("core.pager", str(evil)), ("core.editor", str(evil))]
    _plant(gitdir / "config", [*drivers, ("extensions.worktreeConfig", "true")])
    _plant(gitdir / "config.worktree", drivers)
    for registration in (gitdir / "worktrees").iterdir():
        _plant(registration / "config.worktree", drivers)
    (gitdir / "hooks").mkdir(exist_ok=True)
    for hook in ("pre-commit", "post-checkout", "post-commit", "reference-transaction", "pre-push"):
        _script(gitdir / "hooks" / hook, evil.parent / "planted-command-ran")
    (gitdir / "info").mkdir(exist_ok=True)
    (gitdir / "info" / "attributes").write_text("* filter=evil diff=evil\n")
    (gitdir / "info" / "exclude").write_text("*.secret\n")  # would hide files from `add -A`


async def _everything_the_service_does(ws: GitWorkspace, wt: Worktree) -> None:
    (wt.path / ".gitattributes").write_text("* filter=evil diff=evil merge=evil\n")
    (wt.path / "greeting.txt").write_text("hello\n")
    (wt.path / "README.md").write_text("changed\n")
    assert await ws.has_changes(wt)
    assert "greeting.txt" in await ws.diff_summary(wt)
    assert "greeting.txt" in dict(await ws.pending_files(wt))
    await ws.commit(wt, "PROJ-2: work")
    assert any(label == "greeting.txt" for label, _ in await ws.outgoing_objects(wt))
    await ws.push(wt)


class TestSandboxGitEnv:
    async def _status_in_implicit_bare_repo(self, tmp_path: Path, env: dict[str, str]) -> Path:
        """The round-2 attack: `sub/HEAD`, `sub/config` (with a fsmonitor), `sub/objects/`,
        `sub/refs/` written as plain files, then `cd sub` and `git --work-tree=.. status`."""
        marker = tmp_path / "fsmonitor-ran"
        marker.unlink(missing_ok=True)
        monitor = _script(tmp_path / "monitor.sh", marker)
        sub = tmp_path / "worktree" / "sub"
        (sub / "objects").mkdir(parents=True, exist_ok=True)
        (sub / "refs").mkdir(exist_ok=True)
        (sub / "HEAD").write_text("ref: refs/heads/main\n")
        (sub / "config").write_text(f'[core]\n\tbare = false\n\tfsmonitor = "{monitor}"\n')
        (sub.parent / "file.txt").write_text("x\n")
        await run_command(["git", "--work-tree=..", "status"], cwd=sub, env=env, timeout=30)
        return marker

    async def test_an_implicit_bare_repo_cannot_run_its_fsmonitor(self, tmp_path: Path) -> None:
        marker = await self._status_in_implicit_bare_repo(tmp_path, scrubbed_env(sandbox_git_env()))
        assert not marker.exists()

    async def test_control_without_the_env_the_fsmonitor_runs(self, tmp_path: Path) -> None:
        marker = await self._status_in_implicit_bare_repo(tmp_path, scrubbed_env())
        assert marker.exists()  # the attack is real on this git: the test above means something

    def test_shape(self) -> None:
        env = sandbox_git_env()
        config = {env[f"GIT_CONFIG_KEY_{i}"]: env[f"GIT_CONFIG_VALUE_{i}"]
                  for i in range(int(env["GIT_CONFIG_COUNT"]))}
        assert env["GIT_CONFIG_NOSYSTEM"] == "1" and env["GIT_CONFIG_GLOBAL"] == "/dev/null"
        assert config == {"safe.bareRepository": "explicit", "core.fsmonitor": "false",
                          "core.hooksPath": "/dev/null", "protocol.allow": "never"}
        assert "PATH" not in env and "HOME" not in env  # only git's variables: the caller merges


class TestSharedCloneRestoredAtPrepare:
    async def test_planted_config_hooks_and_info_are_gone_after_prepare(
        self, ws: GitWorkspace, evil: Path, marker: Path
    ) -> None:
        await ws.prepare("PROJ-1")
        _hostile_clone(ws, evil)
        wt = await ws.prepare("PROJ-2")  # another ticket: the clone is put back first
        gitdir = ws.repo_dir / ".git"
        assert (gitdir / "config").read_text() == known_config(str(ws.git.source_url()))
        assert list((gitdir / "hooks").iterdir()) == []
        assert [p.name for p in (gitdir / "info").iterdir()] == ["exclude"]
        assert (gitdir / "info" / "exclude").read_text() == DEFAULT_EXCLUDE
        assert not (gitdir / "config.worktree").exists()
        assert not list(gitdir.glob("worktrees/*/config.worktree"))
        await _everything_the_service_does(ws, wt)
        assert not marker.exists(), marker.read_text()
        assert remote_sha(ws.root.parent / "demo" / "remote.git", "ticket/proj-2") is not None

    async def test_planted_after_prepare_is_restored_before_the_next_git_call(
        self, ws: GitWorkspace, evil: Path, marker: Path
    ) -> None:
        # The agent runs between prepare and commit: its clone config must not reach commit either.
        wt = await ws.prepare("PROJ-2")
        _hostile_clone(ws, evil)
        await _everything_the_service_does(ws, wt)
        assert not marker.exists(), marker.read_text()
        # The attributes only name a driver; the commit holds the file as the agent wrote it.
        assert git(ws.root.parent / "demo" / "remote.git", "show", "ticket/proj-2:greeting.txt") == "hello\n"

    async def test_control_without_the_restore_the_planted_driver_runs(
        self, ws: GitWorkspace, evil: Path, marker: Path, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        wt = await ws.prepare("PROJ-2")
        monkeypatch.setattr(gitrun, "restore_clone_state", lambda *_, **__: [])
        # Only the driver the worktree's .gitattributes names: git add/status run its clean filter.
        _plant(ws.repo_dir / ".git" / "config", [("filter.evil.clean", str(evil))])
        await _everything_the_service_does(ws, wt)
        assert marker.exists()  # the attack works without the restore: the tests above mean something


class TestOutboundReads:
    async def test_pending_files_are_what_would_be_committed(self, ws: GitWorkspace) -> None:
        wt = await ws.prepare("PROJ-3")
        (wt.path / "new.bin").write_bytes(b"\x00\xffbinary\x80")
        (wt.path / "README.md").write_text("edited\n")
        (wt.path / "link").symlink_to("/etc/hostname")
        (wt.path / ".gitignore").write_text("ignored.txt\n")
        (wt.path / "ignored.txt").write_text("not committed\n")
        files = dict(await ws.pending_files(wt))
        assert files["new.bin"] == b"\x00\xffbinary\x80"
        assert files["README.md"] == b"edited\n"
        assert files["link"] == b"/etc/hostname"  # the link's text, never the file it points at
        assert "ignored.txt" not in files
        sha = await ws.commit(wt, "PROJ-3: work")
        objects = await ws.outgoing_objects(wt)
        labels = [label for label, _ in objects]
        assert "new.bin" in labels and "README.md" in labels and f"commit {sha[:12]}" in labels
        commit_text = dict(objects)[f"commit {sha[:12]}"]
        assert "PROJ-3: work" in commit_text
        assert "binary" in dict(objects)["new.bin"]
