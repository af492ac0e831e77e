"""Regenerate the README's screenshot:

    uv run python -m tests.dashboard.make_docs_screenshot docs/dashboard.png

A finished run of the real service (scripted Claude, real git, Debian's chromium): the review, a
lint failure and its fix round, the tests, the PR. Not a test (pytest does not collect it)."""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path

from playwright.sync_api import sync_playwright

from tests.dashboard.live_service import live_service

OP = "operator-token-0123456789abcdef"
AUTH = {"Authorization": f"Bearer {OP}"}
GUIDE = "# Contributing\n\nRun the tests before a PR.\n"
SCRIPT = {"tickets": {"SHOP-42": {
    "implement": [{"write": "CONTRIBUTING.md", "content": GUIDE.replace(".\n", ".   \n")}],  # lint fails
    "fix:lint": [[{"write": "CONTRIBUTING.md", "content": GUIDE}]],
    "result": "Added CONTRIBUTING.md with how to run the lint and the tests.",
}}}


def main(target: str) -> None:
    gates = {"ENABLE_REVIEW": "true", "ENABLE_LINT": "true", "ENABLE_TESTS": "true"}
    with tempfile.TemporaryDirectory() as tmp, live_service(
            Path(tmp), SCRIPT, OPERATOR_TOKEN=OP, JIRA_BASE_URL="https://acme.atlassian.net", **gates) as svc:
        svc.wait(svc.deliver("SHOP-40", "Fix the typo in the README"), headers=AUTH)
        run_id = svc.deliver("SHOP-42", "Add a CONTRIBUTING guide")
        svc.wait(run_id, headers=AUTH)
        with sync_playwright() as pw:
            browser = pw.chromium.launch(executable_path="/usr/bin/chromium")
            page = browser.new_page(viewport={"width": 1200, "height": 900})
            page.goto(f"{svc.url}/ui/runs")
            page.fill("#token", OP)
            page.click("button[type=submit]")
            page.wait_for_url(f"{svc.url}/ui/runs")
            page.goto(f"{svc.url}/ui/runs/{run_id}")
            page.wait_for_selector("#stream-state:has-text('run ended')")
            page.wait_for_selector("#log .line:has-text('run_finished')")
            page.click("details[id^=gate-lint-1] summary")
            page.screenshot(path=target, full_page=True)
            browser.close()


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else "docs/dashboard.png")
