"""The dashboard over plain HTTP against the real service: sign-in rules (CSRF on the form,
throttled failures, redirects only within /ui), sign-out, error pages for bad input (4xx, never a
5xx, with the security headers), the static allowlist, and a follow-up run on its parent's page."""

from __future__ import annotations

import re
from pathlib import Path

import httpx
import sqlalchemy as sa

from app.dashboard.throttle import SIGN_IN_FAILURES
from app.services.runner.tables import runs as runs_table
from tests.dashboard.live_service import LiveService, live_service

OP = "operator-token-0123456789abcdef"
AUTH = {"Authorization": f"Bearer {OP}"}


def login_form(client: httpx.Client) -> str:
    page = client.get("/ui/login")
    found = re.search(r'name="csrf_token" value="([^"]+)"', page.text)
    assert found, page.text
    return found.group(1)


def sign_in(svc: LiveService, client: httpx.Client, token: str = OP,
            next_: str = "/ui/runs") -> httpx.Response:
    csrf = login_form(client)
    return client.post("/ui/login", data={"csrf_token": csrf, "token": token, "next": next_},
                       headers={"Origin": svc.url})


def csrf_of(page: httpx.Response) -> str:
    found = re.search(r'name="csrf_token" value="([^"]+)"', page.text)
    assert found
    return found.group(1)


def test_sign_in_form_rules_and_sign_out(tmp_path: Path) -> None:
    with live_service(tmp_path, OPERATOR_TOKEN=OP) as svc, httpx.Client(base_url=svc.url, timeout=10) as c:
        no_form_session = httpx.post(f"{svc.url}/ui/login", data={"token": OP, "csrf_token": "x"},
                                     headers={"Origin": svc.url}, timeout=10)
        login_form(c)
        no_csrf = c.post("/ui/login", data={"token": OP}, headers={"Origin": svc.url})
        other_site = c.post("/ui/login", data={"token": OP, "csrf_token": login_form(c)},
                            headers={"Origin": "https://evil.example"})
        offsite_next = sign_in(svc, c, next_="//evil.example/ui/runs")
        runs = c.get("/ui/runs")
        signed_out = c.post("/ui/logout", data={"csrf_token": csrf_of(runs)}, headers={"Origin": svc.url})
        after = c.get("/ui/runs")
    assert no_form_session.status_code == 403 and no_csrf.status_code == 403 and other_site.status_code == 403
    assert offsite_next.status_code == 303 and offsite_next.headers["location"] == "/ui/runs"
    assert runs.status_code == 200
    assert signed_out.status_code == 303 and 'ac_session=""' in signed_out.headers["set-cookie"]
    assert after.status_code == 303 and after.headers["location"].startswith("/ui/login")


def test_failed_sign_ins_are_throttled(tmp_path: Path) -> None:
    with live_service(tmp_path, OPERATOR_TOKEN=OP) as svc, httpx.Client(base_url=svc.url, timeout=10) as c:
        wrong = [sign_in(svc, c, token=f"guess-{n:02d}-0123456789abcdef").status_code
                 for n in range(SIGN_IN_FAILURES)]
        right_but_throttled = sign_in(svc, c)
    assert wrong == [401] * SIGN_IN_FAILURES
    assert right_but_throttled.status_code == 429 and "too many failed sign-ins" in right_but_throttled.text


