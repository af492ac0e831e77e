"""The budgeted renderer behind `adf_to_text`: one ADF tree as markdown-ish text.

Block rules (paragraphs, headings, lists, code, quotes, panels, expands, tables, media, cards) and
inline rules (text, breaks, mentions, emoji, cards, dates, status), each node and each character
produced charged to one work budget; past `MAX_DEPTH` a subtree is flattened to its plain text
without recursion. The contract (never raises, linear and bounded work) is stated in `adf.py`.
"""

from __future__ import annotations

from typing import Any

from app.intake.adf_nodes import attrs_of, children_of, date_text, indent, marked, str_of

MAX_DEPTH = 40  # real documents nest a handful of levels; lists inside tables inside panels ~8
NODE_COST = 10  # budget units per node visited (a node is >= ~10 bytes of JSON anyway)
MAX_LIST_START = 999_999  # attrs.order beyond this is clamped (no 4000-digit list markers)
MAX_TABLE_COLUMNS = 64

_INLINE_TYPES = {
    "text", "hardBreak", "mention", "emoji", "inlineCard", "date", "status", "placeholder",
    "inlineExtension", "mediaInline",
}

_LIST_TYPES = {"bulletList", "orderedList", "taskList", "decisionList"}


def _plain_text(node: object, r: Renderer) -> str:
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
                text = str_of(cur.get("text"))
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


class Renderer:
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
        kind = str_of(node.get("type"))
        attrs = attrs_of(node)
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
            lang = str_of(attrs.get("language"))
            code = "".join(str_of(c.get("text")) for c in children_of(node))
            fence = "````" if "```" in code else "```"
            return f"{fence}{lang}\n{code}\n{fence}"
        if kind in _LIST_TYPES:
            return self.list_(node, kind, attrs, d)
        if kind == "blockquote":
            return indent(self.blocks(node.get("content"), d), "> ", "> ")
        if kind == "panel":
            label = str_of(attrs.get("panelType")) or "note"
            return indent(f"**{label.capitalize()}:** " + self.blocks(node.get("content"), d), "> ", "> ")
        if kind == "rule":
            return "---"
        if kind in ("expand", "nestedExpand"):
            title = str_of(attrs.get("title"))
            body = self.blocks(node.get("content"), d)
            return f"**{title}**\n\n{body}" if title else body
        if kind == "table":
            return self.table(node, d)
        if kind in ("mediaSingle", "mediaGroup", "media"):
            return self.media(node)
        if kind in ("blockCard", "embedCard"):
            url = str_of(attrs.get("url"))
            return f"<{url}>" if url else ""
        children = children_of(node)
        if children and all(str_of(c.get("type")) in _INLINE_TYPES for c in children):
            return self.inline(children, d)
        return self.blocks(children, d)  # doc, layoutSection/Column, extensions, unknown types

    def list_(self, node: dict[str, Any], kind: str, attrs: dict[str, Any], depth: int) -> str:
        start = attrs.get("order")
        number = start if isinstance(start, int) and not isinstance(start, bool) and start >= 0 else 1
        number = min(number, MAX_LIST_START)
        items: list[str] = []
        for item in children_of(node):
            if self.left < 0:
                self.cut = True
                break
            if kind == "orderedList":
                marker = f"{number}. "
                number += 1
            elif kind == "taskList":
                marker = "- [x] " if attrs_of(item).get("state") == "DONE" else "- [ ] "
            elif kind == "decisionList":
                marker = "- Decision: "
            else:
                marker = "- "
            body = self.item(item, depth) if item.get("type") == "listItem" else self.block(item, depth)
            items.append(indent(body, marker, " " * len(marker)))
        return "\n".join(items)

    def item(self, item: dict[str, Any], depth: int) -> str:
        """A list item's blocks; a nested list follows its paragraph without a blank line."""
        out: list[str] = []
        for child in children_of(item):
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
        for row in children_of(node):
            if not self.charge(NODE_COST):
                break
            cells = []
            for cell in children_of(row)[:MAX_TABLE_COLUMNS]:
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
        for m in [node, *children_of(node)]:
            a = attrs_of(m)
            if m.get("type") in ("media", "mediaInline"):
                names.append(str_of(a.get("alt")) or str_of(a.get("filename")) or "attachment")
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
        kind = str_of(node.get("type"))
        attrs = attrs_of(node)
        if kind == "text":
            return marked(str_of(node.get("text")), node.get("marks"))
        if kind == "hardBreak":
            return "\n"
        if kind == "mention":
            name = str_of(attrs.get("text")) or str_of(attrs.get("id"))
            return name if name.startswith("@") else f"@{name}"
        if kind == "emoji":
            return str_of(attrs.get("text")) or str_of(attrs.get("shortName"))
        if kind == "inlineCard":
            url = str_of(attrs.get("url"))
            return f"<{url}>" if url else ""
        if kind == "date":
            return date_text(attrs.get("timestamp"))
        if kind == "status":
            text = str_of(attrs.get("text"))
            return f"[{text}]" if text else ""
        if kind == "mediaInline":
            return self.media(node)
        if kind in ("placeholder", "inlineExtension"):
            return ""
        return self.inline(node.get("content"), depth + 1)
