"""Sign-in, sign-out and the dashboard's static files.

Sign-in takes the operator token once (constant-time comparison) and answers with the session
cookie; the token itself is never stored in the browser. The form is CSRF-protected too, through
the anonymous session the sign-in page hands out (login CSRF: another site cannot sign a browser
in to this dashboard).
"""

from __future__ import annotations

import hmac
from functools import cache
from pathlib import Path

from fastapi import APIRouter, Request, Response
from fastapi.responses import RedirectResponse

from app.api.dependencies import SettingsDep
from app.dashboard.render import render
from app.dashboard.security import (
    HOME,
    DashboardError,
    DashboardRoute,
    SignerDep,
    check_csrf,
    clear_session_cookie,
    current_session,
    read_form,
    safe_next,
    set_session_cookie,
)
from app.dashboard.throttle import throttle

router = APIRouter(prefix="/ui", route_class=DashboardRoute, include_in_schema=False)

STATIC = Path(__file__).parent / "static"
_STATIC_TYPES = {"dashboard.js": "text/javascript; charset=utf-8", "dashboard.css": "text/css; charset=utf-8"}


@cache
def _static_file(name: str) -> bytes:
    return (STATIC / name).read_bytes()


@router.get("/static/{name}")
async def static(name: str) -> Response:
    """The two files of the dashboard, by an allowlist (no path ever reaches the filesystem)."""
    if name not in _STATIC_TYPES:
        raise DashboardError(404, "Not found", "no such file")
    response = Response(_static_file(name), media_type=_STATIC_TYPES[name])
    response.headers["Cache-Control"] = "no-cache"
    return response


@router.get("")
async def home() -> Response:
    return RedirectResponse(HOME, status_code=303)


@router.get("/login")
async def login_page(request: Request, settings: SettingsDep, signer: SignerDep,
                     next: str | None = None) -> Response:
    target = safe_next(next)
    session = current_session(request, signer)
    if session is not None and session.auth:
        return RedirectResponse(target, status_code=303)
    if settings.operator_token is None:
        # Development without OPERATOR_TOKEN: the API is open, so is the dashboard.
        _, cookie = signer.issue(auth=True)
        response: Response = RedirectResponse(target, status_code=303)
        set_session_cookie(request, response, cookie, signer.ttl_sec, settings)
        return response
    fresh: str | None = None
    if session is None:
        session, fresh = signer.issue(auth=False)
    response = render(request, "login.html", {"next": target, "form_csrf": signer.csrf_token(session),
                                              "problem": None})
    if fresh is not None:
        set_session_cookie(request, response, fresh, 3600, settings)
    return response


@router.post("/login")
async def login(request: Request, settings: SettingsDep, signer: SignerDep) -> Response:
    form = await read_form(request)
    session = current_session(request, signer)
    if session is None:
        raise DashboardError(403, "Refused", "the sign-in form has expired: reload the page and try again")
    check_csrf(request, session, signer, form)
    target = safe_next(form.get("next"))
    expected = settings.operator_token
    token = form.get("token", "").strip()
    limit = throttle(request)
    if not limit.allowed(request):
        raise DashboardError(429, "Too many attempts", "too many failed sign-ins: wait a minute, then retry")
    if expected is not None and not hmac.compare_digest(token.encode(), expected.get_secret_value().encode()):
        limit.failed(request)
        return render(request, "login.html", {"next": target, "form_csrf": signer.csrf_token(session),
                                              "problem": "That is not the operator token."}, status=401)
    _, cookie = signer.issue(auth=True)  # a new session id: the anonymous one is not promoted
    response = RedirectResponse(target, status_code=303)
    set_session_cookie(request, response, cookie, signer.ttl_sec, settings)
    return response


@router.post("/logout")
async def logout(request: Request, signer: SignerDep) -> Response:
    form = await read_form(request)
    session = current_session(request, signer)
    if session is None:
        return RedirectResponse("/ui/login", status_code=303)
    check_csrf(request, session, signer, form)
    response = RedirectResponse("/ui/login", status_code=303)
    clear_session_cookie(response)
    return response


__all__ = ["router"]
