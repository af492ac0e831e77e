"""What every dashboard response and request goes through: security headers, HTML error pages,
the session check, the CSRF + Origin check of state-changing requests, and the form reader.

`DashboardRoute` is the router's route class: it wraps each handler so every answer (pages,
fragments, SSE, static files, errors) carries the strict Content-Security-Policy, and so errors
render as an HTML page (or a redirect to sign-in) instead of the API's JSON.
"""

from __future__ import annotations

import hmac
import logging
from collections.abc import Callable, Coroutine
from typing import Annotated, Any
from urllib.parse import parse_qs, urlencode, urlsplit

from fastapi import Depends, Request, Response
from fastapi.exceptions import RequestValidationError
from fastapi.responses import RedirectResponse
from fastapi.routing import APIRoute

from app.config import Settings
from app.config_checks import web_origin
from app.dashboard.render import render
from app.dashboard.session import COOKIE_NAME, COOKIE_PATH, Session, SessionSigner
from app.errors import AutoCodeError

log = logging.getLogger(__name__)

# No inline script or style anywhere, no third party; the page may only talk to its own origin.
CSP = ("default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; "
       "connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'")
SECURITY_HEADERS = {
    "Content-Security-Policy": CSP,
    "X-Frame-Options": "DENY",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",
    "Cross-Origin-Opener-Policy": "same-origin",
}
MAX_FORM_BYTES = 8192
HOME = "/ui/runs"


class DashboardError(Exception):
    """An answer of the dashboard that is not the page asked for (rendered as the error page)."""

    def __init__(self, status: int, title: str, detail: str) -> None:
        super().__init__(detail)
        self.status, self.title, self.detail = status, title, detail


class SignInRequired(Exception):
    """No valid signed-in session: pages redirect to the sign-in page, fetches get 401."""


def _error_page(request: Request, status: int, title: str, detail: str) -> Response:
    return render(request, "error.html", {"title": title, "detail": detail}, status=status)


class DashboardRoute(APIRoute):
    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()

        async def secured(request: Request) -> Response:
            try:
                response = await handler(request)
            except SignInRequired:
                navigation = request.headers.get("sec-fetch-dest", "document") == "document"
                if request.method == "GET" and navigation:
                    target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
                    response = RedirectResponse("/ui/login?" + urlencode({"next": target}), status_code=303)
                else:
                    response = _error_page(request, 401, "Sign in required", "Your session has ended.")
            except DashboardError as exc:
                response = _error_page(request, exc.status, exc.title, exc.detail)
            except RequestValidationError as exc:
                problems = "; ".join(f"{'.'.join(str(p) for p in e.get('loc', ()))}: {e.get('msg')}"
                                     for e in exc.errors())
                response = _error_page(request, 400, "Bad request", problems)
            except AutoCodeError as exc:  # from the runner (no such run, run already ended...)
                if exc.status_code >= 500:
                    raise
                response = _error_page(request, exc.status_code, exc.code.replace("_", " "), exc.detail)
            response.headers.update(SECURITY_HEADERS)
            response.headers.setdefault("Cache-Control", "no-store")
            return response

        return secured


def signer(request: Request) -> SessionSigner:
    """One signer per app (its random development key must outlive a request)."""
    state = request.app.state
    found: SessionSigner | None = getattr(state, "dashboard_signer", None)
    if found is None:
        settings: Settings = state.settings
        token = settings.operator_token.get_secret_value() if settings.operator_token else None
        found = SessionSigner.from_operator_token(token, settings.dashboard_session_hours)
        state.dashboard_signer = found
    return found


SignerDep = Annotated[SessionSigner, Depends(signer)]


def current_session(request: Request, signer: SignerDep) -> Session | None:
    return signer.read(request.cookies.get(COOKIE_NAME))


def signed_in(request: Request, signer: SignerDep) -> Session:
    session = current_session(request, signer)
    if session is None or not session.auth:
        raise SignInRequired
    return session


SessionDep = Annotated[Session, Depends(signed_in)]


