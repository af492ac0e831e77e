"""Browser fixtures: Debian's chromium driven by Playwright (never a downloaded browser). The
tests skip - loudly, with the reason - only when /usr/bin/chromium is absent; CI installs it.

Screenshots go to the test's tmp dir and are copied to `artifacts/` at the repository root
(ignored by git) so a CI run keeps them.
"""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

CHROMIUM = Path("/usr/bin/chromium")
ROOT = Path(__file__).resolve().parents[2]
ARTIFACTS = ROOT / "artifacts"


# Module scope, not session: Playwright's sync API runs an event loop in this thread while it is
# started, and every pytest-asyncio test collected after it would fail with "Runner.run() cannot be
# called from a running event loop" if it stayed up for the whole session.
@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    if not CHROMIUM.exists():
        pytest.skip(f"BROWSER TESTS SKIPPED: {CHROMIUM} is absent (apt-get install -y chromium)")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=str(CHROMIUM), headless=True)
        try:
            yield browser
        finally:
            browser.close()


@pytest.fixture
def context(browser: Any) -> Iterator[Any]:
    ctx = browser.new_context(viewport={"width": 1280, "height": 900})
    ctx.set_default_timeout(20_000)  # a bound on each DOM wait, not a measured duration
    try:
        yield ctx
    finally:
        ctx.close()


@pytest.fixture
def shoot(tmp_path: Path, request: pytest.FixtureRequest) -> Any:
    """`shoot(page, name)`: a full-page screenshot kept under tmp_path and artifacts/."""

    def take(page: Any, name: str) -> Path:
        path = tmp_path / f"{request.node.name}-{name}.png"
        page.screenshot(path=str(path), full_page=True)
        ARTIFACTS.mkdir(exist_ok=True)
        shutil.copy(path, ARTIFACTS / path.name)
        return path

    return take
