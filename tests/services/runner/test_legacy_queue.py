"""An upgrade with runs still on the queue of the version before: the unpartitioned queue `tickets`
whose workflows carry only the ticket (no options, no partition). They must still run to the end
(DBOS works every queue recorded in its database; `start` decides the run itself), and the old
queue is dropped only once nothing is left on it (engine._drop_legacy_queue).

The old version's handoff is written here the way it wrote it: DBOS's batch enqueue of
`run_ticket(ticket_data)` on `tickets`, under the run id, after intake's record."""

from __future__ import annotations

import asyncio
import time
import uuid
from pathlib import Path
from typing import Any

from dbos import DBOS
from dbos._core import prepare_enqueued_workflow
from dbos._dbos import _get_dbos_instance

from app.models import Ticket
from app.services.runner.engine import LEGACY_QUEUE_NAME, QUEUE_NAME, RunEngine
from app.services.runner.store_base import NewRun
from tests.services.runner.harness import Service, running_service, step


def old_handoff(svc: Service, ticket: Ticket, *, app_version: str | None = None,
                register: bool = True) -> str:
    """What the version before did for one accepted delivery: the record, then the workflow on
    `tickets` with the ticket as its only argument. `app_version`: written as another version's.
    `register=False`: an old host that registered the queue at its start, long before."""
    engine, run_id = engine_of(svc), f"{ticket.key}:{uuid.uuid4()}"

    async def write() -> None:
        if register:
            await DBOS.register_queue_async(LEGACY_QUEUE_NAME, worker_concurrency=1,
                                            polling_interval_sec=0.05)
        new = NewRun(run_id=run_id, ticket=ticket.key, ticket_json=ticket.model_dump_json(),
                     dedup_key=ticket.key)
        assert await engine.store.accept_run(new) == run_id
        await engine.store.mark_enqueued([run_id])  # handed off: the new dispatcher leaves it alone
        dbos = _get_dbos_instance()
        status = prepare_enqueued_workflow(dbos, engine.runner.run_ticket, (ticket.model_dump(mode="json"),),
                                           {}, queue_name=LEGACY_QUEUE_NAME, workflow_id=run_id)
        if app_version is not None:
            status["app_version"] = app_version
        await asyncio.to_thread(dbos._sys_db.init_workflows, [status])

    svc.client.portal.call(write)  # type: ignore[union-attr]  # on the service's own loop
    return run_id


def queue_names(svc: Service) -> set[str]:
    async def names() -> set[str]:
        return {q.name for q in await DBOS.list_queues_async()}

    return svc.client.portal.call(names)  # type: ignore[union-attr]


def workflow_ended(svc: Service, run_id: str, timeout: float = 30) -> None:
    """Until DBOS has the workflow ended too (its record is final a moment before it returns)."""
    async def status() -> str | None:
        found = await DBOS.get_workflow_status_async(run_id)
        return found.status if found is not None else None

    deadline = time.monotonic() + timeout
    while svc.client.portal.call(status) in ("ENQUEUED", "PENDING"):  # type: ignore[union-attr]
        assert time.monotonic() < deadline, f"workflow {run_id} still running"
        time.sleep(0.02)


def engine_of(svc: Service) -> RunEngine:
    engine: Any = svc.app.state.services.runner
    return engine  # type: ignore[no-any-return]


def test_a_run_left_on_the_old_queue_runs_to_the_end_and_the_empty_queue_is_dropped(tmp_path: Path) -> None:
    with running_service(tmp_path) as svc:
        run_id = old_handoff(svc, Ticket(key="PROJ-301", summary="Left by the old version"))
        run = svc.wait(run_id)
        assert run["status"] == "succeeded", run["error"]
        # `start` decided it (routed to the one repository of the settings) and said so.
        assert step(run, "prepare")["detail"]["configure"]["routed_by"] == "default"
        assert {QUEUE_NAME, LEGACY_QUEUE_NAME} <= queue_names(svc)
        workflow_ended(svc, run_id)
        svc.client.portal.call(engine_of(svc)._drop_legacy_queue)  # type: ignore[union-attr]  # next start's
        assert LEGACY_QUEUE_NAME not in queue_names(svc) and QUEUE_NAME in queue_names(svc)


def test_the_old_queue_is_kept_while_it_holds_a_run(tmp_path: Path) -> None:
    with running_service(tmp_path) as svc:
        # Another version's run: this worker never takes it, so it stays on the queue.
        run_id = old_handoff(svc, Ticket(key="PROJ-302", summary="Not ours to run"), app_version="0-old")
        svc.client.portal.call(engine_of(svc)._drop_legacy_queue)  # type: ignore[union-attr]
        assert LEGACY_QUEUE_NAME in queue_names(svc)
        assert svc.client.get(f"/runs/{run_id}").json()["status"] == "queued"


