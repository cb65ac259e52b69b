"""Real-browser tests: Playwright's sync API driving Debian's chromium.

Screenshots of every step go to artifacts/screenshots/ at the repository root
(CI keeps artifacts/). Install the browser with `apt-get install chromium`;
never `playwright install`."""

from __future__ import annotations

import os
import re
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.pages.conftest import ga, hall  # noqa: F401 - the same events as the page tests

# Playwright's sync API runs an event loop in this thread; the test's own ORM
# calls are synchronous and safe, so let Django allow them.
os.environ.setdefault("DJANGO_ALLOW_ASYNC_UNSAFE", "true")

CHROMIUM = os.environ.get("CHROMIUM_PATH", "/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless=new",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
SCREENSHOTS = Path(__file__).resolve().parents[2] / "artifacts" / "screenshots"


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if "tests/browser/" in str(item.fspath).replace(os.sep, "/"):
            item.add_marker(pytest.mark.browser)


@pytest.fixture(scope="session")
def screenshot_dir() -> Path:
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    print(f"\nbrowser screenshots: {SCREENSHOTS}")
    return SCREENSHOTS


@pytest.fixture(scope="session")
def browser() -> Iterator[object]:
    if not shutil.which(CHROMIUM) and not Path(CHROMIUM).exists():
        pytest.fail(f"chromium not found at {CHROMIUM}: apt-get install chromium")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield browser
        browser.close()


@pytest.fixture
def site(live_server, settings):
    """The live server, with payment pages that return to it."""
    settings.PAYMENT_PROVIDERS = ("sandbox",)
    settings.SITE_URL = live_server.url
    from django.core.cache import cache

    cache.clear()
    return live_server.url


class Shooter:
    def __init__(self, page, directory: Path, test_name: str) -> None:
        self.page, self.directory, self.prefix, self.n = page, directory, re.sub(r"\W+", "_", test_name), 0
        for old in directory.glob(f"{self.prefix}-*.png"):
            old.unlink()

    def __call__(self, step: str) -> Path:
        self.n += 1
        path = self.directory / f"{self.prefix}-{self.n:02d}-{step}.png"
        self.page.screenshot(path=str(path), full_page=True)
        return path


@pytest.fixture
def page(browser, request, screenshot_dir):
    viewport = getattr(request, "param", None) or {"width": 1100, "height": 900}
    context = browser.new_context(viewport=viewport)
    context.set_default_timeout(10_000)
    page = context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    page.shot = Shooter(page, screenshot_dir, request.node.name)
    yield page
    context.close()
    assert not errors, f"JavaScript errors on the page: {errors}"
