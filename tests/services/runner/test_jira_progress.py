"""The run's one Jira progress comment, through whole runs against the local fake Jira (REST v3):
created once when work starts, edited in place as steps finish, ending with the PR link (or the
failure and its reason), duration and cost; never another run's comment; a lost answer to the POST
never posts twice; Jira failing throughout (500, or 429 with a long Retry-After) never fails the
run nor holds it; ticket and agent text end up as plain ADF text, redacted."""

from __future__ import annotations

import json
import re
import time
from pathlib import Path
from typing import Any
from urllib.parse import quote

import pytest

from app.services.jira.progress_doc import has_marker, marker_text
from tests.fakes.jira_api import FakeJira
from tests.services.runner.harness import running_service, step

KEYS = [f"PROJ-{n}" for n in range(60, 70)]


@pytest.fixture
def jira():
    with FakeJira(issues=dict.fromkeys(KEYS, "To Do")).start() as fake:
        yield fake


def _env(jira: FakeJira, **extra: Any) -> dict[str, Any]:
    return {"JIRA_BASE_URL": jira.base_url, "JIRA_EMAIL": jira.email, "JIRA_API_TOKEN": jira.token,
            "JIRA_PROGRESS_TIMEOUT_SEC": 2, **extra}


def _ours(jira: FakeJira, key: str) -> list[dict[str, Any]]:
    return [c for c in jira.comment_records.get(key, []) if c["author"]["accountId"] == jira.account_id]


def _posts(jira: FakeJira, key: str) -> list[Any]:
    return [r for r in jira.requests if r.method == "POST" and r.path == f"/rest/api/3/issue/{key}/comment"]


def _nodes(doc: Any) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    if isinstance(doc, dict):
        out.append(doc)
        for child in doc.get("content") or ():
            out += _nodes(child)
    return out


class TestOneCommentPerRun:
    def test_created_once_edited_in_place_and_final(self, tmp_path: Path, jira: FakeJira) -> None:
        env = _env(jira, PUBLIC_BASE_URL="https://auto-code.example.com/",
                   JIRA_START_TRANSITION="Start Progress", JIRA_DONE_TRANSITION="Ready for Review")
        script = {"tickets": {"PROJ-60": {"implement": [{"write": "a.txt", "content": "x\n"}],
                                          "cost_usd": 0.125}}}
        with running_service(tmp_path, script, **env) as svc:
            run = svc.run("PROJ-60")
        assert run["status"] == "succeeded" and step(run, "report")["status"] == "succeeded"
        (comment,) = _ours(jira, "PROJ-60")
        assert len(_posts(jira, "PROJ-60")) == 1  # created once...
        assert jira.edits[comment["id"]] >= 1  # ...and edited in place
        text = jira.comment_texts("PROJ-60")[0]
        assert "auto-code opened a pull request" in text and run["pr_url"] in text
        assert "✅ implement" in text and "✅ pull_request" in text
        assert "model cost $0.12" in text and "Duration" in text
        assert f"https://auto-code.example.com/ui/runs/{run['run_id'].replace(':', '%3A')}" in text
        assert has_marker(comment["body"], run["run_id"])
        # It said "working on it" before it said anything else: the first body sent.
        first = _posts(jira, "PROJ-60")[0].json
        assert "working on it" in json.dumps(first["body"])
        assert first["properties"] == [{"key": "auto-code-run", "value": {"run_id": run["run_id"]}}]
        # Transitions by name at start and when the PR opened (the fake's workflow).
        moves = [r.json["transition"]["id"] for r in jira.requests
                 if r.method == "POST" and r.path.endswith("/transitions")]
        assert moves == ["11", "21"] and jira.issues["PROJ-60"] == "In Review"

    def test_a_failure_ends_the_comment_with_its_reason(self, tmp_path: Path, jira: FakeJira) -> None:
        script = {"tickets": {"PROJ-61": {"errors": {"implement": "max_turns"}}}}
        with running_service(tmp_path, script, **_env(jira)) as svc:
            run = svc.run("PROJ-61")
        assert run["status"] == "failed"
        (text,) = jira.comment_texts("PROJ-61")
        assert "could not finish" in text and "max_turns" in text and "❌ implement" in text
        assert marker_text(run["run_id"]) in text


    def test_a_run_that_crashes_before_its_report_still_closes_its_comment(
            self, tmp_path: Path, jira: FakeJira) -> None:
        from app.composition import Collaborators
        from app.services.workspace.client import GitWorkspace
        from tests.services.runner.test_pipeline import Broken

        class BrokenWorkspace(GitWorkspace):
            async def has_changes(self, worktree: Any) -> bool:  # a bug right after implement
                raise Broken("disk on fire")

        with running_service(tmp_path, collaborators=lambda s: Collaborators(workspace=BrokenWorkspace(s)),
                             **_env(jira)) as svc:
            run = svc.run("PROJ-61")
            svc.client.portal.call(svc.services.deps.progress.idle)  # the closing edit is in the background
        assert run["status"] == "failed" and "report" not in [s["name"] for s in run["steps"]]
        (text,) = jira.comment_texts("PROJ-61")
        assert "could not finish" in text and "disk on fire" in text


    def test_progress_comments_off_gives_one_comment_at_the_end(self, tmp_path: Path, jira: FakeJira) -> None:
        with running_service(tmp_path, **_env(jira, JIRA_PROGRESS_COMMENTS="false")) as svc:
            run = svc.run("PROJ-62")
        assert run["status"] == "succeeded"
        assert jira.comment_texts("PROJ-62") == [f"auto-code opened a pull request: {run['pr_url']}"]
        assert not [r for r in jira.requests if r.method == "PUT"]


