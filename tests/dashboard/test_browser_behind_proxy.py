"""The dashboard in a real headless chromium behind a reverse proxy that rewrites Host: the browser
opens `http://auto-code.example.com:<port>` (its resolver maps that name to 127.0.0.1, nothing
else changes), the proxy (tests/dashboard/host_proxy.py) hands the service `Host: auto-code:3001`.
The browser's own Origin and Sec-Fetch-Site are what the check sees: with PUBLIC_BASE_URL naming
the public origin the sign-in and Cancel buttons work and a foreign Origin is refused 403; without
it the sign-in button is refused 403 (origin), as before.
"""

from __future__ import annotations

import contextlib
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx
import pytest

from tests.dashboard.conftest import CHROMIUM
from tests.dashboard.host_proxy import HostRewritingProxy, host_rewriting_proxy
from tests.dashboard.live_service import LiveService, free_port, live_service

OP = "operator-token-0123456789abcdef"
AUTH = {"Authorization": f"Bearer {OP}"}
PUBLIC_HOST = "auto-code.example.com"
UPSTREAM_HOST = "auto-code:3001"


# Module scope (as conftest's `browser`, and for the same reason): this one's resolver knows the
# public name, which a context cannot be told.
@pytest.fixture(scope="module")
def public_browser() -> Iterator[Any]:
    if not CHROMIUM.exists():
        pytest.skip(f"BROWSER TESTS SKIPPED: {CHROMIUM} is absent (apt-get install -y chromium)")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=str(CHROMIUM), headless=True,
                                     args=[f"--host-resolver-rules=MAP {PUBLIC_HOST} 127.0.0.1"])
        try:
            yield browser
        finally:
            browser.close()


@pytest.fixture
def page(public_browser: Any) -> Iterator[Any]:
    ctx = public_browser.new_context(viewport={"width": 1280, "height": 900})
    ctx.set_default_timeout(20_000)  # a bound on each DOM wait, not a measured duration
    try:
        yield ctx.new_page()
    finally:
        ctx.close()


@contextlib.contextmanager
def behind_proxy(tmp_path: Path, *,
                 public_base_url: bool) -> Iterator[tuple[LiveService, HostRewritingProxy, str]]:
    port = free_port()
    public = f"http://{PUBLIC_HOST}:{port}"
    env = {"PUBLIC_BASE_URL": public} if public_base_url else {}
    with live_service(tmp_path, gated=True, OPERATOR_TOKEN=OP, **env) as svc, \
            host_rewriting_proxy(urlsplit(svc.url).port or 80, UPSTREAM_HOST, port=port) as proxy:
        yield svc, proxy, public


def click_sign_in(page: Any, public: str) -> int:
    """Sign in with the form's button; the status of the sign-in POST's answer."""
    page.goto(f"{public}/ui/runs")
    page.wait_for_url(re.compile(r"/ui/login\?next="))
    page.fill("#token", OP)
    with page.expect_response(lambda r: r.request.method == "POST" and "/ui/login" in r.url) as answer:
        page.click("button[type=submit]:has-text('Sign in')")
    return int(answer.value.status)


def test_sign_in_and_cancel_buttons_work_with_public_base_url(tmp_path: Path, page: Any) -> None:
    with behind_proxy(tmp_path, public_base_url=True) as (svc, proxy, public):
        run_id = svc.deliver("PROJ-1")
        assert svc.claude.entered.wait(30)
        assert click_sign_in(page, public) == 303
        page.wait_for_url(f"{public}/ui/runs")
        page.wait_for_selector("h1:has-text('Runs')")
        page.goto(f"{public}/ui/runs/{run_id}")
        token = page.get_attribute("form[action$='/cancel'] input[name=csrf_token]", "value")
        # The browser's session and token, sent from another site's origin (Playwright's own request
        # context does not use chromium's resolver, so this goes to the proxy by its address).
        (cookie,) = [c["value"] for c in page.context.cookies() if c["name"] == "ac_session"]
        foreign = httpx.post(f"{proxy.url}/ui/runs/{run_id.replace(':', '%3A')}/cancel",
                             data={"csrf_token": token}, timeout=10,
                             headers={"Origin": "https://evil.example", "Cookie": f"ac_session={cookie}"})
        assert foreign.status_code == 403 and "origin" in foreign.text
        assert svc.get_run(run_id, AUTH)["status"] == "running"
        page.click("#cancel")
        page.wait_for_selector("#run-status .status-cancelled")
        page.close()  # ends the run page's event stream before the service stops
        after = svc.get_run(run_id, AUTH)["status"]
    assert after == "cancelled"
    assert set(proxy.hosts_seen()) == {UPSTREAM_HOST}


def test_without_public_base_url_the_sign_in_button_is_refused(tmp_path: Path, page: Any) -> None:
    with behind_proxy(tmp_path, public_base_url=False) as (_svc, proxy, public):
        assert click_sign_in(page, public) == 403
        page.wait_for_selector("h1:has-text('Refused')")
        text = page.inner_text("body")
    assert "did not come from the dashboard (origin)" in text
    assert set(proxy.hosts_seen()) == {UPSTREAM_HOST}
