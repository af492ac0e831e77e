"""The outbound check through the real pipeline (real app, DBOS on SQLite, real git, scripted agent):
a secret value in the change fails the run before anything is committed, pushed or opened, naming
the variable and the file; the agent's text with a secret never reaches a run record (the SQLite
files are searched byte for byte), the PR or Jira; a clean change still goes through."""

from __future__ import annotations

import base64
import json
from collections.abc import Callable
from pathlib import Path
from urllib.parse import quote

import pytest

from app.services.claude_code.base import AgentRequest, AgentRun
from tests.fakes.jira_api import FakeJira
from tests.gitrepos import git, remote_sha
from tests.services.runner.harness import Service, running_service, step

GH_TOKEN = "ghp_0utb0undCheckT0ken+/value0123456789"


def _forms(value: str) -> list[bytes]:
    """The value and its base64 at every alignment (what must appear nowhere in the records)."""
    raw = value.encode()
    out = [raw]
    for prefix in (b"", b"x", b"xy"):
        enc = base64.b64encode(prefix + raw)
        out.append(enc[len(prefix) * 2:-4])  # the inner part, free of prefix and padding
    return out


def _writes(path: str, content: str, result: str = "Implemented it.") -> dict[str, object]:
    return {"tickets": {"*": {"implement": [{"write": path, "content": content}], "result": result}}}


@pytest.fixture
def jira():
    with FakeJira(issues={f"PROJ-{n}": "To Do" for n in range(70, 80)}).start() as fake:
        yield fake


def _env(jira: FakeJira) -> dict[str, str]:
    return {"GH_TOKEN": GH_TOKEN, "JIRA_BASE_URL": jira.base_url, "JIRA_EMAIL": jira.email,
            "JIRA_API_TOKEN": jira.token}


def _after_implement(svc: Service, act: Callable[[Path], object]) -> None:
    """Let the scripted agent do `act(worktree)` after its scripted actions (what a Bash call would)."""
    original = svc.claude.implement

    async def implement(req: AgentRequest) -> AgentRun:
        run = await original(req)
        act(req.cwd)
        return run

    svc.claude.implement = implement  # type: ignore[method-assign]


def _assert_nothing_left(svc: Service, branch: str) -> None:
    clone = svc.workspace / "repo"
    assert remote_sha(svc.remote, branch) is None  # nothing pushed
    assert svc.prs() == []  # no PR
    base = git(clone, "rev-parse", "refs/remotes/origin/main").strip()
    assert git(clone, "rev-parse", f"refs/heads/{branch}").strip() == base  # nothing committed


def _assert_not_in_records(svc: Service, value: str) -> None:
    files = [p for p in svc.workspace.iterdir() if p.name.startswith("auto-code.sqlite")]
    assert files, list(svc.workspace.iterdir())
    for path in files:
        data = path.read_bytes()
        for form in _forms(value):
            assert form not in data, f"{form!r} found in {path.name}"


class TestSecretInTheChange:
    @pytest.mark.parametrize(("content", "form"), [
        (f"token = {GH_TOKEN}\n", "raw"),
        (f"aGVsbG8g{base64.b64encode(('hello ' + GH_TOKEN).encode()).decode()}\n", "base64"),
        (f"https://example.invalid/?t={quote(GH_TOKEN, safe='')}\n", "url-encoded"),
    ])
    def test_run_fails_before_anything_leaves(
        self, tmp_path: Path, jira: FakeJira, content: str, form: str
    ) -> None:
        with running_service(tmp_path, _writes("greeting.txt", content), **_env(jira)) as svc:
            run = svc.run("PROJ-70")
            _assert_nothing_left(svc, "ticket/proj-70")
            _assert_not_in_records(svc, GH_TOKEN)
        assert run["status"] == "failed"
        assert run["error"] == (f"commit: outbound check: the change contains the value of GH_TOKEN ({form}) "
                                "in greeting.txt; nothing was committed")
        assert step(run, "commit")["status"] == "failed"
        assert [s["name"] for s in run["steps"] if s["name"] in ("push", "pull_request")] == []
        (comment,) = jira.comment_texts("PROJ-70")
        assert "GH_TOKEN" in comment and "greeting.txt" in comment
        assert not any(f.decode() in comment for f in _forms(GH_TOKEN))

    def test_a_file_named_after_the_secret_is_caught_and_not_named(self, tmp_path: Path) -> None:
        with running_service(tmp_path, _writes(f"notes/{GH_TOKEN}.txt", "hi\n"), GH_TOKEN=GH_TOKEN) as svc:
            run = svc.run("PROJ-71")
            _assert_nothing_left(svc, "ticket/proj-71")
        assert run["status"] == "failed" and "GH_TOKEN (raw) in notes/[redacted:GH_TOKEN].txt" in run["error"]

    def test_a_binary_file_is_scanned_too(self, tmp_path: Path) -> None:
        with running_service(tmp_path, GH_TOKEN=GH_TOKEN) as svc:
            _after_implement(svc, lambda cwd: (cwd / "blob.bin").write_bytes(
                b"\x89PNG\x00\xff" + GH_TOKEN.encode() + b"\x00\xc3"))  # an agent action writes text only
            run = svc.run("PROJ-72")
            _assert_nothing_left(svc, "ticket/proj-72")
        assert run["status"] == "failed" and "GH_TOKEN (raw) in blob.bin" in run["error"]