def test_a_run_an_old_host_hands_off_after_the_queue_was_dropped_still_runs(tmp_path: Path) -> None:
    # A rolling deploy: this host dropped the empty old queue at its start while a host of the
    # version before still serves; that host's next handoff lands on `tickets`, whose row is gone
    # (its queue thread exited with it). The next check (start, or a reconcile round) brings the
    # queue back so the run is taken; before, it stayed `queued` for good, its ticket's key held.
    with running_service(tmp_path) as svc:
        engine = engine_of(svc)
        svc.client.portal.call(engine._drop_legacy_queue)  # type: ignore[union-attr]
        assert LEGACY_QUEUE_NAME not in queue_names(svc)
        run_id = old_handoff(svc, Ticket(key="PROJ-303", summary="Handed off by an old host"), register=False)
        svc.client.portal.call(engine._drop_legacy_queue)  # type: ignore[union-attr]
        assert LEGACY_QUEUE_NAME in queue_names(svc)
        run = svc.wait(run_id, timeout=30)
        assert run["status"] == "succeeded", run["error"]
        workflow_ended(svc, run_id)
        svc.client.portal.call(engine._drop_legacy_queue)  # type: ignore[union-attr]  # empty again
        assert LEGACY_QUEUE_NAME not in queue_names(svc)


def test_the_reconcile_rounds_tend_the_old_queue(tmp_path: Path) -> None:
    with running_service(tmp_path, RECONCILE_INTERVAL_SEC="0.2") as svc:
        engine = engine_of(svc)
        svc.client.portal.call(engine._drop_legacy_queue)  # type: ignore[union-attr]
        run_id = old_handoff(svc, Ticket(key="PROJ-304", summary="Handed off by an old host"), register=False)
        run = svc.wait(run_id, timeout=30)
        assert run["status"] == "succeeded", run["error"]


def test_a_handoff_of_this_version_is_runnable_by_the_version_before(tmp_path: Path) -> None:
    # A rolling upgrade (APP_VERSION unchanged, deployment-plan §8) has old and new hosts on one
    # database: an old host works every queue recorded there, so it may dequeue a run this version
    # handed off and call its own `run_ticket(ticket_data)` with the workflow's inputs. Those must
    # be one positional argument that validates as the old Ticket (the options ride inside it):
    # with two arguments the old code raised TypeError and the ticket's run failed.
    with running_service(tmp_path) as svc:
        run_id = svc.deliver("PROJ-305", "Handed off by this version")["run_id"]
        run = svc.wait(run_id)

        async def inputs() -> Any:
            (wf,) = await DBOS.list_workflows_async(workflow_ids=[run_id], load_input=True)
            return wf.input

        given = svc.client.portal.call(inputs)  # type: ignore[union-attr]
    assert run["status"] == "succeeded", run["error"]
    assert given["kwargs"] == {} and len(given["args"]) == 1, given
    (ticket_data,) = given["args"]
    previous = Ticket.model_validate(ticket_data)  # what the version before does with it
    assert previous.key == "PROJ-305" and previous.summary == "Handed off by this version"


def test_an_unreadable_ticket_copy_ends_its_run_and_blocks_no_other(tmp_path: Path) -> None:
    # The dispatcher decides every record of a batch before the handoff; a record whose ticket copy
    # is not a ticket (written by hand, by a bug, by a redaction that ate its key) must end visibly
    # failed, not raise for the whole batch on every pass and keep the good records off the queue.
    with running_service(tmp_path, RECONCILE_INTERVAL_SEC="0.2") as svc:
        engine = engine_of(svc)
        bad = NewRun(run_id="PROJ-306:bad", ticket="PROJ-306", ticket_json='{"summary": "no key"}',
                     dedup_key="PROJ-306")
        good = NewRun(run_id="PROJ-307:good", ticket="PROJ-307",
                      ticket_json=Ticket(key="PROJ-307", summary="Fine").model_dump_json(),
                      dedup_key="PROJ-307")

        async def accept_both() -> None:
            for new in (bad, good):
                assert await engine.store.accept_run(new) == new.run_id
            for new in (bad, good):
                engine.dispatcher.accepted(new)  # in one turn of the loop: one batch

        svc.client.portal.call(accept_both)  # type: ignore[union-attr]
        good_run = svc.wait(good.run_id, timeout=30)
        bad_run = svc.wait(bad.run_id, timeout=30)
    assert good_run["status"] == "succeeded", good_run["error"]
    assert bad_run["status"] == "failed", bad_run
    assert "validation error for Ticket" in (bad_run["error"] or ""), bad_run
