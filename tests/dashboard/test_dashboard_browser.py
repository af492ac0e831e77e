"""The dashboard in a real headless chromium against the real service over HTTP (uvicorn on
127.0.0.1, DBOS on SQLite, real git, the scripted Claude): sign-in and the cookie's attributes,
the runs-list filters, a run page following a step that finishes while it is open, the cancel and
retry buttons and their CSRF protection, hostile run text shown as text under a strict CSP.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import httpx
import sqlalchemy as sa

from app.services.runner.tables import runs as runs_table
from tests.dashboard.live_service import LiveService, live_service

OP = "operator-token-0123456789abcdef"
AUTH = {"Authorization": f"Bearer {OP}"}
HOSTILE = '<script>window.__pwned = 1</script><img src="x" onerror="window.__pwned = 2">'


def sign_in(page: Any, svc: LiveService, token: str = OP) -> None:
    page.goto(f"{svc.url}/ui/runs")
    page.wait_for_url(re.compile(r"/ui/login\?next="))
    page.fill("#token", token)
    page.click("button[type=submit]:has-text('Sign in')")


def test_sign_in_once_then_a_strict_session_cookie(tmp_path: Path, context: Any, shoot: Any) -> None:
    with live_service(tmp_path, OPERATOR_TOKEN=OP) as svc:
        page = context.new_page()
        sign_in(page, svc, token="not-the-operator-token")
        page.wait_for_selector("text=That is not the operator token.")
        shoot(page, "wrong-token")
        assert not [c for c in context.cookies() if _authenticated(c)]
        page.fill("#token", OP)
        page.click("button[type=submit]:has-text('Sign in')")
        page.wait_for_url(f"{svc.url}/ui/runs")
        page.wait_for_selector("h1:has-text('Runs')")
        (cookie,) = [c for c in context.cookies() if c["name"] == "ac_session"]
        script_sees = page.evaluate("() => document.cookie")
        # The cookie is for the dashboard only: the Bearer-token API does not accept it.
        api_with_cookie = httpx.get(f"{svc.url}/runs", cookies={"ac_session": cookie["value"]},
                                    headers={"Cookie": f"ac_session={cookie['value']}"}, timeout=10)
        api_with_token = httpx.get(f"{svc.url}/runs", headers=AUTH, timeout=10)
        forged = httpx.get(f"{svc.url}/ui/runs", headers={"Cookie": f"ac_session={cookie['value'][:-2]}xx"},
                           timeout=10, follow_redirects=False)
    assert cookie["httpOnly"] is True and cookie["sameSite"] == "Strict" and cookie["path"] == "/ui"
    assert cookie["secure"] is False  # plain http on 127.0.0.1; https or production sets it
    assert 11 * 3600 < cookie["expires"] - _now() <= 12 * 3600 + 60  # DASHBOARD_SESSION_HOURS=12
    assert OP not in cookie["value"]
    assert script_sees == ""  # HttpOnly: no script reads it
    assert api_with_cookie.status_code == 401 and api_with_token.status_code == 200
    assert forged.status_code == 303 and forged.headers["location"].startswith("/ui/login")


def _authenticated(cookie: dict[str, Any]) -> bool:
    import base64
    import json

    body = cookie["value"].split(".")[0]
    return bool(json.loads(base64.urlsafe_b64decode(body + "=" * (-len(body) % 4)))["auth"])


def _now() -> float:
    import time

    return time.time()


def test_runs_list_filters(tmp_path: Path, context: Any, shoot: Any) -> None:
    script = {"tickets": {"BAD-7": {"errors": {"implement": "max_turns"}}}}
    with live_service(tmp_path, script, OPERATOR_TOKEN=OP, JIRA_BASE_URL="https://jira.example.test") as svc:
        good = svc.wait(svc.deliver("PROJ-1"), headers=AUTH)
        bad = svc.wait(svc.deliver("BAD-7"), headers=AUTH)
        # A follow-up run of PROJ-1 and a second repository, written through the real store.
        svc.store.create_run("PROJ-1:followup-1", "PROJ-1", '{"key": "PROJ-1"}', "succeeded", kind="ci_fix",
                             parent_run_id=good["run_id"], pr_number=1)
        with svc.store.engine.begin() as conn:
            conn.execute(sa.update(runs_table).where(runs_table.c.run_id == bad["run_id"])
                         .values(repository="acme/api"))
            conn.execute(sa.update(runs_table).where(runs_table.c.run_id != bad["run_id"])
                         .values(repository="acme/web"))
        page = context.new_page()
        sign_in(page, svc)
        page.wait_for_selector("#runs tbody tr[data-run]")
        everything = _listed(page)
        shoot(page, "all")
        page.select_option("select[name=status]", "failed")
        page.click("#filters button[type=submit]")
        page.wait_for_url(re.compile(r"status=failed"))
        failed = _listed(page)
        page.goto(f"{svc.url}/ui/runs?kind=ci_fix")
        by_kind = _listed(page)
        page.goto(f"{svc.url}/ui/runs")
        page.fill("input[name=ticket]", "PROJ-1")
        page.click("#filters button[type=submit]")
        page.wait_for_url(re.compile(r"ticket=PROJ-1"))
        by_ticket = _listed(page)
        page.goto(f"{svc.url}/ui/runs")
        page.select_option("select[name=repository]", "acme/api")
        page.click("#filters button[type=submit]")
        page.wait_for_url(re.compile(r"repository=acme%2Fapi"))
        by_repo = _listed(page)
        ticket_href = page.get_attribute(f"tr[data-run='{bad['run_id']}'] td:nth-child(2) a", "href")
        bad_filter = page.goto(f"{svc.url}/ui/runs?status=exploded")
        bad_filter_text = page.inner_text("main")
    assert set(everything) == {good["run_id"], bad["run_id"], "PROJ-1:followup-1"}
    assert failed == [bad["run_id"]]
    assert by_kind == ["PROJ-1:followup-1"]
    assert set(by_ticket) == {good["run_id"], "PROJ-1:followup-1"}
    assert by_repo == [bad["run_id"]]
    assert ticket_href == "https://jira.example.test/browse/BAD-7"
    assert bad_filter is not None and bad_filter.status == 400 and "status must be one of" in bad_filter_text


def _listed(page: Any) -> list[str]:
    return list(page.eval_on_selector_all("#runs tbody tr[data-run]", "rows => rows.map(r => r.dataset.run)"))


def test_run_page_follows_a_step_finishing_without_a_reload(tmp_path: Path, context: Any, shoot: Any) -> None:
    """implement finishes while the page is open and the run goes on (the review is held): the
    timeline shows it from the step's own event, not from the run's end; then the run ends."""
    with live_service(tmp_path, gated=True, gated_review=True, OPERATOR_TOKEN=OP, ENABLE_REVIEW="true",
                      ENABLE_LINT="true") as svc:
        run_id = svc.deliver("PROJ-5", "Add a CONTRIBUTING file")
        assert svc.claude.entered.wait(30)  # the agent is at work: implement is running
        page = context.new_page()
        sign_in(page, svc)
        page.goto(f"{svc.url}/ui/runs/{run_id}")
        assert page.inner_text("tr[data-step=implement] .step-status") == "running"
        page.wait_for_selector("#stream-state:has-text('following live')")
        page.evaluate("() => { window.__same_page = 'yes'; }")  # gone if the page reloads
        shoot(page, "implement-running")
        svc.claude.release.set()
        page.wait_for_selector("tr[data-step=implement] .status-succeeded")
        page.wait_for_selector("tr[data-step=review] .status-running")
        mid_run = page.inner_text("#run-status")
        diffstat = page.inner_text("#diff .diffstat")
        shoot(page, "review-running")
        svc.claude.release_review.set()
        page.wait_for_selector("#run-status .status-succeeded")
        page.wait_for_selector("tr[data-step=lint] .status-succeeded")
        page.wait_for_selector("#stream-state:has-text('run ended')")
        page.wait_for_selector("#log .line:has-text('run_finished')")
        same_page = page.evaluate("() => window.__same_page")
        swaps = int(page.get_attribute("#live", "data-version") or 0)
        review_round = page.inner_text("tr[data-step=review] .rounds")
        lint_round = page.inner_text("tr[data-step=lint] .rounds")
        shoot(page, "finished")
    assert mid_run == "running"  # implement's end was shown while the run was still going
    assert "docs/tickets/proj-5.md" in diffstat
    assert same_page == "yes"  # updated in place, never reloaded
    assert swaps >= 2
    assert "check 1: no issues" in review_round and "check 1: passed" in lint_round


def _post(page: Any, url: str, form: dict[str, str], origin: str | None) -> Any:
    headers = {"Origin": origin} if origin else {}
    return page.request.post(url, form=form, headers=headers, max_redirects=0)


def test_cancel_and_retry_buttons_with_csrf(tmp_path: Path, context: Any, shoot: Any) -> None:
    with live_service(tmp_path, gated=True, OPERATOR_TOKEN=OP) as svc:
        run_id = svc.deliver("PROJ-8")
        assert svc.claude.entered.wait(30)
        page = context.new_page()
        sign_in(page, svc)
        page.goto(f"{svc.url}/ui/runs/{run_id}")
        token = page.get_attribute("form[action$='/cancel'] input[name=csrf_token]", "value")
        cancel_url = f"{svc.url}/ui/runs/{run_id.replace(':', '%3A')}/cancel"
        no_token = _post(page, cancel_url, {}, svc.url)
        wrong_token = _post(page, cancel_url, {"csrf_token": "x" * 43}, svc.url)
        other_site = _post(page, cancel_url, {"csrf_token": token}, "https://evil.example")
        no_origin = _post(page, cancel_url, {"csrf_token": token}, None)
        for refused in (no_token, wrong_token, other_site, no_origin):
            assert refused.status == 403
        assert svc.get_run(run_id, AUTH)["status"] == "running"  # none of them cancelled it
        page.click("#cancel")
        page.wait_for_selector("#run-status .status-cancelled")
        shoot(page, "cancelled")
        page.click("#retry")
        page.wait_for_url(lambda url: "/ui/runs/PROJ-8" in url and run_id.split(":")[1] not in url)
        new_id = page.url.rsplit("/", 1)[1].replace("%3A", ":")
        page.wait_for_selector("#run-status .status-queued, #run-status .status-running")
        svc.claude.release.set()
        page.wait_for_selector("#run-status .status-succeeded")
        shoot(page, "retried")
        after = svc.get_run(run_id, AUTH)
    assert "CSRF" in no_token.text() and "origin" in other_site.text()
    assert after["status"] == "cancelled"
    assert new_id != run_id and new_id.startswith("PROJ-8:")


def test_hostile_text_is_text_and_the_csp_blocks_injected_script(tmp_path: Path, context: Any,
                                                                 shoot: Any) -> None:
    with live_service(tmp_path, OPERATOR_TOKEN=OP) as svc:
        run_id = svc.wait(svc.deliver("PROJ-9", HOSTILE), headers=AUTH)["run_id"]
        svc.store.add_log(run_id, f"agent said {HOSTILE}")
        page = context.new_page()
        sign_in(page, svc)
        response = page.goto(f"{svc.url}/ui/runs/{run_id}")
        assert response is not None
        page.wait_for_selector("#stream-state:has-text('run ended')")
        page.wait_for_selector("#log .line:has-text('agent said')")
        summary = page.inner_text("#summary")
        log_text = page.inner_text("#log")
        pwned = page.evaluate("() => window.__pwned === undefined ? null : window.__pwned")
        images = page.eval_on_selector_all("main img", "els => els.length")
        page.evaluate("""() => {
            window.__violations = [];
            document.addEventListener('securitypolicyviolation',
                                      (e) => window.__violations.push(e.violatedDirective));
            const s = document.createElement('script');
            s.textContent = 'window.__inline = 1';
            document.body.appendChild(s);
        }""")
        page.wait_for_function("() => window.__violations.length > 0")
        violations = page.evaluate("() => window.__violations")
        inline = page.evaluate("() => window.__inline === undefined ? null : window.__inline")
        shoot(page, "hostile")
        headers = response.headers
    assert HOSTILE in summary and HOSTILE in log_text  # shown, as text
    assert pwned is None and images == 0
    assert inline is None  # an inline script added at run time does not run: the CSP forbids it
    assert any(v.startswith("script-src") for v in violations), violations
    assert "script-src 'self'" in headers["content-security-policy"]
    assert "unsafe-inline" not in headers["content-security-policy"]
    assert "frame-ancestors 'none'" in headers["content-security-policy"]
    assert headers["x-frame-options"] == "DENY"
