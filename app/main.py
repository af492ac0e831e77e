"""Wiring only: `create_app(settings)` and the lifespan that builds the singletons.

Dependency chain (DESIGN.md): Settings → factories → lifespan puts singletons on `app.state` →
`app/api/dependencies.py` → routes. Nothing is built at import time; `app.main:app` (for
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

from app.config import Settings
from app.errors import AutoCodeError
from app.logger import configure_logging
from app.proc import is_secret_env_name
from app.routes import health, runs, ui
from app.routes import jira as jira_routes
from app.services.checks.factory import get_checks
from app.services.claude_code.factory import get_claude_code
from app.services.github.factory import get_pull_requests
from app.services.jira.factory import get_jira_reporter
from app.services.langfuse.factory import get_tracer
from app.services.outbound_scan import SecretScanner
from app.services.runner.deps import PipelineDeps
from app.services.runner.engine import RunEngine
from app.services.runner.store import SqlRunStore, make_engine
from app.services.runner.store_async import AsyncRunStore
from app.services.sandbox import get_sandbox
from app.services.sandbox.probe import self_check
from app.services.workspace.factory import get_workspace
from app.startup import check_workspace

log = logging.getLogger(__name__)

def scrub_secret_env() -> None:
    """Remove the secrets Settings has read from the process environment (the same names
    `app.proc` never passes on), so no subprocess - git, checks, the Claude CLI - can inherit them
    by accident. They reach a subprocess only when handed over explicitly (the token to git's
    credential helper, the API key to the CLI)."""
    for name in [n for n in os.environ if is_secret_env_name(n)]:
        os.environ.pop(name, None)


def build_deps(settings: Settings, store: AsyncRunStore) -> PipelineDeps:
    tracer = get_tracer(settings)
    # One scanner for the outbound check and the store: no secret value leaves or is stored.
    scanner = SecretScanner.from_settings(settings)
    store.sync.redact = scanner.redact
    return PipelineDeps(
        settings=settings,
        store=store,
        workspace=get_workspace(settings),
        checks=get_checks(settings),
        claude=get_claude_code(settings, tracer),
        pull_requests=get_pull_requests(settings),
        tracer=tracer,
        # Reporting back is a step only when Jira credentials are configured.
        jira=get_jira_reporter(settings) if settings.jira_reporting_enabled else None,
        scanner=scanner,
    )


async def _prove_sandbox(settings: Settings) -> None:
    """In production (or with SANDBOX_SELF_CHECK) refuse to start unless a real sandboxed probe
    fails to read the workspace and the database, to reach the network and to leave a daemon."""
    sandbox = get_sandbox(settings)  # raises SandboxError when bubblewrap is missing
    if sandbox.name == "none":
        log.warning("sandbox_disabled: SANDBOX=none - the agent and the checks run WITHOUT isolation "
                    "(development only)")
        return
    if settings.is_production or settings.sandbox_self_check:
        await self_check(sandbox, settings)


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
    # The run tables are migrated by engine.start(), under the schema lock, with DBOS's launch.
    sync_store = SqlRunStore(make_engine(settings.system_database_url))
    store = AsyncRunStore(sync_store)
    deps = build_deps(settings, store)
    if not getattr(app.state, "sandbox_proven", False):  # `auto-code serve` proved it before uvicorn
        await _prove_sandbox(settings)
    engine = RunEngine(settings, deps)
    await engine.start()
    app.state.store = store
    app.state.runner = engine
    app.state.deps = deps
    app.state.jira_account_id = settings.jira_account_id
    if app.state.jira_account_id is None and deps.jira is not None:
        try:
            app.state.jira_account_id = await deps.jira.myself()
        except AutoCodeError as exc:  # reporting still works; only self-event filtering is weaker
            log.warning("jira_myself_failed", extra={"detail": exc.detail})
    if not settings.webhook_auth_configured:
        log.warning("webhook_auth_disabled: no WEBHOOK_SECRET or JIRA_WEBHOOK_SECRET (development only)")
    log.info("service_started", extra={"workspace": str(settings.workspace_dir),
                                       "claude": "sdk" if settings.uses_real_claude else "mock",
                                       "github": "api" if settings.uses_github_api else "local"})
    try:
        yield
    finally:
        engine.stop()
        for closer in (deps.claude.aclose, deps.pull_requests.aclose, deps.checks.aclose):
            try:
                await closer()
            except Exception:  # shutdown must go on
                log.exception("close_failed")
        if deps.jira is not None:
            await deps.jira.aclose()
        app.state.parse_pool.close()
        deps.tracer.shutdown()
        sync_store.dispose()
        log.info("service_stopped")


def create_app(settings: Settings | None = None) -> FastAPI:
    """Build the app. Raises ConfigError (naming every problem) for a bad production config."""
    settings = settings or Settings()
    configure_logging(settings.log_level)
    settings.check_production()
    app = FastAPI(title="auto-code", version="0.1.0", lifespan=lifespan,
                  docs_url=None if settings.is_production else "/docs", redoc_url=None)
    app.state.settings = settings
    _install_error_handlers(app)
    jira_routes.install(app, settings)
    app.include_router(health.router)
    app.include_router(runs.router)
    app.include_router(ui.router)
    return app


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
