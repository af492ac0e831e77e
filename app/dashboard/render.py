"""Jinja2 for the dashboard: autoescaping on for every template (run text is hostile: ticket
summaries, agent output, logs), undefined names are errors, and a few display filters."""

from __future__ import annotations

import math
from datetime import UTC, datetime
from functools import cache
from pathlib import Path
from typing import Any

from fastapi import Request
from fastapi.responses import HTMLResponse
from jinja2 import Environment, FileSystemLoader, StrictUndefined

TEMPLATES = Path(__file__).parent / "templates"


def money(value: float | None) -> str:
    return "–" if value is None else f"${value:,.4f}"


def duration(seconds: float | None) -> str:
    """1.2 s · 4m 05s · 2h 03m."""
    if seconds is None or math.isnan(seconds) or seconds < 0:
        return "–"
    if seconds < 60:
        return f"{seconds:.1f} s"
    minutes, secs = divmod(int(seconds), 60)
    if minutes < 60:
        return f"{minutes}m {secs:02d}s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours}h {minutes:02d}m"


def when(value: datetime | float | None) -> str:
    if value is None:
        return "–"
    if isinstance(value, int | float):
        value = datetime.fromtimestamp(value, UTC)
    return value.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S")


@cache
def environment() -> Environment:
    env = Environment(loader=FileSystemLoader(TEMPLATES), autoescape=True, undefined=StrictUndefined,
                      trim_blocks=True, lstrip_blocks=True)
    env.filters.update(money=money, duration=duration, when=when)
    return env


def render(request: Request, name: str, context: dict[str, Any], status: int = 200) -> HTMLResponse:
    """Render a template. Every page gets `path` and, when signed in, `csrf` (the logout form)."""
    context = {"path": request.url.path, "csrf": None, **context}
    html = environment().get_template(name).render(**context)
    return HTMLResponse(html, status_code=status)


__all__ = ["duration", "environment", "money", "render", "when"]
