"""Builders for real git fixtures: a bare "remote" seeded with the demo project, and helpers to
move it on or look into it. Import from any test:

    from tests.gitrepos import make_remote, git, commit_to_remote, remote_sha, workspace_settings

- `make_remote(root) -> DemoRepo`: `root/remote.git`, branch `main` with the demo seed project
  (see app/demo_repo.py; `DemoRepo.lint_command`/`test_command` run with plain python3).
- `git(cwd, *args) -> str`: `app.demo_repo.git` with a test identity (scrubbed env, 60 s timeout);
  raises DemoRepoError on failure.
- `commit_to_remote(remote, files, message, branch="main") -> str`: push a commit writing `files`
  (path → text) onto `branch` of `remote`, as another developer would; returns its sha.
- `remote_sha(remote, branch) -> str | None`: the branch's sha in `remote`, None when absent.
- `workspace_settings(tmp_path, demo, **env) -> Settings`: isolated Settings (conftest's
  `make_settings`: no .env, no process env) for a workspace under `tmp_path/ws` cloning
  `demo.remote`, with the demo's lint/test commands; `env` overrides any setting by its
  environment name (e.g. `GH_TOKEN="..."`, `REPO_URL=""`).
"""

from __future__ import annotations

import tempfile
from pathlib import Path

from app.config import Settings
from app.demo_repo import DemoRepo, create_demo_repo
from app.demo_repo import git as _demo_git
from app.proc import run_command_sync, scrubbed_env
from tests.conftest import make_settings

__all__ = ["commit_to_remote", "git", "make_remote", "remote_sha", "workspace_settings"]

_IDENTITY = {
    "GIT_AUTHOR_NAME": "Test Dev",
    "GIT_AUTHOR_EMAIL": "dev@test.invalid",
    "GIT_COMMITTER_NAME": "Test Dev",
    "GIT_COMMITTER_EMAIL": "dev@test.invalid",
}


def git(cwd: Path, *args: str) -> str:
    return _demo_git(cwd, *args, identity=_IDENTITY)


def make_remote(root: Path) -> DemoRepo:
    return create_demo_repo(root)


def commit_to_remote(remote: Path, files: dict[str, str], message: str, branch: str = "main") -> str:
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp) / "work"
        git(Path(tmp), "clone", "--quiet", str(remote), str(work))
        if f"origin/{branch}" in git(work, "branch", "-r").split():
            git(work, "checkout", "--quiet", branch)
        else:
            git(work, "checkout", "--quiet", "-b", branch)
        for rel, text in files.items():
            path = work / rel
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(text)
        git(work, "add", "-A")
        git(work, "-c", "commit.gpgsign=false", "commit", "--quiet", "-m", message)
        git(work, "push", "--quiet", "origin", f"HEAD:refs/heads/{branch}")
        return git(work, "rev-parse", "HEAD").strip()


def remote_sha(remote: Path, branch: str) -> str | None:
    res = run_command_sync(["git", "rev-parse", "--verify", "--quiet", f"refs/heads/{branch}"], cwd=remote,
                           env=scrubbed_env(), timeout=30)
    return res.output.strip() if res.ok else None


def workspace_settings(tmp_path: Path, demo: DemoRepo, **env: str) -> Settings:
    values = {**demo.env(), "CHECK_TIMEOUT_SEC": "60", **env}
    return make_settings(tmp_path / "ws", **values)
