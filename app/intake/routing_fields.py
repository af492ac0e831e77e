"""The issue fields repository routing reads: component names and custom field values, as text.

Both a delivery's `fields` (system webhook, Automation "Jira format") and Jira's REST API
(`GET /rest/api/3/issue/{key}`) carry them the same way: `components` is a list of
`{"id", "name"}` objects; a custom field (`customfield_<digits>`) is a string, a number, an option
`{"value": ...}`, a user/version-like object with `name`/`displayName`, or a list of those. Tolerant
(a surprising shape is skipped: it can only fail to route, never route somewhere else) and capped,
since the values are hostile text headed for the database: at most MAX_COMPONENTS components and
MAX_CUSTOM_FIELDS fields, each value at most MAX_VALUE_CHARS.
"""

from __future__ import annotations

import re
from typing import Any

MAX_COMPONENTS = 50
MAX_CUSTOM_FIELDS = 64
MAX_VALUES = 20  # values of one multi-valued field
MAX_VALUE_CHARS = 255
_CUSTOM_FIELD = re.compile(r"customfield_[0-9]{1,10}")


def components(fields: dict[str, Any]) -> list[str]:
    """Component names, in Jira's order."""
    value = fields.get("components")
    if not isinstance(value, list):
        return []
    names = [_text(item) for item in value[:MAX_COMPONENTS]]
    return [n for n in names if n]


def custom_fields(fields: dict[str, Any]) -> dict[str, str]:
    """`customfield_<n>` → its value(s) as text (several joined by newlines); empty ones left out."""
    out: dict[str, str] = {}
    for name, value in fields.items():
        if len(out) >= MAX_CUSTOM_FIELDS:
            break
        if not isinstance(name, str) or not _CUSTOM_FIELD.fullmatch(name):
            continue
        items = value[:MAX_VALUES] if isinstance(value, list) else [value]
        texts = [t for t in map(_text, items) if t]
        if texts:
            out[name] = "\n".join(texts)
    return out


def _text(value: object) -> str:
    """The text Jira shows for one value: a string, a number, or an option/object's value/name."""
    if isinstance(value, bool):
        return ""
    if isinstance(value, str):
        text = value
    elif isinstance(value, int | float):
        text = str(value)
    elif isinstance(value, dict):
        found = next((value[k] for k in ("value", "name", "displayName", "key")
                      if isinstance(value.get(k), str)), "")
        text = found
    else:
        return ""
    return " ".join(text.split())[:MAX_VALUE_CHARS]


__all__ = ["components", "custom_fields"]
