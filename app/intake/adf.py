"""Atlassian Document Format (ADF) → readable markdown-ish text.

Jira Cloud's REST v3 and some webhooks send `description` as an ADF tree
(`{"type": "doc", "version": 1, "content": [...]}`). The agent must read the ticket as text, never as
raw JSON, so this renders paragraphs, headings, lists (bullet, ordered, task, decision), code blocks,
quotes, panels, rules, links, mentions, emoji, dates, status lozenges, hard breaks, media
placeholders and tables as markdown.

Contract: `adf_to_text` never raises on any JSON value — the tree is untrusted input. Malformed nodes
are skipped, unknown node types fall back to their children's text, and nesting deeper than
`MAX_DEPTH` is flattened to plain text without recursion (so a hostile 900-level tree cannot
exhaust the stack).
"""

from __future__ import annotations

import re
from datetime import UTC, datetime
from typing import Any

MAX_DEPTH = 40  # real documents nest a handful of levels; lists inside tables inside panels ~8

_INLINE_TYPES = {
    "text", "hardBreak", "mention", "emoji", "inlineCard", "date", "status", "placeholder",
    "inlineExtension", "mediaInline",
}

_LIST_TYPES = {"bulletList", "orderedList", "taskList", "decisionList"}


def is_adf(value: object) -> bool:
    """True for a dict that looks like an ADF node (has a string `type`)."""
    return isinstance(value, dict) and isinstance(value.get("type"), str)


def adf_to_text(doc: object) -> str:
    """Render an ADF document (or any ADF node) as markdown-ish text; '' when nothing renders."""
    if not isinstance(doc, dict):
        return ""
    r = _Renderer()
    text = r.blocks(doc.get("content"), 0) if doc.get("type") == "doc" else r.block(doc, 0)
    lines = [line.rstrip() for line in text.splitlines()]
    return re.sub(r"\n{3,}", "\n\n", "\n".join(lines)).strip()


def _attrs(node: dict[str, Any]) -> dict[str, Any]:
    attrs = node.get("attrs")
    return attrs if isinstance(attrs, dict) else {}


def _children(node: dict[str, Any]) -> list[dict[str, Any]]:
    content = node.get("content")
    if not isinstance(content, list):
        return []
    return [c for c in content if isinstance(c, dict)]


def _str(value: object) -> str:
    return value if isinstance(value, str) else ""


def _plain_text(node: object) -> str:
    """All text under `node`, iteratively (no recursion): the fallback past MAX_DEPTH."""
    out: list[str] = []
    stack: list[object] = [node]
    while stack:
        cur = stack.pop()
        if isinstance(cur, dict):
            if cur.get("type") == "text":
                out.append(_str(cur.get("text")))
            elif cur.get("type") == "hardBreak":
                out.append("\n")
            content = cur.get("content")
            if isinstance(content, list):
                stack.extend(reversed(content))
    return "".join(out)


def _indent(text: str, first: str, rest: str) -> str:
    lines = text.split("\n") or [""]
    return "\n".join([first + lines[0], *[(rest + ln) if ln else ln for ln in lines[1:]]])


