"""Plain text → Atlassian Document Format (Jira Cloud REST v3 takes comment bodies only as ADF).

Blank lines separate paragraphs, single newlines become hard breaks, and http(s) URLs become links
(so the PR link in a report is clickable). Nothing else is interpreted: the text is ours (PR URLs,
failure reasons), but it may quote tool output, so no markup is trusted.
"""

from __future__ import annotations

import re
from typing import Any

from app.intake.adf import adf_to_text

_URL_RE = re.compile(r"https?://[^\s<>\"')\]]+")
# Jira refuses comment bodies over 32,767 characters; stay clear of it.
MAX_TEXT_CHARS = 30_000


def to_adf(text: str) -> dict[str, Any]:
    """An ADF `doc` for `text` (an empty text becomes one empty paragraph, which Jira accepts)."""
    if len(text) > MAX_TEXT_CHARS:
        text = text[: MAX_TEXT_CHARS - 20] + "\n… (truncated)"
    paragraphs = re.split(r"\n\s*\n", text.replace("\r\n", "\n").strip())
    content = [{"type": "paragraph", "content": _inline(p)} for p in paragraphs if p.strip()]
    return {"type": "doc", "version": 1, "content": content or [{"type": "paragraph", "content": []}]}


def _inline(paragraph: str) -> list[dict[str, Any]]:
    nodes: list[dict[str, Any]] = []
    for i, line in enumerate(paragraph.split("\n")):
        if i:
            nodes.append({"type": "hardBreak"})
        pos = 0
        for m in _URL_RE.finditer(line):
            if m.start() > pos:
                nodes.append({"type": "text", "text": line[pos : m.start()]})
            url = m.group(0).rstrip(".,;:!?")  # sentence punctuation is not part of the URL
            nodes.append({"type": "text", "text": url, "marks": [{"type": "link", "attrs": {"href": url}}]})
            pos = m.start() + len(url)
        if pos < len(line):
            nodes.append({"type": "text", "text": line[pos:]})
    return nodes


def adf_text(doc: Any) -> str:
    """The visible text of an ADF node or list of nodes (for logs and fakes): the project's one
    ADF-to-text rule, `app.intake.adf.adf_to_text`, with a budget above Jira's comment limit."""
    if isinstance(doc, list):
        doc = {"type": "doc", "content": doc}
    return adf_to_text(doc, max_chars=2 * MAX_TEXT_CHARS)
