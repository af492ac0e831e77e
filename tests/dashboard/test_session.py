"""The dashboard's session cookie, CSRF token and link rules, without a browser: what a forged,
expired or foreign cookie gets, that a CSRF token only works with its own session, that the
cookie is Secure over https, that sign-in only redirects within the dashboard, and that only
http(s) URLs become links. Plus development without OPERATOR_TOKEN: the dashboard is open."""

from __future__ import annotations

from pathlib import Path

import httpx
from fastapi import Response
from starlette.requests import Request

from app.dashboard.security import HOME, safe_next, set_session_cookie
from app.dashboard.session import SessionSigner
from app.dashboard.views import ticket_link, web_link
from tests.conftest import make_settings
from tests.dashboard.live_service import live_service

NOW = 1_800_000_000.0
OP = "operator-token-0123456789abcdef"


def signer(token: str = OP) -> SessionSigner:
    return SessionSigner.from_operator_token(token, session_hours=12)


def test_a_cookie_is_only_good_with_its_signature_key_and_before_its_expiry() -> None:
    s = signer()
    session, cookie = s.issue(auth=True, now=NOW)
    body, sig = cookie.split(".")
    assert s.read(cookie, now=NOW + 60) == session
    assert s.read(cookie, now=NOW + 12 * 3600 + 1) is None  # expired
    assert s.read(f"{body}.{sig[:-1]}{'A' if sig[-1] != 'A' else 'B'}", now=NOW) is None  # signature
    forged_body = body[:-2] + ("AA" if body[-2:] != "AA" else "BB")
    assert s.read(f"{forged_body}.{sig}", now=NOW) is None  # body changed, old signature
    assert signer("another-operator-token-0123456789").read(cookie, now=NOW) is None  # rotated token
    assert s.read("", now=NOW) is None and s.read("garbage", now=NOW) is None
    assert s.read("x" * 600, now=NOW) is None
    _, anonymous = s.issue(auth=False, now=NOW)
    read = s.read(anonymous, now=NOW)
    assert read is not None and not read.auth and s.read(anonymous, now=NOW + 3601) is None


def test_a_csrf_token_works_only_with_its_own_session() -> None:
    s = signer()
    mine, _ = s.issue(auth=True, now=NOW)
    theirs, _ = s.issue(auth=True, now=NOW)
    token = s.csrf_token(mine)
    assert s.csrf_ok(mine, token)
    assert not s.csrf_ok(theirs, token) and not s.csrf_ok(mine, None) and not s.csrf_ok(mine, "")
    assert not signer("another-operator-token-0123456789").csrf_ok(mine, token)


def _request(scheme: str) -> Request:
    return Request({"type": "http", "scheme": scheme, "method": "GET", "path": "/ui/login", "headers": [],
                    "server": ("dash.example", 443 if scheme == "https" else 80), "query_string": b""})


def test_the_cookie_is_secure_over_https_and_in_production(tmp_path: Path) -> None:
    dev = make_settings(tmp_path)
    cookies = {}
    for name, scheme in (("http", "http"), ("https", "https")):
        response = Response()
        set_session_cookie(_request(scheme), response, "v.s", 3600, dev)
        cookies[name] = response.headers["set-cookie"]
    assert "Secure" not in cookies["http"] and "Secure" in cookies["https"]
    # Behind a proxy that ends TLS the service sees http; PUBLIC_BASE_URL says the browser uses https.
    for base, secure in (("https://auto-code.example.com/", True), ("http://auto-code.internal:8080", False)):
        response = Response()
        set_session_cookie(_request("http"), response, "v.s", 3600,
                           make_settings(tmp_path, PUBLIC_BASE_URL=base))
        cookies[base] = response.headers["set-cookie"]
        assert ("Secure" in cookies[base]) is secure, (base, cookies[base])
    for cookie in cookies.values():
        assert "HttpOnly" in cookie and "SameSite=strict" in cookie and "Path=/ui" in cookie


def test_sign_in_only_sends_you_on_within_the_dashboard() -> None:
    for good in ("/ui/runs", "/ui/runs/PROJ-1%3Ax", "/ui", "/ui?x=1"):
        assert safe_next(good) == good
    for bad in (None, "", "//evil.example/ui", "https://evil.example/ui/runs", "/uix", "/ui\\evil",
                "/ui/ runs", "/ui/\nruns", "javascript:alert(1)", "/other"):
        assert safe_next(bad) == HOME, bad


def test_only_http_urls_become_links() -> None:
    assert web_link("https://github.com/o/r/pull/1") == "https://github.com/o/r/pull/1"
    for bad in ("javascript:alert(1)", "data:text/html,x", "file:///etc/passwd", "//x", "", None):
        assert web_link(bad) is None
    assert ticket_link("https://jira.example.test/", "PROJ-1") == "https://jira.example.test/browse/PROJ-1"
    assert ticket_link("javascript:alert(1)//", "PROJ-1") is None and ticket_link(None, "PROJ-1") is None


def test_without_an_operator_token_the_dashboard_is_open(tmp_path: Path) -> None:
    with live_service(tmp_path) as svc:
        page = httpx.get(f"{svc.url}/ui/runs", timeout=10, follow_redirects=True)
    assert page.status_code == 200 and "<h1>Runs</h1>" in page.text
