"""The run's progress comment as an Atlassian Document Format document, built as data.

Every text the run shows (step names, failure reasons, the agent's explanation, the hold reason) is
hostile or may quote hostile output, so it only ever becomes the `text` of an ADF text node: no
markup is parsed, spliced or interpreted, and no mention, macro or link can come from it. Links are
made only from URLs the service composed or received from GitHub (`http(s)://` only). Every string
goes through `redact` (the outbound scanner's) on its way in.

The comment ends with its marker, a text node of its own: `auto-code run <run_id>`. That is how a
run finds its comment again (after a restart, after a POST whose answer was lost) and how it knows a
comment is not another run's.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any, Literal
from urllib.parse import quote

ProgressState = Literal["working", "waiting", "succeeded", "failed", "no_changes", "dry_run", "cancelled"]
MARKER_PREFIX = "auto-code run "
MAX_REASON_CHARS = 3000

_ICONS = {"succeeded": "✅", "failed": "❌", "running": "⏳", "skipped": "➖", "cancelled": "⛔"}
_HEADLINES: dict[ProgressState, str] = {
    "working": "auto-code is working on it.",
    "waiting": "auto-code is waiting before it starts:",
    "succeeded": "auto-code opened a pull request:",
    "failed": "auto-code could not finish this ticket:",
    "no_changes": "auto-code made no changes for this ticket. The agent said:",
    "dry_run": "auto-code finished a dry run (nothing was pushed). The agent said:",
    "cancelled": "auto-code stopped: the run was cancelled.",
}


@dataclass(frozen=True)
class StepLine:
    name: str
    status: str  # a StepStatus
    note: str | None = None  # e.g. "2 fix rounds"


@dataclass(frozen=True)
class ProgressView:
    """What the comment shows, at one moment of the run."""

    run_id: str
    state: ProgressState
    steps: tuple[StepLine, ...] = ()
    run_url: str | None = None
    pr_url: str | None = None
    reason: str | None = None  # failure reason, hold reason, or the agent's words (hostile)
    duration_s: float | None = None
    cost_usd: float | None = None


def marker_text(run_id: str) -> str:
    return MARKER_PREFIX + run_id


def run_page_url(public_base_url: str | None, run_id: str) -> str | None:
    """`<PUBLIC_BASE_URL>/ui/runs/<run id, path-quoted>` (None without a base URL)."""
    if not public_base_url or not _is_web_url(public_base_url):
        return None
    return f"{public_base_url.rstrip('/')}/ui/runs/{quote(run_id, safe='')}"


def _is_web_url(url: str) -> bool:
    return url.startswith(("https://", "http://")) and not any(c.isspace() for c in url)


def _text(value: str, link: str | None = None, strong: bool = False) -> dict[str, Any]:
    node: dict[str, Any] = {"type": "text", "text": value}
    marks: list[dict[str, Any]] = []
    if strong:
        marks.append({"type": "strong"})
    if link is not None:
        marks.append({"type": "link", "attrs": {"href": link}})
    if marks:
        node["marks"] = marks
    return node


def _para(*nodes: dict[str, Any]) -> dict[str, Any]:
    return {"type": "paragraph", "content": [n for n in nodes if n.get("text")]}


def duration_words(seconds: float) -> str:
    s = max(0, round(seconds))
    h, rem = divmod(s, 3600)
    m, sec = divmod(rem, 60)
    return f"{h}h {m}m" if h else (f"{m}m {sec}s" if m else f"{sec}s")


def render(view: ProgressView, redact: Callable[[str], str] = lambda t: t) -> dict[str, Any]:
    """The ADF `doc` of `view`; every string redacted, the hostile ones only as text nodes."""
    content: list[dict[str, Any]] = []
    head = [_text(_HEADLINES[view.state], strong=True)]
    if view.state == "succeeded" and view.pr_url:
        url = redact(view.pr_url)  # a link only when it is a web address (a local record is not)
        head += [_text(" "), _text(url, link=url if _is_web_url(url) else None)]
    content.append(_para(*head))
    if view.reason:
        reason = redact(view.reason)
        if len(reason) > MAX_REASON_CHARS:
            reason = reason[: MAX_REASON_CHARS - 12] + " [truncated]"
        content.append({"type": "blockquote", "content": [_para(_text(reason))]})
    if view.steps:
        items = []
        for step in view.steps:
            label = f"{_ICONS.get(step.status, '•')} {redact(step.name)}"
            if step.status not in ("succeeded", "running"):
                label += f" ({step.status})"
            if step.note:
                label += f" — {redact(step.note)}"
            items.append({"type": "listItem", "content": [_para(_text(label))]})
        content.append({"type": "bulletList", "content": items})
    facts = []
    if view.duration_s is not None:
        facts.append(f"duration {duration_words(view.duration_s)}")
    if view.cost_usd is not None:
        facts.append(f"model cost ${view.cost_usd:.2f}")
    if facts:
        content.append(_para(_text(" · ".join(facts).capitalize())))
    if view.run_url:
        url = redact(view.run_url)
        content.append(_para(_text("Follow the run: "), _text(url, link=url)))
    content.append(_para(_text(redact(marker_text(view.run_id)))))
    return {"type": "doc", "version": 1, "content": content}


def _texts(node: Any) -> Iterator[str]:
    if isinstance(node, dict):
        if node.get("type") == "text" and isinstance(node.get("text"), str):
            yield node["text"]
        for child in node.get("content") or ():
            yield from _texts(child)
    elif isinstance(node, list):
        for child in node:
            yield from _texts(child)


def has_marker(body: Any, run_id: str) -> bool:
    """True when one of `body`'s text nodes is exactly this run's marker (another run's id, or the
    marker quoted inside other text, does not match)."""
    wanted = marker_text(run_id)
    return any(text.strip() == wanted for text in _texts(body))


def visible_text(body: Any) -> str:
    """All text nodes joined (what the outbound check scans)."""
    return "\n".join(_texts(body)) + "\n" + "\n".join(_hrefs(body))


def _hrefs(node: Any) -> Iterator[str]:
    if isinstance(node, dict):
        for mark in node.get("marks") or ():
            href = (mark.get("attrs") or {}).get("href") if isinstance(mark, dict) else None
            if isinstance(href, str):
                yield href
        for child in node.get("content") or ():
            yield from _hrefs(child)
    elif isinstance(node, list):
        for child in node:
            yield from _hrefs(child)


__all__ = ["MARKER_PREFIX", "ProgressState", "ProgressView", "StepLine", "duration_words", "has_marker",
           "marker_text", "render", "run_page_url", "visible_text"]
