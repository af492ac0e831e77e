"""How Settings reads the environment's list-shaped values (JSON argument lists, comma lists,
per-project caps): `mode="before"` validators of app/config.py call these."""

from __future__ import annotations

import json


def json_argv(value: object) -> object:
    """Accept a JSON argument list (`["pnpm","lint"]`) or an empty string for 'no command'."""
    if isinstance(value, str):
        text = value.strip()
        if not text:
            return []
        try:
            parsed = json.loads(text)
        except json.JSONDecodeError as exc:
            raise ValueError(f"must be a JSON list of strings, e.g. [\"pnpm\", \"lint\"]: {exc}") from exc
        return parsed
    return value


def csv(value: object) -> object:
    """`a, b,,c` → ["a", "b", "c"]."""
    if isinstance(value, str):
        return [part.strip() for part in value.split(",") if part.strip()]
    return value


def project_caps(value: object) -> object:
    """`PROJ=5,OPS=2.5` → {"PROJ": "5", "OPS": "2.5"} (pydantic then checks the amounts)."""
    if not isinstance(value, str):
        return value
    caps: dict[str, str] = {}
    for item in value.split(","):
        if not item.strip():
            continue
        project, sep, amount = item.partition("=")
        if not sep or not project.strip():
            raise ValueError(f"expected PROJECT=USD, got {item!r}")
        caps[project.strip().upper()] = amount.strip()
    return caps
