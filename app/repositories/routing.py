"""Which repository a ticket goes to: deterministic rules, never the model's guess.

Pure functions over the ticket's routing facts (its project, components, labels and custom field
values, as Jira has them) and the configured repositories:
- the repositories with a route that holds (every condition of one rule) are the matches;
- exactly one match → that repository; none → the default repository if one is configured;
- none without a default, or several → unroutable, with a message that says how to fix the ticket
  (set a component or a label that one repository's route names), which the run posts to Jira.
Comparisons are case-insensitive (Jira's JQL compares names that way). The ticket's texts are
hostile, but they only ever select among the operator's repositories: no value of theirs is used.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from app.models import Ticket
from app.repositories.config import RepositoryConfig, Route


@dataclass(frozen=True)
class TicketFacts:
    """What routing reads of a ticket."""

    project: str
    components: tuple[str, ...] = ()
    labels: tuple[str, ...] = ()
    fields: Mapping[str, str] = field(default_factory=dict)  # custom field id → its value(s) as text


@dataclass(frozen=True)
class Routed:
    repository: str
    why: str  # "component=api", "default": for the run's record


@dataclass(frozen=True)
class Unroutable:
    reason: str  # "no repository matches" / "2 repositories match: a, b"
    help: str  # how to fix it, for the Jira comment
    candidates: tuple[str, ...] = ()


def ticket_facts(ticket: Ticket) -> TicketFacts:
    return TicketFacts(project=ticket.project, components=tuple(ticket.components),
                       labels=tuple(ticket.labels), fields=dict(ticket.fields))


def route_holds(route: Route, facts: TicketFacts) -> bool:
    """Every condition the rule names holds for the ticket."""
    fold = str.casefold
    if route.project is not None and fold(route.project) != fold(facts.project):
        return False
    if route.component is not None and fold(route.component) not in {fold(c) for c in facts.components}:
        return False
    if route.label is not None and fold(route.label) not in {fold(x) for x in facts.labels}:
        return False
    if route.field is not None:
        value = facts.fields.get(route.field)
        if value is None or fold(route.value or "") not in {fold(v) for v in _values(value)}:
            return False
    return True


def choose(repositories: Sequence[RepositoryConfig], facts: TicketFacts) -> Routed | Unroutable:
    """The one repository for the ticket, or why there is none (see the module docstring)."""
    matches: list[tuple[str, str]] = []
    for repo in repositories:
        held = next((r for r in repo.routes if route_holds(r, facts)), None)
        if held is not None:
            matches.append((repo.name, held.describe()))
    if len(matches) == 1:
        return Routed(repository=matches[0][0], why=matches[0][1])
    if not matches:
        default = next((r for r in repositories if r.default), None)
        if default is not None:
            return Routed(repository=default.name, why="default")
        return Unroutable(reason="no repository matches this ticket", help=_help(repositories))
    names = tuple(name for name, _ in matches)
    shown = ", ".join(f"{name} ({why})" for name, why in matches)
    return Unroutable(reason=f"{len(matches)} repositories match this ticket: {shown}",
                      help=_help(repositories, names), candidates=names)


def _values(value: str) -> list[str]:
    """A multi-valued field arrives as its values joined by newlines (see ticket_facts)."""
    return value.split("\n")


def _help(repositories: Sequence[RepositoryConfig], among: tuple[str, ...] = ()) -> str:
    """How to route the ticket: the routes of each repository, so the reader can pick one."""
    lines = []
    for repo in repositories:
        if among and repo.name not in among:
            continue
        rules = "; ".join(r.describe() for r in repo.routes) or "(no routes)"
        lines.append(f"- {repo.name}: {rules}")
    what = "exactly one repository's routing rule" if among else "one repository's routing rule"
    return (f"Set a component or a label on the ticket so that {what} matches, then update the ticket "
            "to start work again. Repositories and their rules:\n" + "\n".join(lines))


__all__ = ["Routed", "TicketFacts", "Unroutable", "choose", "route_holds", "ticket_facts"]
