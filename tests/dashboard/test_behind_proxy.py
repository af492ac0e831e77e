"""The dashboard behind a reverse proxy that rewrites Host (nginx's default `Host $proxy_host`,
cloudflared's `httpHostHeader`): the real service (uvicorn on 127.0.0.1) reached through a real
proxy (tests/dashboard/host_proxy.py) that hands it `Host: auto-code:3001` while the browser's
Origin is the public one. With PUBLIC_BASE_URL naming that origin, sign-in and cancel work; an
Origin of any other site (or scheme, or port) is refused 403, with PUBLIC_BASE_URL or without, and
no X-Forwarded-* header changes that; without PUBLIC_BASE_URL the rewritten Host is refused as before.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from http.cookiejar import Cookie, CookieJar, DefaultCookiePolicy
from pathlib import Path
from urllib.parse import quote, urlsplit

import httpx

from tests.dashboard.host_proxy import HostRewritingProxy, host_rewriting_proxy
from tests.dashboard.live_service import LiveService, live_service
from tests.dashboard.test_dashboard_http import csrf_of, login_form

OP = "operator-token-0123456789abcdef"
AUTH = {"Authorization": f"Bearer {OP}"}
PUBLIC = "https://auto-code.example.com"
UPSTREAM_HOST = "auto-code:3001"
# Origins a page of another site (or of this host under another scheme or port) would send.
FOREIGN = ("https://evil.example", "http://auto-code.example.com", "https://auto-code.example.com:8443",
           "https://auto-code.example.com.evil.example", "https://evil.example/auto-code.example.com",
           "null")
# What a client could add, hoping one of them is believed instead of Host or PUBLIC_BASE_URL.
SPOOFED = {"X-Forwarded-Host": "evil.example", "X-Forwarded-Proto": "https", "Forwarded": "host=evil.example",
           "X-Original-Host": "evil.example"}


class _TlsEndsAtTheProxy(DefaultCookiePolicy):
    """The browser is at https://auto-code.example.com; only the hop to the test's proxy is plain
    http, so the Secure session cookie (PUBLIC_BASE_URL is https) goes back as a browser would send it."""

    def return_ok_secure(self, cookie: Cookie, request: object) -> bool:
        return True


def client(url: str) -> httpx.Client:
    """An httpx client that sends the Secure cookies of its jar over the test's plain-http hop
    (httpx copies the jar into a default-policy one per request, which would drop them)."""
    jar = CookieJar(policy=_TlsEndsAtTheProxy())

    def send_secure_cookies(request: httpx.Request) -> None:
        httpx.Cookies(jar).set_cookie_header(request)

    return httpx.Client(base_url=url, timeout=10, cookies=jar, event_hooks={"request": [send_secure_cookies]})


def browser_headers(origin: str, **more: str) -> dict[str, str]:
    """What a browser sends with a form POST from a page of `origin` (to that same origin)."""
    return {"Origin": origin, "Sec-Fetch-Site": "same-origin", **more}


@contextlib.contextmanager
def behind_proxy(tmp_path: Path, **env: str) -> Iterator[tuple[LiveService, HostRewritingProxy]]:
    with live_service(tmp_path, gated=True, OPERATOR_TOKEN=OP, **env) as svc, \
            host_rewriting_proxy(urlsplit(svc.url).port or 80, UPSTREAM_HOST) as proxy:
        yield svc, proxy


def cancel_path(run_id: str) -> str:
    return f"/ui/runs/{quote(run_id, safe='')}/cancel"


def sign_in(client: httpx.Client, headers: dict[str, str]) -> httpx.Response:
    return client.post("/ui/login", data={"csrf_token": login_form(client), "token": OP, "next": "/ui/runs"},
                       headers=headers)


def outcome(resp: httpx.Response) -> str:
    """The status, and `origin` when it is the same-origin check's refusal (not the token's)."""
    return f"{resp.status_code} origin" if "(origin)" in resp.text else str(resp.status_code)


def sign_in_afresh(url: str, headers: dict[str, str]) -> str:
    """A sign-in from a new browser (its own sign-in form session): its `outcome`."""
    with client(url) as browser:
        return outcome(sign_in(browser, headers))


class TestPublicBaseUrlNamesTheBrowsersOrigin:
    def test_sign_in_and_cancel_work_and_other_origins_are_refused(self, tmp_path: Path) -> None:
        # Mixed case and a trailing slash: the host is compared case-insensitively, the path not at all.
        with behind_proxy(tmp_path, PUBLIC_BASE_URL="https://Auto-Code.Example.com/") as (svc, proxy), \
                client(proxy.url) as c:
            run_id = svc.deliver("PROJ-1")
            assert svc.claude.entered.wait(30)
            foreign_sign_ins = {origin: sign_in_afresh(proxy.url, browser_headers(origin))
                                for origin in FOREIGN}
            spoofed_sign_in = sign_in_afresh(proxy.url, browser_headers("https://evil.example", **SPOOFED))
            cross_site = sign_in_afresh(proxy.url, {"Origin": PUBLIC, "Sec-Fetch-Site": "cross-site"})
            signed_in = sign_in(c, browser_headers(PUBLIC))
            direct = sign_in_afresh(svc.url, browser_headers(svc.url))  # the Host-derived origin still counts
            runs = c.get("/ui/runs")
            token = csrf_of(c.get(f"/ui/runs/{quote(run_id, safe='')}"))
            foreign_cancels = {origin: outcome(c.post(cancel_path(run_id), data={"csrf_token": token},
                                                      headers=browser_headers(origin)))
                               for origin in FOREIGN}
            spoofed_cancel = c.post(cancel_path(run_id), data={"csrf_token": token},
                                    headers=browser_headers("https://evil.example", **SPOOFED))
            still = svc.get_run(run_id, AUTH)["status"]
            # A browser that sends only Referer (no Origin) from a dashboard page is accepted too.
            cancelled = c.post(cancel_path(run_id), data={"csrf_token": token},
                               headers={"Referer": f"{PUBLIC}/ui/runs/{quote(run_id, safe='')}",
                                        "Sec-Fetch-Site": "same-origin"})
            after = svc.wait(run_id, headers=AUTH)
        assert foreign_sign_ins == dict.fromkeys(FOREIGN, "403 origin")
        assert spoofed_sign_in == "403 origin" and cross_site == "403 origin"
        assert signed_in.status_code == 303 and signed_in.headers["location"] == "/ui/runs"
        assert "secure" in signed_in.headers["set-cookie"].lower()  # PUBLIC_BASE_URL is https
        assert direct == "303"
        assert runs.status_code == 200
        assert foreign_cancels == dict.fromkeys(FOREIGN, "403 origin")
        assert spoofed_cancel.status_code == 403 and "origin" in spoofed_cancel.text
        assert still == "running"  # no refused request cancelled it
        assert cancelled.status_code == 303 and after["status"] == "cancelled"
        # The service saw only the upstream's name, never the public host.
        assert proxy.hosts_seen() and set(proxy.hosts_seen()) == {UPSTREAM_HOST}


class TestWithoutPublicBaseUrl:
    def test_a_rewritten_host_is_refused_as_before(self, tmp_path: Path) -> None:
        with behind_proxy(tmp_path) as (svc, proxy), httpx.Client(base_url=svc.url, timeout=10) as direct, \
                httpx.Client(base_url=proxy.url, timeout=10) as proxied:
            run_id = svc.deliver("PROJ-2")
            assert svc.claude.entered.wait(30)
            refused_sign_ins = {origin: sign_in_afresh(proxy.url, browser_headers(origin))
                                for origin in (PUBLIC, *FOREIGN)}
            spoofed = {**SPOOFED, "X-Forwarded-Host": "auto-code.example.com"}  # names the public host
            spoofed_sign_in = sign_in(proxied, browser_headers(PUBLIC, **spoofed))
            # Signed in directly (Host is 127.0.0.1:<port>, as the Origin): the session and its token
            # are good, so only the origin decides the proxied cancels below.
            assert sign_in(direct, browser_headers(svc.url)).status_code == 303
            token = csrf_of(direct.get(f"/ui/runs/{quote(run_id, safe='')}"))
            proxied_cancel = f"{proxy.url}{cancel_path(run_id)}"
            refused_cancels = {origin: outcome(direct.post(proxied_cancel, data={"csrf_token": token},
                                                           headers=browser_headers(origin)))
                               for origin in (PUBLIC, *FOREIGN)}
            still = svc.get_run(run_id, AUTH)["status"]
            cancelled_directly = direct.post(cancel_path(run_id), data={"csrf_token": token},
                                             headers=browser_headers(svc.url))
            after = svc.wait(run_id, headers=AUTH)
        assert refused_sign_ins == dict.fromkeys((PUBLIC, *FOREIGN), "403 origin")
        assert spoofed_sign_in.status_code == 403 and "origin" in spoofed_sign_in.text
        assert refused_cancels == dict.fromkeys((PUBLIC, *FOREIGN), "403 origin")
        assert still == "running"
        assert cancelled_directly.status_code == 303 and after["status"] == "cancelled"
        assert UPSTREAM_HOST in proxy.hosts_seen()
