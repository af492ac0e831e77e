"""Reading one untrusted ADF node without raising, and the text of its leaves.

Accessors that return an empty value for anything malformed (`attrs_of`, `children_of`, `str_of`),
the markdown of a text node's marks and of a date, and the indentation of rendered blocks (quotes,
list items). Nothing here recurses; the budgeted walk of a tree is `adf_render.Renderer`.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

MAX_MARKS = 16  # real text carries a handful (strong, em, code, link, textColor, ...)


def attrs_of(node: dict[str, Any]) -> dict[str, Any]:
    attrs = node.get("attrs")
    return attrs if isinstance(attrs, dict) else {}


def children_of(node: dict[str, Any]) -> list[dict[str, Any]]:
    content = node.get("content")
    if not isinstance(content, list):
        return []
    return [c for c in content if isinstance(c, dict)]


def str_of(value: object) -> str:
    return value if isinstance(value, str) else ""


def indent(text: str, first: str, rest: str) -> str:
    lines = text.split("\n") or [""]
    return "\n".join([first + lines[0], *[(rest + ln) if ln else ln for ln in lines[1:]]])


def marked(text: str, marks: object) -> str:
    if not text or not isinstance(marks, list):
        return text
    kinds = {str_of(m.get("type")): attrs_of(m) for m in marks[:MAX_MARKS] if isinstance(m, dict)}
    if "code" in kinds:
        text = f"`{text}`"
    elif text.strip():
        # Emphasis markers must hug non-space text to render; keep surrounding spaces outside.
        lead, core, trail = _split_space(text)
        for mark, wrap in (("strong", "**"), ("em", "*"), ("strike", "~~")):
            if mark in kinds:
                core = f"{wrap}{core}{wrap}"
        text = lead + core + trail
    href = str_of(kinds.get("link", {}).get("href"))
    if href and href != text:
        text = f"[{text}]({href})"
    return text  # a link whose text is its URL reads best as the bare URL


def _split_space(text: str) -> tuple[str, str, str]:
    core = text.strip()
    start = text.index(core)
    return text[:start], core, text[start + len(core):]


def date_text(timestamp: object) -> str:
    """ADF dates are epoch milliseconds, usually as a string."""
    if not isinstance(timestamp, str | int | float):
        return ""  # int() raises TypeError for every other JSON value
    try:
        ms = int(timestamp)
        return datetime.fromtimestamp(ms / 1000, UTC).date().isoformat()
    except (TypeError, ValueError, OverflowError, OSError):
        return ""