class TestOtherRunsComments:
    def test_concurrent_runs_of_two_tickets_keep_to_their_own_comment(self, tmp_path: Path,
                                                                      jira: FakeJira) -> None:
        foreign = {key: jira.add_foreign_comment(key, "a person's comment") for key in ("PROJ-62", "PROJ-63")}
        with running_service(tmp_path, {"delay_s": 0.3}, MAX_CONCURRENT_RUNS=2, **_env(jira)) as svc:
            a, b = svc.deliver("PROJ-62")["run_id"], svc.deliver("PROJ-63")["run_id"]
            runs = {"PROJ-62": svc.wait(a), "PROJ-63": svc.wait(b)}
        for key, run in runs.items():
            assert run["status"] == "succeeded"
            (mine,) = _ours(jira, key)
            assert has_marker(mine["body"], run["run_id"])
            other = runs["PROJ-63" if key == "PROJ-62" else "PROJ-62"]["run_id"]
            assert not has_marker(mine["body"], other)
            puts = [r.path for r in jira.requests if r.method == "PUT" and f"/issue/{key}/" in r.path]
            assert puts and set(puts) == {f"/rest/api/3/issue/{key}/comment/{mine['id']}"}
            assert foreign[key] not in jira.edits  # a person's comment is never touched

    def test_a_later_run_of_the_ticket_leaves_the_earlier_runs_comment_alone(
            self, tmp_path: Path, jira: FakeJira) -> None:
        with running_service(tmp_path, **_env(jira)) as svc:
            first = svc.run("PROJ-64")
            (old,) = _ours(jira, "PROJ-64")
            edits, body = jira.edits[old["id"]], json.dumps(old["body"])
            second = svc.run("PROJ-64")
        assert first["status"] == second["status"] == "succeeded"
        assert len(_ours(jira, "PROJ-64")) == 2
        assert jira.edits[old["id"]] == edits and json.dumps(old["body"]) == body

    def test_a_quoted_marker_in_someone_elses_comment_is_not_ours(self, tmp_path: Path,
                                                                  jira: FakeJira) -> None:
        # The marker of the run to come cannot be known; a quote of it by another account is tested
        # directly: the look-up skips comments that are not the service's.
        from app.services.jira.progress import ProgressComments
        from app.services.outbound_scan import SecretScanner

        jira.add_foreign_comment("PROJ-65", marker_text("PROJ-65:fixed-id"))

        class Api:
            async def myself(self) -> str:
                return jira.account_id

            async def list_comments(self, key: str, *, limit: int = 200) -> list[Any]:
                from app.services.jira.base import JiraComment
                return [c for c in (JiraComment.of(r) for r in jira.comment_records[key]) if c]

        found = ProgressComments(Api(), SecretScanner())  # type: ignore[arg-type]
        import asyncio
        assert asyncio.run(found.find("PROJ-65", "PROJ-65:fixed-id")) is None


