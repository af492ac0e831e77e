"""`RunEngine.submit` through the real app (SQLite DBOS under a temp workspace): a follow-up run's
kind, parent and PR number reach its record; its own dedup key dedups it apart from the ticket's."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from app.main import services_of
from app.models import SubmitResult, Ticket
from tests.intake.webhook_client import service


@pytest.fixture
def client(tmp_path: Path) -> Iterator[TestClient]:
    with service(tmp_path) as tc:  # runs stay queued: nothing starts the pipeline
        yield tc


def submit(client: TestClient, ticket: Ticket, **kw: object) -> SubmitResult:
    engine = services_of(client.app).runner
    assert client.portal is not None
    result: SubmitResult = client.portal.call(lambda: engine.submit(ticket, **kw))
    return result


class TestFollowUpRuns:
    def test_kind_parent_and_pr_number_are_on_the_record(self, client: TestClient) -> None:
        ticket = Ticket(key="PROJ-1", summary="s")
        parent = submit(client, ticket)
        follow = submit(client, ticket, kind="ci_fix", dedup_key="pr:7:suite:1", parent_run_id=parent.run_id,
                        pr_number=7)
        assert follow.status == "queued" and follow.run_id != parent.run_id
        run = client.get(f"/runs/{follow.run_id}").json()
        assert (run["kind"], run["parent_run_id"], run["pr_number"]) == ("ci_fix", parent.run_id, 7)
        assert client.get(f"/runs/{parent.run_id}").json()["kind"] == "ticket"

    def test_the_same_dedup_key_is_a_duplicate(self, client: TestClient) -> None:
        ticket = Ticket(key="PROJ-2", summary="s")
        first = submit(client, ticket, kind="review_fix", dedup_key="pr:8:review:3", pr_number=8)
        again = submit(client, ticket, kind="review_fix", dedup_key="pr:8:review:3", pr_number=8)
        assert again == SubmitResult(status="duplicate", run_id=first.run_id)
