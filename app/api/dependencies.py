"""One-line providers over the `Services` the lifespan built (app/composition.py) and their
`Annotated` aliases. Routes declare `runner: RunnerDep`; nothing else reads `app.state`'s services.
"""

from __future__ import annotations

import hmac
from typing import Annotated

from fastapi import Depends, Request

from app.composition import Services
from app.config import Settings
from app.errors import Unauthorized
from app.services.runner.engine import RunEngine
from app.services.runner.store_base import RunStore


# Starlette's `app.state` is an untyped attribute bag: create_app puts the Settings there and the
# lifespan the Services; these annotated locals are where their types are stated.
def _services(request: Request) -> Services:
    services: Services = request.app.state.services
    return services


# The providers are `async def` although they never wait: FastAPI runs a plain `def` dependency in
# its thread pool, a thread hop per provider per request (on intake's hot path, measured: about a
# fifth of a webhook's CPU on a loaded 2-core machine).
async def get_settings(request: Request) -> Settings:
    settings: Settings = request.app.state.settings
    return settings


async def get_services(request: Request) -> Services:
    return _services(request)


async def get_runner(request: Request) -> RunEngine:
    return _services(request).runner


async def get_store(request: Request) -> RunStore:
    return _services(request).store


async def get_jira_account_id(request: Request) -> str | None:
    """The service's own Jira account (its own events are not new work), if known."""
    return _services(request).jira_account_id


SettingsDep = Annotated[Settings, Depends(get_settings)]
ServicesDep = Annotated[Services, Depends(get_services)]
JiraAccountDep = Annotated[str | None, Depends(get_jira_account_id)]
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
