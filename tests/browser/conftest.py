"""Fixtures of the browser tests: one headless Chromium per test module, a clean window per test.

``browser`` is a :class:`tests.browser.browser.Browser` on a blank page with no cookies; after the
test it fails the test on any SEVERE console entry the page logged. Servers the page talks to must
be stopped only after ``browser.leave()`` (the dashboard fixtures do it), so a polling page never
sees them go.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
from selenium import webdriver

from tests.browser.browser import Browser, describe
from tests.browser.chromium import launch
from tests.browser.dashboard import Dashboard, dashboard_pool
from tests.conftest import unique_prefix
from tests.router.gateway.harness import GatewayHarness


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if "tests/browser/" in item.nodeid:
            item.add_marker(pytest.mark.browser)
            item.add_marker(pytest.mark.integration)


@pytest.fixture(scope="module")
def chromium() -> Iterator[webdriver.Chrome]:
    """Headless Chromium for the module; quit (and its profile removed) after it."""
    driver, profile = launch()
    try:
        yield driver
    finally:
        driver.quit()
        profile.cleanup()


@pytest.fixture
async def browser(chromium: webdriver.Chrome) -> AsyncIterator[Browser]:
    window = Browser(chromium)
    await window.reset()
    yield window
    errors = await window.console_errors()
    await window.reset()
    if errors:
        pytest.fail("the page logged console errors:\n" + "\n".join(errors), pytrace=False)


@pytest.fixture
async def dash(
    request: pytest.FixtureRequest, browser: Browser, redis_url: str, tmp_path: Path
) -> AsyncIterator[Dashboard]:
    """The dashboard of a gateway over three simulated keys (more settings through an indirect
    parameter: a dict); after the test, nothing the page loaded (DOM, responses) may hold a
    secret, and the page is left before the gateway stops."""
    settings = dict(getattr(request, "param", {}))
    gw = GatewayHarness(tmp_path, redis_url, unique_prefix(), pool=dashboard_pool(), **settings)
    await gw.start()
    browser.base_url = gw.url
    board = Dashboard(gw, browser)
    try:
        yield board
        findings = await browser.secrets_seen(board.secrets())
        assert not findings, "secrets reached the page: " + describe(findings)
    finally:
        await board.stop_traffic()
        await browser.leave()
        await gw.stop()