def test_bad_input_gets_an_error_page_never_a_5xx(tmp_path: Path) -> None:
    with live_service(tmp_path, OPERATOR_TOKEN=OP) as svc, httpx.Client(base_url=svc.url, timeout=10) as c:
        sign_in(svc, c)
        runs = c.get("/ui/runs")
        token = csrf_of(runs)
        answers = {
            "unknown run": c.get("/ui/runs/NOPE-1:x"),
            "unknown run's live part": c.get("/ui/runs/NOPE-1:x/live"),
            "unknown run's events": c.get("/ui/runs/NOPE-1:x/events"),
            "bad status": c.get("/ui/runs", params={"status": "exploded"}),
            "bad kind": c.get("/ui/runs", params={"kind": "x"}),
            "long ticket": c.get("/ui/runs", params={"ticket": "P" * 500}),
            "json body": c.post("/ui/runs/NOPE-1:x/cancel", json={"csrf_token": token},
                                headers={"Origin": svc.url}),
            "huge form": c.post("/ui/runs/NOPE-1:x/cancel", data={"csrf_token": token, "pad": "x" * 20_000},
                                headers={"Origin": svc.url}),
            "cancel unknown": c.post("/ui/runs/NOPE-1:x/cancel", data={"csrf_token": token},
                                     headers={"Origin": svc.url}),
            "unknown static": c.get("/ui/static/.env"),
            "unknown static name": c.get("/ui/static/config.py"),
        }
        script = c.get("/ui/static/dashboard.js")
    expected = {"unknown run": 404, "unknown run's live part": 404, "unknown run's events": 404,
                "bad status": 400, "bad kind": 400, "long ticket": 400, "json body": 415, "huge form": 413,
                "cancel unknown": 404, "unknown static": 404, "unknown static name": 404}
    assert {name: r.status_code for name, r in answers.items()} == expected
    for name, r in answers.items():
        assert "default-src 'none'" in r.headers.get("content-security-policy", ""), name
    assert script.headers["content-type"].startswith("text/javascript")
    assert "default-src 'none'" in script.headers["content-security-policy"]


def test_a_follow_up_run_is_linked_from_its_parent_and_a_hold_is_shown(tmp_path: Path) -> None:
    with live_service(tmp_path, OPERATOR_TOKEN=OP) as svc, httpx.Client(base_url=svc.url, timeout=10) as c:
        parent = svc.wait(svc.deliver("PROJ-6"), headers=AUTH)
        svc.store.create_run("PROJ-6:ci-fix-1", "PROJ-6", '{"key": "PROJ-6"}', "running", kind="ci_fix",
                             parent_run_id=parent["run_id"], pr_number=1)
        svc.store.create_run("PROJ-7:held", "PROJ-7", '{"key": "PROJ-7", "summary": "<b>held</b>"}', "queued")
        with svc.store.engine.begin() as conn:  # as the spend guard writes a hold
            conn.execute(sa.update(runs_table).where(runs_table.c.run_id == "PROJ-7:held")
                         .values(status="waiting", hold_reason="daily spend cap of $1.00 for all projects"))
        sign_in(svc, c)
        parent_page = c.get(f"/ui/runs/{parent['run_id']}")
        child_page = c.get("/ui/runs/PROJ-6:ci-fix-1")
        held_page = c.get("/ui/runs/PROJ-7:held")
    related = parent_page.text.split("Related runs", 1)[1]
    assert re.search(r"follow-up ci fix <a href=\"/ui/runs/PROJ-6%3Aci-fix-1\"", related)
    assert "follow-up of" in child_page.text and parent["run_id"].split(":")[1][:8] in child_page.text
    assert "waiting: daily spend cap of $1.00 for all projects" in held_page.text
    assert 'status-waiting">waiting' in held_page.text and "&lt;b&gt;held&lt;/b&gt;" in held_page.text
    assert 'id="cancel"' in held_page.text  # a waiting run is still active: it can be cancelled


def test_the_run_page_reads_the_run_record_once(tmp_path: Path) -> None:
    """A page load and a live refresh each read the run's record once (its view, steps and ticket
    copy together), counted on the real store's database engine: every SELECT of `ac_runs` by
    this run's id."""
    with live_service(tmp_path, OPERATOR_TOKEN=OP) as svc, httpx.Client(base_url=svc.url, timeout=10) as c:
        run = svc.wait(svc.deliver("PROJ-8", "Count my reads"), headers=AUTH)
        sign_in(svc, c)
        reads: list[str] = []

        def record(_conn: object, _cursor: object, statement: str, params: object, *_: object) -> None:
            if ("FROM ac_runs" in statement and "ac_runs.run_id = " in statement
                    and run["run_id"] in repr(params)):
                reads.append(statement)

        sa.event.listen(svc.store.engine, "before_cursor_execute", record)
        try:
            page = c.get(f"/ui/runs/{run['run_id']}")
            page_reads, reads[:] = len(reads), []
            live = c.get(f"/ui/runs/{run['run_id']}/live")
            live_reads = len(reads)
        finally:
            sa.event.remove(svc.store.engine, "before_cursor_execute", record)
    assert page.status_code == 200 and "Count my reads" in page.text  # the summary: the ticket copy
    assert live.status_code == 200 and "succeeded" in live.text
    assert (page_reads, live_reads) == (1, 1)
