"""One-line providers over `app.state` (filled by the lifespan) and their `Annotated` aliases.

Routes declare `runner: RunnerDep` and tests swap a provider with `app.dependency_overrides`.
"""

from __future__ import annotations

import hmac
from typing import Annotated

from fastapi import Depends, Request

from app.config import Settings
from app.errors import Unauthorized
from app.services.runner.engine import RunEngine
from app.services.runner.store_base import RunStore


# Starlette's `app.state` is an untyped attribute bag; the lifespan puts exactly these types there,
# and each provider's annotated local is where that is stated.
def get_settings(request: Request) -> Settings:
    settings: Settings = request.app.state.settings
    return settings


def get_runner(request: Request) -> RunEngine:
    runner: RunEngine = request.app.state.runner
    return runner


def get_store(request: Request) -> RunStore:
    store: RunStore = request.app.state.store
    return store


SettingsDep = Annotated[Settings, Depends(get_settings)]
RunnerDep = Annotated[RunEngine, Depends(get_runner)]
StoreDep = Annotated[RunStore, Depends(get_store)]


def require_operator(request: Request, settings: SettingsDep) -> None:
    """`Authorization: Bearer <OPERATOR_TOKEN>` whenever OPERATOR_TOKEN is set (always in
    production: config refuses to start without it). Constant-time comparison; never a query
    parameter. The dashboard page itself carries no data: it calls the API with the token."""
    expected = settings.operator_token
    if expected is None:
        return
    header = request.headers.get("authorization", "")
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not hmac.compare_digest(
        token.strip().encode(), expected.get_secret_value().encode()
    ):
        raise Unauthorized("missing or wrong operator token (Authorization: Bearer <OPERATOR_TOKEN>)")


OperatorDep = Depends(require_operator)
