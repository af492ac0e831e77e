"""The repository's own `.auto-code.toml` while the agent's branch edits it, through the real
service: the agent rewrites the file, its branch is pushed with the edit, and a later run of the same
ticket - with that branch on the remote and in the shared clone - still takes its commands from the
base branch. (test_base_file.py proves `read_base_file` itself against a branch and a worktree.)"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from tests.gitrepos import commit_to_remote, git, remote_sha
from tests.repositories.kit import outputs, serve
from tests.services.runner.harness import step

IN_REPO = '''lint_command = ["python3", "-c", "print('lint from the base branch')"]
'''
AGENT_EDIT = '''lint_command = ["python3", "-c", "print('AGENT CHOSE THIS LINT')"]
'''


def test_a_later_run_reads_the_base_branch_not_the_agents_pushed_edit(tmp_path: Path,
                                                                       two: dict[str, Any]) -> None:
    web = two["web"]
    base = commit_to_remote(web.remote, {".auto-code.toml": IN_REPO}, "auto-code settings")
    edits = [{"write": ".auto-code.toml", "content": AGENT_EDIT}, {"write": "banner.txt", "content": "hi\n"}]
    script = {"tickets": {"WEB-12": {"implement": edits}}}
    with serve(tmp_path, two, script=script, web_extra='in_repo_overrides = ["lint_command"]') as svc:
        first = svc.wait(svc.deliver("WEB-12", "Banner", components=[{"name": "Frontend"}])["run_id"])
        on_branch = git(web.remote, "show", "ticket/web-12:.auto-code.toml")
        second = svc.wait(svc.deliver("WEB-12", "Banner again", components=[{"name": "Frontend"}])["run_id"])
    assert first["status"] == second["status"] == "succeeded", (first["error"], second["error"])
    assert "AGENT CHOSE THIS LINT" in on_branch  # the agent's branch does edit the file ...
    for run in (first, second):  # ... and neither run took a command from it
        lint = outputs(run, "lint")
        assert "lint from the base branch" in lint and "AGENT CHOSE THIS LINT" not in lint, lint
        configure = step(run, "prepare")["detail"]["configure"]
        assert configure["read_at"] == base == remote_sha(web.remote, "main")
        assert configure["lint_command"] == ["python3", "-c", "print('lint from the base branch')"]
    assert [p["head"] for p in two["gh_web"].prs] == ["ticket/web-12"]  # one PR, reused
