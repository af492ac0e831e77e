"""Routing: one rule kind at a time (project, component, label, custom field), the default, and the
two ways a ticket cannot be routed (no match without a default, several matches) - pure, fast."""

from __future__ import annotations

from app.models import Ticket
from app.repositories.config import RepositoryConfig, Route
from app.repositories.routing import Routed, TicketFacts, Unroutable, choose, ticket_facts


def repo(name: str, *routes: Route, default: bool = False) -> RepositoryConfig:
    return RepositoryConfig(name=name, url=f"/srv/{name}.git", routes=routes, default=default)


WEB = repo("web", Route(project="WEB"))
UI = repo("ui", Route(component="Frontend"))
DOCS = repo("docs", Route(label="docs"))
BACKEND = repo("backend", Route(field="customfield_10042", value="Backend"))
MOBILE = repo("mobile", Route(project="APP", component="iOS"))
ALL = [WEB, UI, DOCS, BACKEND, MOBILE]


def test_by_project() -> None:
    assert choose(ALL, TicketFacts(project="WEB")) == Routed("web", "project=WEB")
    assert isinstance(choose(ALL, TicketFacts(project="OPS")), Unroutable)


def test_by_component_case_insensitively() -> None:
    got = choose(ALL, TicketFacts(project="OPS", components=("frontend",)))
    assert got == Routed("ui", "component=Frontend")
    assert isinstance(choose(ALL, TicketFacts(project="OPS", components=("Backend",))), Unroutable)


def test_by_label() -> None:
    assert choose(ALL, TicketFacts(project="OPS", labels=("urgent", "Docs"))) == Routed("docs", "label=docs")


def test_by_custom_field_value_also_among_several() -> None:
    one = TicketFacts(project="OPS", fields={"customfield_10042": "backend"})
    assert choose(ALL, one) == Routed("backend", "customfield_10042=Backend")
    several = TicketFacts(project="OPS", fields={"customfield_10042": "Frontend\nBackend"})
    assert choose(ALL, several) == Routed("backend", "customfield_10042=Backend")
    other_field = TicketFacts(project="OPS", fields={"customfield_99": "Backend"})
    assert isinstance(choose(ALL, other_field), Unroutable)


def test_every_condition_of_a_rule_must_hold() -> None:
    assert isinstance(choose(ALL, TicketFacts(project="APP")), Unroutable)
    assert choose(ALL, TicketFacts(project="APP", components=("ios",))).repository == "mobile"  # type: ignore[union-attr]


def test_default_takes_what_nothing_matches_and_only_that() -> None:
    repos = [*ALL, repo("main", default=True)]
    assert choose(repos, TicketFacts(project="OPS")) == Routed("main", "default")
    assert choose(repos, TicketFacts(project="WEB")) == Routed("web", "project=WEB")


def test_no_match_without_default_says_how_to_fix_it() -> None:
    got = choose(ALL, TicketFacts(project="OPS"))
    assert isinstance(got, Unroutable) and got.reason == "no repository matches this ticket"
    assert "Set a component or a label" in got.help
    for line in ("- web: project=WEB", "- ui: component=Frontend", "- docs: label=docs",
                 "- backend: customfield_10042=Backend", "- mobile: project=APP and component=iOS"):
        assert line in got.help


def test_two_matches_are_ambiguous_even_with_a_default() -> None:
    repos = [*ALL, repo("main", default=True)]
    got = choose(repos, TicketFacts(project="WEB", components=("Frontend",)))
    assert isinstance(got, Unroutable) and got.candidates == ("web", "ui")
    assert got.reason == "2 repositories match this ticket: web (project=WEB), ui (component=Frontend)"
    assert "- web: project=WEB" in got.help and "- ui: component=Frontend" in got.help
    assert "- docs" not in got.help  # only the candidates are listed


def test_facts_of_a_ticket() -> None:
    ticket = Ticket(key="WEB-7", labels=["a"], components=["Frontend"], fields={"customfield_1": "x"})
    assert ticket_facts(ticket) == TicketFacts(project="WEB", components=("Frontend",), labels=("a",),
                                               fields={"customfield_1": "x"})