class _Renderer:
    def blocks(self, nodes: object, depth: int) -> str:
        if not isinstance(nodes, list):
            return ""
        parts = [self.block(n, depth) for n in nodes if isinstance(n, dict)]
        return "\n\n".join(p for p in parts if p.strip())

    def block(self, node: dict[str, Any], depth: int) -> str:
        if depth > MAX_DEPTH:
            return _plain_text(node)
        kind = _str(node.get("type"))
        attrs = _attrs(node)
        d = depth + 1
        if kind in _INLINE_TYPES:
            return self.inline([node], d)
        if kind == "paragraph":
            return self.inline(node.get("content"), d)
        if kind == "heading":
            level = attrs.get("level")
            level = level if isinstance(level, int) and 1 <= level <= 6 else 2
            return "#" * level + " " + self.inline(node.get("content"), d).replace("\n", " ")
        if kind == "codeBlock":
            lang = _str(attrs.get("language"))
            code = "".join(_str(c.get("text")) for c in _children(node))
            fence = "````" if "```" in code else "```"
            return f"{fence}{lang}\n{code}\n{fence}"
        if kind in _LIST_TYPES:
            return self.list_(node, kind, attrs, d)
        if kind == "blockquote":
            return _indent(self.blocks(node.get("content"), d), "> ", "> ")
        if kind == "panel":
            label = _str(attrs.get("panelType")) or "note"
            return _indent(f"**{label.capitalize()}:** " + self.blocks(node.get("content"), d), "> ", "> ")
        if kind == "rule":
            return "---"
        if kind in ("expand", "nestedExpand"):
            title = _str(attrs.get("title"))
            body = self.blocks(node.get("content"), d)
            return f"**{title}**\n\n{body}" if title else body
        if kind == "table":
            return self.table(node, d)
        if kind in ("mediaSingle", "mediaGroup", "media"):
            return self.media(node)
        if kind in ("blockCard", "embedCard"):
            url = _str(attrs.get("url"))
            return f"<{url}>" if url else ""
        children = _children(node)
        if children and all(_str(c.get("type")) in _INLINE_TYPES for c in children):
            return self.inline(children, d)
        return self.blocks(children, d)  # doc, layoutSection/Column, extensions, unknown types

    def list_(self, node: dict[str, Any], kind: str, attrs: dict[str, Any], depth: int) -> str:
        start = attrs.get("order")
        number = start if isinstance(start, int) and not isinstance(start, bool) and start >= 0 else 1
        items: list[str] = []
        for item in _children(node):
            if kind == "orderedList":
                marker = f"{number}. "
                number += 1
            elif kind == "taskList":
                marker = "- [x] " if _attrs(item).get("state") == "DONE" else "- [ ] "
            elif kind == "decisionList":
                marker = "- Decision: "
            else:
                marker = "- "
            body = self.item(item, depth) if item.get("type") == "listItem" else self.block(item, depth)
            items.append(_indent(body, marker, " " * len(marker)))
        return "\n".join(items)

    def item(self, item: dict[str, Any], depth: int) -> str:
        """A list item's blocks; a nested list follows its paragraph without a blank line."""
        out = ""
        for child in _children(item):
            text = self.block(child, depth + 1)
            if not text.strip():
                continue
            nested = child.get("type") in _LIST_TYPES
            sep = "\n" if nested else "\n\n"
            out = f"{out}{sep}{text}" if out else text
        return out

    def table(self, node: dict[str, Any], depth: int) -> str:
        rows: list[list[str]] = []
        for row in _children(node):
            cells = []
            for cell in _children(row):
                text = self.blocks(cell.get("content"), depth + 1)
                cells.append(" ".join(text.split()).replace("|", "\\|"))
            if cells:
                rows.append(cells)
        if not rows:
            return ""
        width = max(len(r) for r in rows)
        rows = [r + [""] * (width - len(r)) for r in rows]
        lines = ["| " + " | ".join(rows[0]) + " |", "|" + " --- |" * width]
        lines += ["| " + " | ".join(r) + " |" for r in rows[1:]]
        return "\n".join(lines)

    def media(self, node: dict[str, Any]) -> str:
        names = []
        for m in [node, *_children(node)]:
            a = _attrs(m)
            if m.get("type") in ("media", "mediaInline"):
                names.append(_str(a.get("alt")) or _str(a.get("filename")) or "attachment")
        return " ".join(f"[{n}]" for n in names)

    def inline(self, nodes: object, depth: int) -> str:
        if not isinstance(nodes, list):
            return ""
        out: list[str] = []
        for n in nodes:
            if not isinstance(n, dict):
                continue
            if depth > MAX_DEPTH:
                out.append(_plain_text(n))
                continue
            out.append(self.inline_node(n, depth))
        return "".join(out)

    def inline_node(self, node: dict[str, Any], depth: int) -> str:
        kind = _str(node.get("type"))
        attrs = _attrs(node)
        if kind == "text":
            return _marked(_str(node.get("text")), node.get("marks"))
        if kind == "hardBreak":
            return "\n"
        if kind == "mention":
            name = _str(attrs.get("text")) or _str(attrs.get("id"))
            return name if name.startswith("@") else f"@{name}"
        if kind == "emoji":
            return _str(attrs.get("text")) or _str(attrs.get("shortName"))
        if kind == "inlineCard":
            url = _str(attrs.get("url"))
            return f"<{url}>" if url else ""
        if kind == "date":
            return _date(attrs.get("timestamp"))
        if kind == "status":
            text = _str(attrs.get("text"))
            return f"[{text}]" if text else ""
        if kind == "mediaInline":
            return self.media(node)
        if kind in ("placeholder", "inlineExtension"):
            return ""
        return self.inline(node.get("content"), depth + 1)


def _marked(text: str, marks: object) -> str:
    if not text or not isinstance(marks, list):
        return text
    kinds = {_str(m.get("type")): _attrs(m) for m in marks if isinstance(m, dict)}
    if "code" in kinds:
        text = f"`{text}`"
    elif text.strip():
        # Emphasis markers must hug non-space text to render; keep surrounding spaces outside.
        lead, core, trail = _split_space(text)
        for mark, wrap in (("strong", "**"), ("em", "*"), ("strike", "~~")):
            if mark in kinds:
                core = f"{wrap}{core}{wrap}"
        text = lead + core + trail
    href = _str(kinds.get("link", {}).get("href"))
    if href:
        text = f"[{text}]({href})"
    return text


def _split_space(text: str) -> tuple[str, str, str]:
    core = text.strip()
    start = text.index(core)
    return text[:start], core, text[start + len(core):]


def _date(timestamp: object) -> str:
    """ADF dates are epoch milliseconds, usually as a string."""
    try:
        ms = int(timestamp)  # type: ignore[call-overload]
        return datetime.fromtimestamp(ms / 1000, UTC).date().isoformat()
    except (TypeError, ValueError, OverflowError, OSError):
        return ""
