"""Browser tests: Debian's chromium driven by Playwright against a live server.

Fixtures and helpers every browser test shares:
- ``browser_page``: a page of a fresh headless chromium (never a downloaded browser),
  ``page.base`` the live server's URL; a failing test leaves a full-page screenshot
  in test-artifacts/;
- logging in and the axe-core check are in support.py.
"""

import os
from pathlib import Path

import pytest

CHROMIUM = "/usr/bin/chromium"
HERE = Path(__file__).resolve().parent
ARTIFACTS = HERE.parents[2] / "test-artifacts"

CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--no-first-run",
    "--disable-sync",
]


def pytest_collection_modifyitems(config, items):
    absent = pytest.mark.skip(
        reason=f"{CHROMIUM} is absent (./dev test installs Debian's chromium)"
    )
    for item in items:
        if HERE in Path(item.fspath).parents and not Path(CHROMIUM).exists():
            item.add_marker(absent)


def launch(playwright_api_manager):
    return playwright_api_manager.chromium.launch(
        executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS
    )


@pytest.fixture
def browser_page(request, live_server):
    playwright_api = pytest.importorskip("playwright.sync_api")
    # Playwright's sync API runs an event loop in this thread; the ORM calls the
    # test makes between page steps are still plain synchronous calls.
    os.environ["DJANGO_ALLOW_ASYNC_UNSAFE"] = "true"
    manager = playwright_api.sync_playwright().start()
    browser = launch(manager)
    page = browser.new_page(viewport={"width": 1440, "height": 900})
    page.set_default_timeout(15_000)
    page.base = live_server.url
    yield page
    report = getattr(request.node, "rep_call", None)
    if report is not None and report.failed:
        ARTIFACTS.mkdir(exist_ok=True)
        page.screenshot(
            path=str(ARTIFACTS / f"{request.node.name}.png"), full_page=True
        )
    browser.close()
    manager.stop()
    os.environ.pop("DJANGO_ALLOW_ASYNC_UNSAFE", None)
