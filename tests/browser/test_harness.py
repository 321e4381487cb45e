"""The browser harness itself, against a tiny aiohttp app on loopback: it catches console errors,
finds a secret planted in the DOM or only in a response the page fetched (also once the page is
gone, fetching it again with the browser's cookie), saves screenshots, and its waits are bounded."""

from __future__ import annotations

import asyncio
import os
import secrets
import subprocess
from collections.abc import AsyncIterator

import pytest
from aiohttp import web
from selenium.common.exceptions import TimeoutException

from tests.browser.browser import Browser, describe
from tests.browser.chromium import CHROMEDRIVER, CHROMIUM

SECRET = "sk-proj-" + secrets.token_urlsafe(60)
PAGE = """<!doctype html><html lang="en"><head><meta charset="utf-8"><title>t</title>
<link rel="icon" href="data:,"></head><body><main id="main">{body}</main>
<script src="/app.js?mode={mode}"></script></body></html>"""
SCRIPT = """
const mode = new URL(document.currentScript.src).searchParams.get("mode");
if (mode === "error") console.error("planted console error");
if (mode === "throw") throw new Error("planted exception");
if (mode === "fetch") fetch("/data.json").then(r => r.json()).then(d => {
  document.getElementById("main").dataset.loaded = d.count;
});
"""


async def page(request: web.Request) -> web.Response:
    mode = request.match_info["mode"]
    body = f"<p>{SECRET}</p>" if mode == "dom" else '<p id="ok">ok</p>'
    response = web.Response(text=PAGE.format(body=body, mode=mode), content_type="text/html")
    response.set_cookie("session", "s1", httponly=True, path="/")
    return response


async def script(_: web.Request) -> web.Response:
    return web.Response(text=SCRIPT, content_type="application/javascript")


async def data(request: web.Request) -> web.Response:
    if request.cookies.get("session") != "s1":  # only the session sees it, as on the dashboard
        return web.json_response({"count": 0}, status=401)
    return web.json_response({"count": 3, "token": SECRET})


@pytest.fixture
async def site(browser: Browser) -> AsyncIterator[str]:
    app = web.Application()
    app.router.add_get("/p/{mode}", page)
    app.router.add_get("/app.js", script)
    app.router.add_get("/data.json", data)
    runner = web.AppRunner(app)
    await runner.setup()
    tcp = web.TCPSite(runner, "127.0.0.1", 0)
    await tcp.start()
    port = runner.addresses[0][1]
    browser.base_url = f"http://127.0.0.1:{port}"
    yield browser.base_url
    await browser.leave()
    await runner.cleanup()


async def test_a_clean_page_passes_and_is_photographed(browser: Browser, site: str) -> None:
    await browser.get("/p/plain")
    assert await browser.text("#ok") == "ok"
    assert await browser.secrets_seen({"planted": SECRET}) == []
    shot = await browser.screenshot("harness-plain")
    assert shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert await browser.console_errors() == []


@pytest.mark.parametrize(
    ("mode", "message"), [("error", "planted console error"), ("throw", "planted exception")]
)
async def test_console_errors_are_caught(
    browser: Browser, site: str, mode: str, message: str
) -> None:
    await browser.get(f"/p/{mode}")
    await browser.wait_for("#main")
    errors = await browser.wait_until(
        lambda _: [e for e in browser.console_errors_now() if message in e], "no console error"
    )
    assert errors
    browser.console.clear()  # seen: the fixture must not fail this test for it


async def test_expected_console_entries_are_not_errors(browser: Browser, site: str) -> None:
    async with browser.expect_console("planted console error"):
        await browser.get("/p/error")
        await browser.wait_for("#main")
    assert await browser.console_errors() == []


async def test_a_secret_in_the_dom_is_found(browser: Browser, site: str) -> None:
    await browser.get("/p/dom")
    found = await browser.secrets_seen({"planted": SECRET})
    assert "planted in DOM of /p/dom" in describe(found)


async def test_a_secret_only_in_a_fetched_response_is_found(browser: Browser, site: str) -> None:
    await browser.get("/p/fetch")
    await browser.wait_until(
        lambda d: d.find_element("id", "main").get_attribute("data-loaded") == "3", "no data"
    )
    assert SECRET not in await browser.page_source()
    found = await browser.secrets_seen({"planted": SECRET})
    assert [f.where for f in found] == [f"GET {site}/data.json"]


async def test_a_response_of_a_page_left_is_fetched_again_with_the_cookie(
    browser: Browser, site: str
) -> None:
    await browser.get("/p/fetch")
    await browser.wait_until(
        lambda d: d.find_element("id", "main").get_attribute("data-loaded") == "3", "no data"
    )
    await browser.js("window.location.assign('/p/plain')")  # a navigation the harness missed
    await browser.wait_for("#ok")
    responses = await browser.run(browser.network.responses)
    assert [r.body for r in responses if r.url.endswith("/data.json")] == [None]  # dropped
    found = await browser.secrets_seen({"planted": SECRET})
    assert [f.where for f in found] == [f"GET {site}/data.json"]


async def test_a_part_of_a_secret_is_found(browser: Browser, site: str) -> None:
    await browser.get("/p/dom")
    other = "sk-proj-" + "x" * 20 + SECRET[30:60] + "y" * 20  # shares 30 middle characters
    assert await browser.secrets_seen({"other": other})


async def test_waits_are_bounded_and_name_the_selector(browser: Browser, site: str) -> None:
    await browser.get("/p/plain")
    with pytest.raises(TimeoutException, match="#never-there"):
        await browser.wait_for("#never-there", within=0.5)


async def test_the_browser_is_debians_chromium_through_its_driver(browser: Browser) -> None:
    """Selenium runs the packaged executables (Selenium Manager is skipped, and offline)."""
    driver = browser.driver
    assert driver.service.path == CHROMEDRIVER
    assert os.environ.get("SE_OFFLINE") == "true"
    version = await asyncio.to_thread(
        subprocess.run, [CHROMIUM, "--version"], capture_output=True, text=True, timeout=30
    )
    shown = version.stdout
    assert driver.capabilities["browserVersion"] in shown, shown
    user_agent = await browser.js("return navigator.userAgent;")
    assert "HeadlessChrome" in user_agent
