"""The worktree is the agent's only working area, enforced by the real CLI's permission rules: the
implement session may not read or write outside it, the review session may not even read outside
it, and `git log --output=` (which could overwrite the worktree's `.git` pointer) is not allowed."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.e2e.conftest import IMPLEMENT, REVIEW, requests_with, step
from tests.fakes.anthropic_api import Rule, bash, read, text, write

pytestmark = pytest.mark.real_cli

OUTSIDE_SECRET = "SERVICE_ONLY_value_91f3"


@pytest.fixture
def outside(tmp_path: Path) -> Path:
    """A file the service user can read, outside every worktree (think: the service's .env)."""
    path = tmp_path / "service-home" / ".env"
    path.parent.mkdir()
    path.write_text(f"GH_TOKEN={OUTSIDE_SECRET}\n")
    return path


def test_implement_cannot_read_or_write_outside_the_worktree(e2e, model, outside: Path) -> None:
    planted = outside.parent / "planted.txt"
    model.script(Rule(prompt_contains=IMPLEMENT, turns=[
        read(str(outside)),
        write(str(planted), "owned\n"),
        bash("git log -1 --format=gitdir:/tmp/evil --output=.git"),
        write("{cwd}/inside.md", "fine\n"),
        text("Done."),
    ]))
    with e2e(DRY_RUN=1) as svc:
        run = svc.run("PROJ-60")
        worktree = svc.worktree("PROJ-60")
    assert run["status"] == "succeeded", run["error"]
    results = "\n".join(r for req in requests_with(model, IMPLEMENT) for r in req.tool_results())
    assert OUTSIDE_SECRET not in results  # the read was refused
    assert not planted.exists()  # the write outside was refused
    assert (worktree / "inside.md").read_text() == "fine\n"  # edits inside still work
    pointer = (worktree / ".git").read_text()
    assert pointer.startswith("gitdir: ") and "evil" not in pointer
    denials = step(run, "implement")["detail"]["permission_denials"]
    assert len(denials) == 3, denials


def test_review_cannot_read_outside_the_worktree(e2e, model, outside: Path) -> None:
    model.script(
        Rule(prompt_contains=IMPLEMENT, turns=[write("{cwd}/a.md", "a\n"), text("Added a.md.")]),
        Rule(prompt_contains=REVIEW, turns=[
            read(str(outside)), text("HAS_ISSUES: false\nFINDINGS:\nnone")]),
    )
    with e2e(DRY_RUN=1, ENABLE_REVIEW=1) as svc:
        run = svc.run("PROJ-61")
    assert run["status"] == "succeeded", run["error"]
    results = "\n".join(r for req in requests_with(model, REVIEW) for r in req.tool_results())
    assert results and OUTSIDE_SECRET not in results