class TestJiraFailing:
    def test_a_lost_answer_to_the_post_never_posts_twice(self, tmp_path: Path, jira: FakeJira) -> None:
        # The first POST of the comment is made, then answered 500 (its answer lost on the way).
        jira.lose_answers(500, times=1, method="POST", path_contains="/comment")
        with running_service(tmp_path, **_env(jira)) as svc:
            run = svc.run("PROJ-66")
        assert run["status"] == "succeeded"
        assert len(_ours(jira, "PROJ-66")) == 1
        assert len(_posts(jira, "PROJ-66")) == 1
        assert "opened a pull request" in jira.comment_texts("PROJ-66")[0]

    @pytest.mark.parametrize("status,headers", [(500, {}), (429, {"Retry-After": "20"})])
    def test_jira_failing_throughout_never_fails_nor_holds_the_run(
            self, tmp_path: Path, jira: FakeJira, status: int, headers: dict[str, str]) -> None:
        # 429 with Retry-After 20 s: a client honouring it on the pipeline's path would hold every
        # step for 20 s (minutes for the run; the harness waits 60 s). Progress is bounded and off
        # the path: the run ends, and the report step records why Jira heard nothing.
        jira.inject(status, times=10_000, headers=headers, path_contains="/rest/api/3/issue/")
        with running_service(tmp_path, **_env(jira, JIRA_PROGRESS_TIMEOUT_SEC=1)) as svc:
            run = svc.run("PROJ-67")
        assert run["status"] == "succeeded" and run["pr_url"]
        report = step(run, "report")
        assert report["status"] == "failed" and report["detail"]["error"]
        assert jira.comment_records.get("PROJ-67", []) == []

    def test_a_jira_that_never_answers_never_holds_the_run(self, tmp_path: Path, jira: FakeJira) -> None:
        # Every request hangs (each would take the client's 20 s read timeout, times its retries):
        # were any Jira call on the pipeline's path unbounded, the run would not end within the
        # harness's 60 s. Progress is bounded (JIRA_PROGRESS_TIMEOUT_SEC) and off the path.
        jira.hang(times=10_000, path_contains="/rest/api/3/issue/")
        with running_service(tmp_path, **_env(jira, JIRA_PROGRESS_TIMEOUT_SEC=1)) as svc:
            run = svc.run("PROJ-69")
        assert run["status"] == "succeeded" and run["pr_url"]
        assert "timed out" in step(run, "report")["detail"]["error"]


class TestHostileText:
    def test_agent_text_is_plain_adf_text_and_secrets_are_redacted(self, tmp_path: Path,
                                                                   jira: FakeJira) -> None:
        hostile = ('max_turns [~accountid:5b10] {"type":"mention","attrs":{"id":"x"}} '
                   f'<a href="https://evil.example">x</a> token={jira.token}')
        script = {"tickets": {"PROJ-68": {"errors": {"implement": hostile}}}}
        with running_service(tmp_path, script, **_env(jira)) as svc:
            run = svc.run("PROJ-68")
        assert run["status"] == "failed"
        (comment,) = _ours(jira, "PROJ-68")
        sent = json.dumps([r.json for r in jira.requests if r.path.startswith("/rest/api/3/issue/PROJ-68")])
        assert jira.token not in sent
        nodes = _nodes(comment["body"])
        assert {n["type"] for n in nodes} <= {"doc", "paragraph", "text", "blockquote", "bulletList",
                                             "listItem", "hardBreak"}
        hrefs = [m["attrs"]["href"] for n in nodes for m in n.get("marks", []) if m["type"] == "link"]
        assert not any("evil.example" in h for h in hrefs)
        text = jira.comment_texts("PROJ-68")[0]
        assert '{"type":"mention"' in text and "[redacted:JIRA_API_TOKEN]" in text


