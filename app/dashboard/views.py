"""What the dashboard's templates show, computed from the run store's views: one row per run
(links, duration, cost) and one run's timeline (steps, gate rounds and their outputs, the diff
summary). Pure functions of the data, so they are tested without a browser.

Everything here is still hostile text; the templates escape it. Links are only made from
http(s) URLs (a `javascript:` PR URL renders as text).
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote, urlsplit

from app.models import FINAL_STATUSES, RunView, StepView

GATES = ("review", "lint", "test")
_SUMMARY_KEYS = ("error", "reason", "outcome", "exit_code", "turns", "cost_usd", "sha", "branch",
                 "number", "kept")


def web_link(url: str | None) -> str | None:
    """The URL when it is an absolute http(s) URL (safe as an href), else None."""
    if not url:
        return None
    try:
        parts = urlsplit(url)
    except ValueError:
        return None
    return url if parts.scheme in ("http", "https") and parts.netloc else None


def ticket_link(jira_base_url: str | None, key: str) -> str | None:
    if not jira_base_url or web_link(jira_base_url) is None:
        return None
    return f"{jira_base_url.rstrip('/')}/browse/{quote(key, safe='')}"


def run_seconds(run: RunView, now: float | None = None) -> float:
    """Created → last update when the run has ended, created → now while it is active."""
    end = run.updated_at.timestamp() if run.status in FINAL_STATUSES else (now or time.time())
    return max(0.0, end - run.created_at.timestamp())


def step_seconds(step: StepView, now: float | None = None) -> float | None:
    if step.started_at is None:
        return None
    end = step.finished_at.timestamp() if step.finished_at else (now or time.time())
    return max(0.0, end - step.started_at.timestamp())


def ticket_summary(ticket_json: str | None) -> str:
    """The ticket's summary from the run record's copy of the ticket ('' when unreadable)."""
    try:
        data = json.loads(ticket_json or "{}")
    except ValueError:
        return ""
    summary = data.get("summary") if isinstance(data, dict) else None
    return summary if isinstance(summary, str) else ""


@dataclass(frozen=True)
class RunRow:
    run: RunView
    ticket_url: str | None
    pr_url: str | None
    seconds: float

    @property
    def active(self) -> bool:
        return self.run.status not in FINAL_STATUSES


def run_row(run: RunView, jira_base_url: str | None) -> RunRow:
    return RunRow(run=run, ticket_url=ticket_link(jira_base_url, run.ticket), pr_url=web_link(run.pr_url),
                  seconds=run_seconds(run))


@dataclass(frozen=True)
class Round:
    """One gate round: a check (its verdict and output) or a fix (the agent's figures)."""

    kind: str  # check | fix
    number: int
    verdict: str
    passed: bool | None
    output: str = ""


@dataclass(frozen=True)
class StepEntry:
    step: StepView
    seconds: float | None
    summary: str
    rounds: list[Round] = field(default_factory=list)

    @property
    def is_gate(self) -> bool:
        return self.step.name in GATES


def _check_round(raw: dict[str, Any]) -> Round:
    number = int(raw.get("round", 0) or 0) + 1  # checks are counted from 0, fix rounds from 1
    if "has_issues" in raw:  # a review
        if raw.get("error"):
            return Round("check", number, f"unreadable review: {raw['error']}", None,
                         str(raw.get("findings", "")))
        issues = bool(raw.get("has_issues"))
        return Round("check", number, "has issues" if issues else "no issues", not issues,
                     str(raw.get("findings", "")))
    passed = bool(raw.get("passed"))
    if raw.get("timed_out"):
        verdict = "timed out"
    else:
        verdict = "passed" if passed else f"failed (exit {raw.get('exit_code')})"
    if isinstance(raw.get("duration_s"), int | float):
        verdict += f" in {raw['duration_s']:.1f} s"
    return Round("check", number, verdict, passed, str(raw.get("output", "")))


def _fix_round(raw: dict[str, Any]) -> Round:
    number = int(raw.get("round", 0) or 0)
    if raw.get("error"):
        return Round("fix", number, f"agent failed: {raw['error']}", False)
    cost = raw.get("cost_usd")
    cost_text = f", ${cost:.4f}" if isinstance(cost, int | float) else ""
    return Round("fix", number, f"{raw.get('turns', 0)} turns{cost_text}", True)


def gate_rounds(detail: dict[str, Any]) -> list[Round]:
    rounds = detail.get("rounds")
    if not isinstance(rounds, list):
        return []
    out: list[Round] = []
    for raw in rounds:
        if isinstance(raw, dict):
            out.append(_fix_round(raw) if raw.get("kind") == "fix" else _check_round(raw))
    return out


def step_summary(step: StepView) -> str:
    """One line about the step from its detail (gates: outcome and fix rounds)."""
    detail = step.detail
    if step.name in GATES and "rounds" in detail:
        checks = sum(1 for r in detail["rounds"] if isinstance(r, dict) and r.get("kind") != "fix")
        parts = [f"{checks} check(s), {detail.get('fix_rounds', 0)} fix round(s)"]
        if detail.get("outcome"):
            parts.insert(0, str(detail["outcome"]))
        return " · ".join(parts)
    if step.name == "implement" and "turns" in detail:
        changed = "changes" if detail.get("has_changes") else "no changes"
        return f"{detail.get('turns')} turns · ${float(detail.get('cost_usd') or 0):.4f} · {changed}"
    if step.name == "commit" and detail.get("sha"):
        return f"{str(detail['sha'])[:12]} {detail.get('message', '')}".strip()
    parts = []
    for key in _SUMMARY_KEYS:
        value = detail.get(key)
        if value not in (None, "", [], {}):
            parts.append(f"{key}: {value}")
    return " · ".join(parts)


def timeline(run: RunView) -> list[StepEntry]:
    return [StepEntry(step=s, seconds=step_seconds(s), summary=step_summary(s),
                      rounds=gate_rounds(s.detail) if s.name in GATES else [])
            for s in run.steps]


@dataclass(frozen=True)
class Implemented:
    """The implement step's results: the diff summary (`git diff --stat`) and the agent's text."""

    diff: str
    summary: str


def implemented(run: RunView) -> Implemented | None:
    for step in run.steps:
        if step.name == "implement" and ("diff" in step.detail or "summary" in step.detail):
            return Implemented(diff=str(step.detail.get("diff") or ""),
                               summary=str(step.detail.get("summary") or ""))
    return None


__all__ = ["GATES", "Implemented", "Round", "RunRow", "StepEntry", "gate_rounds", "implemented", "run_row",
           "run_seconds", "step_seconds", "step_summary", "ticket_link", "ticket_summary", "timeline",
           "web_link"]
