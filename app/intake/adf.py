"""Atlassian Document Format (ADF) → readable markdown-ish text.

Jira Cloud's REST v3 and some webhooks send `description` as an ADF tree
(`{"type": "doc", "version": 1, "content": [...]}`). The agent must read the ticket as text, never as
raw JSON, so this renders paragraphs, headings, lists (bullet, ordered, task, decision), code blocks,
quotes, panels, rules, links, mentions, emoji, dates, status lozenges, hard breaks, media
placeholders and tables as markdown.

This is the project's one ADF-to-text rule: `app.services.jira.adf.adf_text` (comments read back
from Jira) is this function.

Contract: `adf_to_text` never raises on any JSON value — the tree is untrusted input. Malformed nodes
are skipped, unknown node types fall back to their children's text, and nesting deeper than
`MAX_DEPTH` is flattened to plain text without recursion (so a hostile 100k-level tree cannot
exhaust the stack). The work is linear and bounded whatever the input:
- a work budget: every node visited and every character produced at every level (indentation and
  list markers included) is charged; once `WORK_FACTOR * max_chars` is spent the renderer stops
  visiting nodes, so a million tiny nodes, a deep quote around many lines or a huge table cost at
  most a constant times `max_chars`;
- the result is cut by the one truncation rule (`app.intake.limits.clip`, visible
  `[... truncated]` marker) to `max_chars`;
- ordered-list numbering starts at most at MAX_LIST_START, tables keep MAX_TABLE_COLUMNS columns,
  a text node's first MAX_MARKS marks count.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime
from typing import Any

from app.intake.limits import DEFAULT_MAX_DESCRIPTION_CHARS, clip

MAX_DEPTH = 40  # real documents nest a handful of levels; lists inside tables inside panels ~8
WORK_FACTOR = 10  # work budget = WORK_FACTOR * max_chars + WORK_MIN; real documents spend ~3-5x
WORK_MIN = 10_000
NODE_COST = 10  # budget units per node visited (a node is >= ~10 bytes of JSON anyway)
MAX_LIST_START = 999_999  # attrs.order beyond this is clamped (no 4000-digit list markers)
MAX_TABLE_COLUMNS = 64
MAX_MARKS = 16  # real text carries a handful (strong, em, code, link, textColor, ...)

_INLINE_TYPES = {
    "text", "hardBreak", "mention", "emoji", "inlineCard", "date", "status", "placeholder",
    "inlineExtension", "mediaInline",
}

_LIST_TYPES = {"bulletList", "orderedList", "taskList", "decisionList"}


def is_adf(value: object) -> bool:
    """True for a dict that looks like an ADF node (has a string `type`)."""
    return isinstance(value, dict) and isinstance(value.get("type"), str)


def adf_to_text(doc: object, max_chars: int = DEFAULT_MAX_DESCRIPTION_CHARS) -> str:
    """Render an ADF document (or any ADF node) as markdown-ish text of at most `max_chars`
    characters; '' when nothing renders."""
    if not isinstance(doc, dict):
        return ""
    r = _Renderer(WORK_FACTOR * max_chars + WORK_MIN)
    text = r.blocks(doc.get("content"), 0) if doc.get("type") == "doc" else r.block(doc, 0)
    lines = [line.rstrip() for line in text.splitlines()]
    text = re.sub(r"\n{3,}", "\n\n", "\n".join(lines)).strip()
    return clip(text, max_chars, cut=r.cut)


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


def _plain_text(node: object, r: _Renderer) -> str:
    """All text under `node`, iteratively (no recursion): the fallback past MAX_DEPTH. Charges
    every node and character to the renderer's budget and stops when it is spent."""
    out: list[str] = []
    stack: list[object] = [node]
    while stack:
        if not r.charge(NODE_COST):
            break
        cur = stack.pop()
        if isinstance(cur, dict):
            if cur.get("type") == "text":
                text = _str(cur.get("text"))
                room = r.left
                if not r.charge(len(text)):
                    out.append(text[: max(room, 0)])
                    break
                out.append(text)
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
    def __init__(self, work_limit: int) -> None:
        self.left = work_limit
        self.cut = False  # True once the budget ran out: the output misses something

    def charge(self, amount: int) -> bool:
        """Spend `amount` of the work budget; False (and `cut`) once it is spent."""
        self.left -= amount
        if self.left < 0:
            self.cut = True
            return False
        return True

    def blocks(self, nodes: object, depth: int) -> str:
        if not isinstance(nodes, list):
            return ""
        parts = []
        for n in nodes:
            if self.left < 0:
                self.cut = True
                break
            if isinstance(n, dict) and (p := self.block(n, depth)).strip():
                parts.append(p)
        return "\n\n".join(parts)

    def block(self, node: dict[str, Any], depth: int) -> str:
        """One node as text; the node and the text it produced are charged to the budget."""
        if not self.charge(NODE_COST):
            return ""
        if depth > MAX_DEPTH:
            return _plain_text(node, self)
        text = self._block(node, depth)
        self.charge(len(text))
        return text

    def _block(self, node: dict[str, Any], depth: int) -> str:
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
        number = min(number, MAX_LIST_START)
        items: list[str] = []
        for item in _children(node):
            if self.left < 0:
                self.cut = True
                break
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
        out: list[str] = []
        for child in _children(item):
            if self.left < 0:
                self.cut = True
                break
            text = self.block(child, depth + 1)
            if not text.strip():
                continue
            if out:
                out.append("\n" if child.get("type") in _LIST_TYPES else "\n\n")
            out.append(text)
        return "".join(out)

    def table(self, node: dict[str, Any], depth: int) -> str:
        rows: list[list[str]] = []
        for row in _children(node):
            if not self.charge(NODE_COST):
                break
            cells = []
            for cell in _children(row)[:MAX_TABLE_COLUMNS]:
                text = self.blocks(cell.get("content"), depth + 1)
                cells.append(" ".join(text.split()).replace("|", "\\|"))
            if cells:
                rows.append(cells)
        if not rows:
            return ""
        width = max(len(r) for r in rows)
        if not self.charge(width * len(rows) * 3):  # the padding and separators to come
            return ""
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
            if not self.charge(NODE_COST):
                break
            if depth > MAX_DEPTH:
                out.append(_plain_text(n, self))
                continue
            text = self.inline_node(n, depth)
            self.charge(len(text))
            out.append(text)
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
    kinds = {_str(m.get("type")): _attrs(m) for m in marks[:MAX_MARKS] if isinstance(m, dict)}
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
    if href and href != text:
        text = f"[{text}]({href})"
    return text  # a link whose text is its URL reads best as the bare URL


def _split_space(text: str) -> tuple[str, str, str]:
    core = text.strip()
    start = text.index(core)
    return text[:start], core, text[start + len(core):]


def _date(timestamp: object) -> str:
    """ADF dates are epoch milliseconds, usually as a string."""
    if not isinstance(timestamp, str | int | float):
        return ""  # int() raises TypeError for every other JSON value
    try:
        ms = int(timestamp)
        return datetime.fromtimestamp(ms / 1000, UTC).date().isoformat()
    except (TypeError, ValueError, OverflowError, OSError):
        return ""
