"""The app: `create_app(settings, collaborators)`, its lifespan and the error handlers.

Dependency chain: Settings (+ supplied Collaborators) → the lifespan calls the composition root
(app/composition.py) once → `app.state.services` → `app/api/dependencies.py` → routes. Nothing is
built at import time; `app.main:app` (for
`uvicorn app.main:app --reload`) is created on first access from the environment.
"""

from __future__ import annotations

import logging
import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from app.composition import Collaborators, Services, close_services, open_services
from app.config import Settings
from app.errors import AutoCodeError
from app.followups.wiring import start_polling
from app.logger import configure_logging
from app.proc import is_secret_env_name
from app.routes import github as github_routes
from app.routes import health, runs, ui
from app.routes import jira as jira_routes
from app.routes import pull_requests as pull_request_routes
from app.services.metrics import ServiceMetrics
from app.startup import check_workspace

log = logging.getLogger(__name__)

def scrub_secret_env() -> None:
    """Remove the secrets Settings has read from the process environment (the same names
    `app.proc` never passes on), so no subprocess - git, checks, the Claude CLI - can inherit them
    by accident. They reach a subprocess only when handed over explicitly (the token to git's
    credential helper, the API key to the CLI)."""
    for name in [n for n in os.environ if is_secret_env_name(n)]:
        os.environ.pop(name, None)


@asynccontextmanager
async def lifespan(app: FastAPI) -> AsyncIterator[None]:
    # Every way of serving (`auto-code serve`, `uvicorn app.main:app --reload`, tests) is made
    # non-dumpable before the engine can start the agent (app/hardening.py); idempotent.
    from app.hardening import harden_process

    log.info("process_hardened", extra={"measures": harden_process()})
    settings: Settings = app.state.settings
    check_workspace(settings.workspace_dir)  # ConfigError naming the uid, not a database error
    if settings.scrub_env:
        scrub_secret_env()
    services = await open_services(settings, app.state.collaborators,
                                   sandbox_proven=app.state.sandbox_proven, metrics=app.state.metrics)
    app.state.services = services  # the one write after create_app: start-up, before serving
    if not settings.webhook_auth_configured:
        log.warning("webhook_auth_disabled: no WEBHOOK_SECRET or JIRA_WEBHOOK_SECRET (development only)")
    log.info("service_started", extra={"workspace": str(settings.workspace_dir),
                                       "claude": "sdk" if settings.uses_real_claude else "mock",
                                       "github": "api" if settings.uses_github_api else "local"})
    stop_polling = start_polling(app)  # the GitHub polling fallback (GITHUB_POLL_INTERVAL_SEC > 0)
    try:
        yield
    finally:
        await stop_polling()
        await close_services(services)
        app.state.parse_pool.close()
        log.info("service_stopped")


def create_app(settings: Settings | None = None, collaborators: Collaborators | None = None, *,
               sandbox_proven: bool = False) -> FastAPI:
    """Build the app (nothing starts until its lifespan). `collaborators`: what the demo or a test
    supplies instead of what settings would build; `sandbox_proven`: the caller already ran the
    sandbox self-check (`auto-code serve`). Raises ConfigError (naming every problem) for a bad
    production config."""
    settings = settings or Settings()
    configure_logging(settings.log_level)
    settings.check_production()
    app = FastAPI(title="auto-code", version="0.1.0", lifespan=lifespan,
                  docs_url=None if settings.is_production else "/docs", redoc_url=None)
    app.state.settings = settings
    app.state.collaborators = collaborators or Collaborators()
    app.state.sandbox_proven = sandbox_proven
    app.state.metrics = ServiceMetrics()  # per app: its own registry (app/services/metrics/)
    _install_error_handlers(app)
    jira_routes.install(app, settings)
    app.include_router(health.router)
    app.include_router(runs.router)
    app.include_router(ui.router)
    app.include_router(github_routes.router)  # POST /webhook/github (app/followups/)
    app.include_router(pull_request_routes.router)  # GET /pull-requests: the PRs' outcomes
    return app


def services_of(app: FastAPI) -> Services:
    """What the running app's lifespan built (for the CLI and tests; routes use dependencies)."""
    services: Services = app.state.services
    return services


def _error(status: int, code: str, detail: Any) -> JSONResponse:
    return JSONResponse({"error": code, "detail": detail}, status_code=status)


def _install_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(AutoCodeError)
    async def _auto_code_error(_: Request, exc: AutoCodeError) -> JSONResponse:
        if exc.status_code >= 500:
            log.error("request_failed", extra={"error": exc.code, "detail": exc.detail})
        return _error(exc.status_code, exc.code, exc.detail)

    @app.exception_handler(RequestValidationError)
    async def _validation_error(_: Request, exc: RequestValidationError) -> JSONResponse:
        problems = [
            f"{'.'.join(str(p) for p in e.get('loc', ()))}: {e.get('msg')}" for e in exc.errors()
        ]
        return _error(422, "validation_error", "; ".join(problems))

    @app.exception_handler(StarletteHTTPException)
    async def _http_error(_: Request, exc: StarletteHTTPException) -> JSONResponse:
        return _error(exc.status_code, "http_error", exc.detail)

    @app.exception_handler(Exception)
    async def _unexpected(_: Request, exc: Exception) -> JSONResponse:
        log.exception("unhandled_error")
        return _error(500, "internal_error", "unexpected error; see the service log")


def __getattr__(name: str) -> Any:
    # `uvicorn app.main:app` support without building anything at import time.
    if name == "app":
        application = create_app()
        globals()["app"] = application
        return application
    raise AttributeError(name)
