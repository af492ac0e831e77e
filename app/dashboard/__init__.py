"""The dashboard at `/ui`: server-rendered pages (Jinja2, autoescaped), one small script of our
own (no build step, no third party), a signed session cookie after one sign-in with the operator
token, CSRF on every POST, and a strict Content-Security-Policy on every answer.

`router` holds every route; `app.routes.ui` is what the app includes.
"""

from __future__ import annotations

from fastapi import APIRouter

from app.dashboard import auth_routes, pages

router = APIRouter()
router.include_router(auth_routes.router)
router.include_router(pages.router)

__all__ = ["router"]