class TestOperatorCancel:
    @pytest.mark.parametrize("where", ["api", "dashboard"])
    def test_a_cancelled_run_says_so_in_its_comment(self, tmp_path: Path, jira: FakeJira, where: str) -> None:
        # An operator's cancel ends the run without a report step: the comment that said
        # "working" must end saying the run was cancelled (edited in place, not a second one),
        # whether the runs API or the dashboard's button cancelled it.
        with running_service(tmp_path, {"delay_s": 5, "tickets": {}}, OPERATOR_TOKEN=OP, **_env(jira)) as svc:
            svc.client.headers["Authorization"] = f"Bearer {OP}"
            run_id = svc.deliver("PROJ-63")["run_id"]
            deadline = time.monotonic() + 20
            while step_status(svc, run_id, "implement") != "running" and time.monotonic() < deadline:
                time.sleep(0.05)  # until the agent is at work
            hub = svc.services.deps.progress
            assert hub is not None
            svc.client.portal.call(hub.idle)  # "working" has been published
            assert "working on it" in jira.comment_texts("PROJ-63")[0]
            cancelled = (svc.client.post(f"/runs/{run_id}/cancel") if where == "api"
                         else _dashboard_cancel(svc, run_id))
            svc.client.portal.call(hub.idle)  # the cancel's edit is in the background
            svc.claude.delay_s = 0
        assert cancelled.status_code == (202 if where == "api" else 303)
        (comment,) = _ours(jira, "PROJ-63")
        assert len(_posts(jira, "PROJ-63")) == 1 and has_marker(comment["body"], run_id)
        (text,) = jira.comment_texts("PROJ-63")
        assert "the run was cancelled" in text and "cancelled by an operator" in text
        assert "working on it" not in text and "⛔ implement (cancelled)" in text

    def test_a_cancel_after_the_report_step_leaves_the_final_state(
            self, tmp_path: Path, jira: FakeJira) -> None:
        # A cancel that wins the race with cleanup/finish (the record still active, the report step
        # done) must not turn "opened a pull request" into "cancelled": the report owns the comment.
        script = {"tickets": {"PROJ-64": {"implement": [{"write": "a.txt", "content": "x\n"}]}}}
        with running_service(tmp_path, script, **_env(jira)) as svc:
            run = svc.run("PROJ-64")
            hub = svc.services.deps.progress
            assert hub is not None
            hub_cancelled = hub.cancelled

            async def cancel_late() -> None:
                hub_cancelled(run["run_id"])  # what operations.cancel_run does after the engine's cancel
                await hub.idle()

            svc.client.portal.call(cancel_late)  # type: ignore[union-attr]
        assert run["status"] == "succeeded" and step(run, "report")["status"] == "succeeded"
        (text,) = jira.comment_texts("PROJ-64")
        assert "auto-code opened a pull request" in text and run["pr_url"] in text
        assert "the run was cancelled" not in text


def step_status(svc: Any, run_id: str, name: str) -> str | None:
    steps = {s["name"]: s["status"] for s in svc.client.get(f"/runs/{run_id}").json()["steps"]}
    return steps.get(name)


OP = "operator-token-0123456789abcdef"


def _dashboard_cancel(svc: Any, run_id: str) -> Any:
    """Sign in to the dashboard and press the run page's cancel button (form, CSRF, same origin)."""
    origin = {"Origin": "http://testserver"}

    def csrf(path: str) -> str:
        found = re.search(r'name="csrf_token" value="([^"]+)"', svc.client.get(path).text)
        assert found, path
        return found.group(1)

    form = {"csrf_token": csrf("/ui/login"), "token": OP, "next": "/ui/runs"}
    signed_in = svc.client.post("/ui/login", data=form, headers=origin, follow_redirects=False)
    assert signed_in.status_code == 303, signed_in.text
    page = f"/ui/runs/{quote(run_id, safe='')}"
    return svc.client.post(f"{page}/cancel", data={"csrf_token": csrf(page)}, headers=origin,
                           follow_redirects=False)
