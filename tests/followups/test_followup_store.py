"""The follow-up store (app/followups/store.py) on SQLite and PostgreSQL, migrated by the real
migrations: one claim of a PR's branch at a time (free again once its holder's record is final),
a job re-run once per commit, a close reported once, a delivery's first answer kept, counters that
add up under concurrent writers."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
import sqlalchemy as sa

from app.followups.store import Delivery, FollowupStore
from app.services.runner.migrate import upgrade_schema
from app.services.runner.store import make_engine
from app.services.runner.tables import runs


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[FollowupStore]:
    url = (
        request.getfixturevalue("pg_database")
        if request.param == "postgres"
        else f"sqlite:///{tmp_path}/f.db"
    )
    engine = make_engine(url)
    upgrade_schema(engine)
    yield FollowupStore(engine)
    engine.dispose()


def _run(store: FollowupStore, run_id: str, status: str) -> None:
    now = time.time()
    with store.engine.begin() as conn:
        conn.execute(
            sa.insert(runs).values(
                run_id=run_id,
                ticket="PROJ-1",
                status=status,
                created_at=now,
                updated_at=now,
                turns=0,
                cost_usd=0.0,
                ticket_json=json.dumps({}),
            )
        )


def test_one_followup_holds_a_pr_at_a_time(store: FollowupStore) -> None:
    store.track("acme/w", 1, ticket="PROJ-1", branch="ticket/proj-1", parent_run_id="PROJ-1:a", html_url=None)
    _run(store, "PROJ-1:f1", "running")
    _run(store, "PROJ-1:f2", "queued")
    assert store.claim("acme/w", 1, "PROJ-1:f1") is True
    assert store.claim("acme/w", 1, "PROJ-1:f1") is True  # a replayed claim of the holder
    assert store.claim("acme/w", 1, "PROJ-1:f2") is False
    with store.engine.begin() as conn:  # the holder died and its record was ended (reconciler)
        conn.execute(sa.update(runs).where(runs.c.run_id == "PROJ-1:f1").values(status="failed"))
    assert store.claim("acme/w", 1, "PROJ-1:f2") is True
    store.release("acme/w", 1, "PROJ-1:f1")  # a stale release changes nothing
    assert store.get("acme/w", 1).busy_run_id == "PROJ-1:f2"  # type: ignore[union-attr]
    store.release("acme/w", 1, "PROJ-1:f2")
    assert store.get("acme/w", 1).busy_run_id is None  # type: ignore[union-attr]


def test_reruns_closes_deliveries_and_counters(store: FollowupStore) -> None:
    store.track("acme/w", 2, ticket="PROJ-2", branch="ticket/proj-2", parent_run_id="PROJ-2:a", html_url="u")
    store.track(
        "acme/w", 2, ticket="X-9", branch="other", parent_run_id="X", html_url=None
    )  # again: no change
    assert store.add_rerun("acme/w", 2, "sha1:test") is True
    assert store.add_rerun("acme/w", 2, "sha1:test") is False
    assert store.add_rerun("acme/w", 2, "sha2:test") is True
    with ThreadPoolExecutor(4) as pool:
        list(
            pool.map(
                lambda _: store.add_round("acme/w", 2, kind="review", signature=None, cost_usd=0.25), range(8)
            )
        )
    store.add_round("acme/w", 2, kind="ci", signature="lint,test", cost_usd=1.0)
    store.set_etag("acme/w", 2, "pull", '"abc"')
    pr = store.get("acme/w", 2)
    assert pr is not None and (pr.ticket, pr.branch, pr.html_url) == ("PROJ-2", "ticket/proj-2", "u")
    assert pr.reruns == ("sha1:test", "sha2:test")
    assert (pr.review_rounds, pr.ci_rounds, pr.ci_signature, pr.cost_usd) == (8, 1, "lint,test", 3.0)
    assert store.etag("acme/w", 2, "pull") == '"abc"' and store.etag("acme/w", 2, "head") is None
    assert store.close("acme/w", 2, merged=True) is True
    assert store.close("acme/w", 2, merged=False) is False  # told once; merged stays merged
    assert store.get("acme/w", 2).state == "merged" and store.open_prs() == []  # type: ignore[union-attr]
    store.record_delivery(Delivery(delivery_id="d-1", event="check_suite", status="queued", run_id="R1"))
    store.record_delivery(Delivery(delivery_id="d-1", event="check_suite", status="duplicate", run_id="R2"))
    assert store.delivery("d-1") == Delivery(
        delivery_id="d-1", event="check_suite", status="queued", run_id="R1"
    )
    assert store.delivery("d-2") is None
