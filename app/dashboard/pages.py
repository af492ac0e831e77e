"""The dashboard's pages: the runs list, one run (with its live part and its event stream), the
spend page, and the cancel / retry buttons. Every route needs a signed-in session cookie; every
POST also the session's CSRF token and a same-origin request (`check_csrf`)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Annotated, Any, get_args
from urllib.parse import quote

from fastapi import APIRouter, Depends, Query, Request, Response
from fastapi.responses import RedirectResponse
from fastapi.sse import EventSourceResponse, ServerSentEvent

from app.api.dependencies import RunnerDep, ServicesDep, SettingsDep, StoreDep
from app.dashboard.render import render
from app.dashboard.security import (
    DashboardError,
    DashboardRoute,
    SessionDep,
    SignerDep,
    check_csrf,
    read_form,
)
from app.dashboard.spend import from_ledger, from_runs
from app.dashboard.views import implemented, run_row, ticket_summary, timeline
from app.models import FINAL_STATUSES, RunKind, RunStatus
from app.routes.runs import run_events
from app.services.runner.operations import cancel_run

router = APIRouter(prefix="/ui", route_class=DashboardRoute, include_in_schema=False)

STATUSES: tuple[str, ...] = get_args(RunStatus)
KINDS: tuple[str, ...] = get_args(RunKind)
PAGE_ROWS = 100
# The store filters by ticket, status and repository; kind is filtered here, over this many of the
# newest matching runs.
FILTER_WINDOW = 1000
SPEND_WINDOW = 10_000  # without a spend ledger, the page sums over at most this many newest runs
LOG_LINES = 500


def _run_url(run_id: str) -> str:
    return f"/ui/runs/{quote(run_id, safe='')}"


def _choice(value: str, allowed: tuple[str, ...], name: str) -> str | None:
    if not value:
        return None
    if value not in allowed:
        raise DashboardError(400, "Bad filter", f"{name} must be one of {', '.join(allowed)}")
    return value


@router.get("/runs")
async def runs_page(
    request: Request, session: SessionDep, signer: SignerDep, store: StoreDep, settings: SettingsDep,
    status: Annotated[str, Query(max_length=20)] = "",
    ticket: Annotated[str, Query(max_length=100)] = "",
    kind: Annotated[str, Query(max_length=20)] = "",
    repository: Annotated[str, Query(max_length=200)] = "",
) -> Response:
    chosen_status: Any = _choice(status, STATUSES, "status")
    chosen_kind = _choice(kind, KINDS, "kind")
    ticket = ticket.strip()
    runs = await store.list_runs(ticket=ticket or None, status=chosen_status, repository=repository or None,
                                 limit=FILTER_WINDOW if chosen_kind else PAGE_ROWS)
    # The choices: the repositories of the runs shown (the select appears once there are several).
    repositories = sorted({r.repository for r in runs if r.repository} | {repository} - {""})
    if chosen_kind:
        runs = [r for r in runs if r.kind == chosen_kind]
    rows = [run_row(r, settings.jira_base_url) for r in runs[:PAGE_ROWS]]
    filters = {"status": status, "ticket": ticket, "kind": kind, "repository": repository}
    return render(request, "runs.html", {
        "rows": rows, "filters": filters, "statuses": STATUSES, "kinds": KINDS,
        "repositories": repositories if len(repositories) > 1 or repository else [],
        "csrf": signer.csrf_token(session),
    })


async def _run_context(run_id: str, store: StoreDep, settings: SettingsDep) -> dict[str, Any]:
    detail = await store.get_run_detail(run_id)  # the view and the ticket copy: one read of the record
    if detail is None:
        raise DashboardError(404, "No such run", f"there is no run {run_id}")
    run = detail.view
    same_ticket = [r for r in await store.list_runs(ticket=run.ticket, limit=200) if r.run_id != run_id]
    parent = await store.get_run(run.parent_run_id) if run.parent_run_id else None
    return {
        "row": run_row(run, settings.jira_base_url),
        "summary": ticket_summary(detail.ticket_json),
        "steps": timeline(run),
        "implemented": implemented(run),
        "parent": run_row(parent, settings.jira_base_url) if parent else None,
        "followups": [run_row(r, settings.jira_base_url) for r in same_ticket if r.parent_run_id == run_id],
        "others": [run_row(r, settings.jira_base_url) for r in same_ticket if r.parent_run_id != run_id],
        "run_url": _run_url(run_id),
        "final": run.status in FINAL_STATUSES,
    }


@router.get("/runs/{run_id}")
async def run_page(request: Request, run_id: str, session: SessionDep, signer: SignerDep, store: StoreDep,
                   settings: SettingsDep) -> Response:
    context = await _run_context(run_id, store, settings)
    logs = await store.logs_after(run_id, 0, limit=LOG_LINES)
    return render(request, "run.html", {**context, "logs": logs, "csrf": signer.csrf_token(session)})


@router.get("/runs/{run_id}/live")
async def run_live(request: Request, run_id: str, session: SessionDep, signer: SignerDep, store: StoreDep,
                   settings: SettingsDep) -> Response:
    """The part of the run page that changes (header, buttons, timeline, gates, diff), for the
    page's script to swap in when the event stream says something changed."""
    context = await _run_context(run_id, store, settings)
    return render(request, "run_live.html", {**context, "csrf": signer.csrf_token(session)})


async def _existing(run_id: str, session: SessionDep, store: StoreDep) -> str:
    if await store.get_run_row(run_id) is None:
        raise DashboardError(404, "No such run", f"there is no run {run_id}")
    return run_id


@router.get("/runs/{run_id}/events", response_class=EventSourceResponse)
async def run_page_events(run_id: Annotated[str, Depends(_existing)], store: StoreDep,
                          settings: SettingsDep) -> AsyncIterator[ServerSentEvent]:
    """The runs API's event stream (`GET /runs/{id}/events`), authorised by the session cookie."""
    async for event in run_events(run_id, store, settings):
        yield event


@router.post("/runs/{run_id}/cancel")
async def cancel(request: Request, run_id: str, session: SessionDep, signer: SignerDep,
                 runner: RunnerDep) -> Response:
    check_csrf(request, session, signer, await read_form(request))
    await cancel_run(runner, run_id)
    return RedirectResponse(_run_url(run_id), status_code=303)


@router.post("/runs/{run_id}/retry")
async def retry(request: Request, run_id: str, session: SessionDep, signer: SignerDep,
                runner: RunnerDep) -> Response:
    check_csrf(request, session, signer, await read_form(request))
    result = await runner.retry(run_id)
    return RedirectResponse(_run_url(result.run_id), status_code=303)


@router.get("/spend")
async def spend_page(request: Request, session: SessionDep, signer: SignerDep,
                     services: ServicesDep) -> Response:
    # The spend ledger when the service has one (app/services/spend/, set on the pipeline's deps).
    ledger = getattr(getattr(services.deps, "spend", None), "ledger", None)
    if ledger is not None:
        report = await from_ledger(ledger)
    else:
        report = from_runs(await services.store.list_runs(limit=SPEND_WINDOW))
    return render(request, "spend.html", {"report": report, "window": SPEND_WINDOW,
                                          "csrf": signer.csrf_token(session)})


__all__ = ["router"]