class TestSecretInTheCommits:
    def test_a_value_only_in_the_agents_own_commits_is_caught_before_push(self, tmp_path: Path) -> None:
        def commit_then_delete(cwd: Path) -> None:  # the final tree is clean; the history is not
            (cwd / "leak.txt").write_text(f"{GH_TOKEN}\n")
            git(cwd, "add", "leak.txt")
            git(cwd, "-c", "commit.gpgsign=false", "commit", "--quiet", "-m", "add")
            git(cwd, "rm", "--quiet", "leak.txt")
            git(cwd, "-c", "commit.gpgsign=false", "commit", "--quiet", "-m", "remove")

        with running_service(tmp_path, GH_TOKEN=GH_TOKEN) as svc:
            _after_implement(svc, commit_then_delete)
            run = svc.run("PROJ-76")
            prs = svc.prs()
            _assert_not_in_records(svc, GH_TOKEN)
        assert run["status"] == "failed"
        assert run["error"] == ("push: outbound check: the push contains the value of GH_TOKEN (raw) "
                                "in leak.txt; nothing was pushed")
        assert step(run, "commit")["status"] == "succeeded"
        assert remote_sha(svc.remote, "ticket/proj-76") is None and prs == []


class TestSecretInTheAgentsText:
    def test_summary_is_redacted_in_records_pr_and_jira(self, tmp_path: Path, jira: FakeJira) -> None:
        said = f"Done. The token is {GH_TOKEN} (b64 {base64.b64encode(GH_TOKEN.encode()).decode()})"
        script = {"tickets": {
            "PROJ-73": {"implement": [{"write": "ok.txt", "content": "fine\n"}], "result": said},
            "PROJ-74": {"implement": [], "result": said},  # no change: the summary goes to Jira
        }}
        with running_service(tmp_path, script, **_env(jira)) as svc:
            done, unchanged = svc.run("PROJ-73"), svc.run("PROJ-74")
            prs = svc.prs()
            logs = svc.logs(done["run_id"]) + svc.logs(unchanged["run_id"])
            _assert_not_in_records(svc, GH_TOKEN)
        assert done["status"] == "succeeded", done["error"]
        assert unchanged["status"] == "no_changes"
        (pr,) = prs
        assert "[redacted:GH_TOKEN]" in pr["body"]
        summary = step(done, "implement")["detail"]["summary"]
        assert "[redacted:GH_TOKEN]" in summary
        texts = [pr["body"], pr["title"], summary, *logs, *jira.comment_texts("PROJ-73"),
                 *jira.comment_texts("PROJ-74")]
        for text in texts:
            assert not any(f.decode() in text for f in _forms(GH_TOKEN)), text
        assert "[redacted:GH_TOKEN]" in jira.comment_texts("PROJ-74")[0]


class TestCleanChange:
    def test_still_succeeds_with_secrets_configured(self, tmp_path: Path, jira: FakeJira) -> None:
        with running_service(tmp_path, _writes("greeting.txt", "hello\n"), **_env(jira)) as svc:
            run = svc.run("PROJ-75")
            prs = svc.prs()
        assert run["status"] == "succeeded", run["error"]
        assert remote_sha(svc.remote, "ticket/proj-75") is not None and len(prs) == 1
        assert git(svc.remote, "show", "ticket/proj-75:greeting.txt") == "hello\n"


class TestSecretInTheTicket:
    def test_the_delivered_ticket_is_redacted_once_for_the_record_and_the_queue(self, tmp_path: Path) -> None:
        # The same copy goes into the run record and to DBOS as the workflow's input (both in the
        # SQLite file searched below): redacted once, by the store, on the way in.
        with running_service(tmp_path, GH_TOKEN=GH_TOKEN) as svc:
            store = svc.services.store
            scan, scans = svc.services.deps.scanner.redact, []

            def counting(text: str) -> str:
                scans.append(text)
                return scan(text)

            store.redact = counting
            run = svc.run("PROJ-77", summary=f"use the token {GH_TOKEN} please")
            prompts = [c.prompt for c in svc.claude.calls]
            _assert_not_in_records(svc, GH_TOKEN)
        assert run["status"] == "succeeded", run["error"]
        assert prompts and "[redacted:GH_TOKEN]" in prompts[0] and GH_TOKEN not in prompts[0]
        copies = [t for t in scans if _is_ticket(t, "PROJ-77")]
        assert len(copies) == 1  # the engine's copy, stored by the accept as it is


def _is_ticket(text: str, key: str) -> bool:
    try:
        data = json.loads(text)
    except ValueError:
        return False
    return isinstance(data, dict) and data.get("key") == key and "summary" in data


class TestSecretInTheJiraCopy:
    def test_the_ticket_read_from_jira_is_redacted_before_it_goes_to_dbos(
        self, tmp_path: Path, jira: FakeJira
    ) -> None:
        # The dispatcher reads the ticket from Jira before the handoff (repo_steps.decide) and the
        # options carrying that copy are the workflow's input (and the start step's output): the
        # description pasted with a secret must not reach the SQLite file through them.
        jira.set_issue("PROJ-78", summary="Rotate it", description=f"the old token was {GH_TOKEN}")
        with running_service(tmp_path, **_env(jira)) as svc:
            run = svc.run("PROJ-78", summary="")
            prompts = [c.prompt for c in svc.claude.calls]
            _assert_not_in_records(svc, GH_TOKEN)
        assert run["status"] == "succeeded", run["error"]
        assert prompts and "[redacted:GH_TOKEN]" in prompts[0] and GH_TOKEN not in prompts[0]