def set_session_cookie(request: Request, response: Response, value: str, max_age: float,
                       settings: Settings) -> None:
    """HttpOnly (no script reads it), SameSite=Strict (no other site's page sends it), Path=/ui,
    and Secure over https - and always in production, which is served behind an https tunnel, and
    whenever PUBLIC_BASE_URL is https (a proxy in front ends TLS: the service itself sees http)."""
    public = settings.public_origin
    secure = request.url.scheme == "https" or settings.is_production or bool(
        public and public.startswith("https://"))
    response.set_cookie(COOKIE_NAME, value, max_age=int(max_age), path=COOKIE_PATH, httponly=True,
                        samesite="strict", secure=secure)


def clear_session_cookie(response: Response) -> None:
    response.delete_cookie(COOKIE_NAME, path=COOKIE_PATH, httponly=True, samesite="strict")


def same_origin(request: Request) -> bool:
    """The request comes from a page of this origin: Sec-Fetch-Site says so when the browser sends
    it, and Origin (else Referer) names this host - the `Host` header, or, behind a proxy that
    rewrites Host (nginx's default `Host $proxy_host`), exactly the origin of PUBLIC_BASE_URL
    (scheme, host, port). No X-Forwarded-* header counts: a client sets those as it likes. A request
    with neither Origin nor Referer is refused."""
    site = request.headers.get("sec-fetch-site")
    if site is not None and site != "same-origin":
        return False
    source = request.headers.get("origin") or request.headers.get("referer")
    if not source or source == "null":
        return False
    try:
        netloc = urlsplit(source).netloc
    except ValueError:
        return False
    host = request.headers.get("host", "")
    if host and hmac.compare_digest(netloc.lower().encode(), host.lower().encode()):
        return True
    settings: Settings = request.app.state.settings
    public, origin = settings.public_origin, web_origin(source)
    return public is not None and origin is not None and hmac.compare_digest(origin.encode(), public.encode())


async def read_form(request: Request) -> dict[str, str]:
    """An urlencoded form of at most MAX_FORM_BYTES, first value of each field."""
    ctype = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if ctype != "application/x-www-form-urlencoded":
        raise DashboardError(415, "Unsupported form", "expected an urlencoded form")
    body = b""
    async for chunk in request.stream():
        body += chunk
        if len(body) > MAX_FORM_BYTES:
            raise DashboardError(413, "Form too large", f"at most {MAX_FORM_BYTES} bytes")
    try:
        fields = parse_qs(body.decode("utf-8"), keep_blank_values=True, max_num_fields=20)
    except (UnicodeDecodeError, ValueError) as exc:
        raise DashboardError(400, "Bad form", str(exc)) from None
    return {name: values[0] for name, values in fields.items()}


def check_csrf(request: Request, session: Session, signer: SessionSigner, form: dict[str, str]) -> None:
    """Every state-changing request: same origin AND the session's CSRF token (form field
    `csrf_token` or header `X-CSRF-Token`). Refused with 403 otherwise."""
    token = form.get("csrf_token") or request.headers.get("x-csrf-token")
    if not same_origin(request):
        log.warning("dashboard_csrf_refused", extra={"reason": "origin", "path": request.url.path})
        raise DashboardError(403, "Refused", "this request did not come from the dashboard (origin)")
    if not signer.csrf_ok(session, token):
        log.warning("dashboard_csrf_refused", extra={"reason": "token", "path": request.url.path})
        raise DashboardError(403, "Refused", "missing or wrong CSRF token: reload the page and try again")


def safe_next(value: str | None) -> str:
    """A sign-in's `next`: a dashboard path of this site only (never another host)."""
    if (value and value.startswith("/ui") and not value.startswith("//") and "\\" not in value
            and all(c.isprintable() and c not in " \t" for c in value)):
        if value == "/ui" or value.startswith(("/ui/", "/ui?")):
            return value
    return HOME


__all__ = ["CSP", "SECURITY_HEADERS", "DashboardError", "DashboardRoute", "SessionDep", "SignInRequired",
           "SignerDep", "check_csrf", "clear_session_cookie", "current_session", "read_form", "safe_next",
           "set_session_cookie", "signer"]
