"""An asyncio face on one Selenium-driven Chromium, with the checks every browser test makes.

Selenium blocks, and the servers the page talks to (the gateway, a test app) run on the test's
event loop, so every driver call runs in a worker thread (``asyncio.to_thread``). Besides
navigation and bounded waits it collects the console (any SEVERE entry fails the test), every
response the page loaded (scanned for secrets with the DOM) and saves screenshots.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
from collections.abc import AsyncIterator, Callable, Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

from selenium import webdriver
from selenium.common.exceptions import (
    NoSuchElementException,
    StaleElementReferenceException,
    TimeoutException,
)
from selenium.webdriver.common.by import By
from selenium.webdriver.remote.webelement import WebElement
from selenium.webdriver.support import expected_conditions
from selenium.webdriver.support.wait import WebDriverWait

from tests.browser.network import NetworkRecorder, refetch_missing

T = TypeVar("T")

ROOT = Path(__file__).resolve().parents[2]
#: Every page's screenshot (gitignored); the overview also goes to docs/ when asked.
SCREENSHOTS = ROOT / "build" / "screenshots"
DOCS_SCREENSHOT = ROOT / "docs" / "dashboard.png"
#: The document as HTML (empty while there is none yet).
SERIALISE = "return document.documentElement ? document.documentElement.outerHTML : '';"
#: Default bound of a wait for the page (seconds).
WAIT = 10.0


@dataclass(frozen=True)
class Finding:
    """A secret (by its label, never its value) found somewhere the page could see it."""

    label: str
    where: str


def fragments(secret: str) -> list[str]:
    """The secret, and 16-character pieces of its middle (a mask shows only its ends)."""
    middle = secret[10:-6]
    pieces = [middle[i : i + 16] for i in range(0, max(len(middle) - 15, 0), 8)]
    return [secret, *pieces]


def find_secrets(text: str, where: str, secrets: Mapping[str, str]) -> list[Finding]:
    return [
        Finding(label, where)
        for label, secret in secrets.items()
        if any(piece in text for piece in fragments(secret))
    ]


class Browser:
    """One Chromium window, driven from asyncio."""

    def __init__(self, driver: webdriver.Chrome) -> None:
        self.driver = driver
        self.base_url = ""
        self.network = NetworkRecorder(driver)
        self.console: list[dict[str, Any]] = []
        self._expected: list[re.Pattern[str]] = []

    async def run(self, fn: Callable[..., T], *args: Any) -> T:
        return await asyncio.to_thread(fn, *args)

    # -- navigation and the page -------------------------------------------------------------
    async def get(self, path: str) -> None:
        """Opens ``base_url + path`` (or an absolute URL)."""
        url = path if "://" in path or path.startswith("about:") else self.base_url + path
        await self.run(self._get, url)

    def _get(self, url: str) -> None:
        self._collect()
        self.driver.get(url)

    async def path(self) -> str:
        url = await self.run(lambda: self.driver.current_url)
        return "/" + url.split("://", 1)[-1].split("/", 1)[-1] if "://" in url else url

    async def wait_for(self, css: str, *, within: float = WAIT, visible: bool = True) -> WebElement:
        """The first element matching ``css`` once it is there (and visible); a TimeoutException
        naming the selector after ``within`` seconds."""
        condition = (
            expected_conditions.visibility_of_element_located
            if visible
            else expected_conditions.presence_of_element_located
        )
        wait = WebDriverWait(self.driver, within, poll_frequency=0.1)
        return await self.run(self._until, wait, condition((By.CSS_SELECTOR, css)), f"no {css}")

    async def wait_until(
        self, predicate: Callable[[webdriver.Chrome], Any], message: str, within: float = WAIT
    ) -> Any:
        """The first truthy value of ``predicate(driver)`` (called in the worker thread)."""
        ignored = (NoSuchElementException, StaleElementReferenceException, ValueError)
        wait = WebDriverWait(self.driver, within, poll_frequency=0.1, ignored_exceptions=ignored)
        return await self.run(self._until, wait, predicate, message)

    def _until(self, wait: WebDriverWait[webdriver.Chrome], condition: Any, message: str) -> Any:
        """``wait.until``; on a timeout the error says where the page was and what it showed."""
        try:
            return wait.until(condition, message)
        except TimeoutException:
            url = self.driver.current_url
            shown = " ".join(self.driver.find_element(By.TAG_NAME, "html").text.split())[:200]
            raise TimeoutException(f"{message} (at {url}, showing: {shown!r})") from None

    async def wait_for_path(self, path: str, within: float = WAIT) -> None:
        await self.wait_until(
            lambda d: d.current_url.split("?")[0].endswith(path), f"never at {path}", within
        )

    async def text(self, css: str) -> str:
        return await self.run(lambda: self.driver.find_element(By.CSS_SELECTOR, css).text)

    async def find_all(self, css: str) -> list[WebElement]:
        return await self.run(self.driver.find_elements, By.CSS_SELECTOR, css)

    async def click(self, css: str) -> None:
        element = await self.wait_for(css)
        await self.run(element.click)

    async def type(self, css: str, text: str, *, clear: bool = True) -> None:
        element = await self.wait_for(css)
        if clear:
            await self.run(element.clear)
        await self.run(element.send_keys, text)

    async def js(self, script: str, *args: Any) -> Any:
        return await self.run(self.driver.execute_script, script, *args)

    async def js_async(self, script: str, *args: Any) -> Any:
        """Runs ``script`` with a callback as its last argument (``arguments[arguments.length-1]``)."""
        return await self.run(self.driver.execute_async_script, script, *args)

    async def page_source(self) -> str:
        """The DOM now, serialised (chromedriver's page_source is at times empty right after a
        navigation, so the page serialises itself)."""
        return str(await self.wait_until(lambda d: d.execute_script(SERIALISE), "no DOM"))

    async def resize(self, width: int, height: int) -> None:
        await self.run(self.driver.set_window_size, width, height)

    # -- console -----------------------------------------------------------------------------
    def _collect(self) -> None:
        entries = self.driver.get_log("browser")  # type: ignore[no-untyped-call]
        self.console.extend(e for e in entries if not self._is_expected(e))
        self.network.drain()

    def _is_expected(self, entry: dict[str, Any]) -> bool:
        return any(p.search(str(entry.get("message", ""))) for p in self._expected)

    @contextlib.asynccontextmanager
    async def expect_console(self, pattern: str) -> AsyncIterator[None]:
        """Console entries matching ``pattern`` logged inside the block are expected, not errors
        (e.g. Chromium logs every 403 a fetch receives)."""
        compiled = re.compile(pattern)
        self._expected.append(compiled)
        try:
            yield
        finally:
            await self.run(self._collect)
            self._expected.remove(compiled)

    def console_errors_now(self) -> list[str]:
        """The SEVERE console entries so far (uncaught exceptions, console.error, failed loads);
        blocking: call it from the worker thread (``wait_until``) or through ``console_errors``."""
        self._collect()
        return [str(e["message"]) for e in self.console if e.get("level") == "SEVERE"]

    async def console_errors(self) -> list[str]:
        return await self.run(self.console_errors_now)

    # -- secrets -----------------------------------------------------------------------------
    async def secrets_seen(self, secrets: Mapping[str, str]) -> list[Finding]:
        """Where any of ``secrets`` (label -> value) shows: the DOM now, or any response the
        page loaded since the last reset (headers and bodies; bodies the browser no longer
        holds are fetched again with its cookies)."""
        source = await self.page_source()
        found = find_secrets(source, "DOM of " + await self.path(), secrets)
        responses = await self.run(self.network.responses)
        cookies = await self.run(self.driver.get_cookies)
        await refetch_missing(responses, cookies)
        for item in responses:
            found += find_secrets(item.text(), f"{item.method} {item.url}", secrets)
        return found

    async def loaded_urls(self) -> list[str]:
        return [item.url for item in await self.run(self.network.responses)]

    # -- screenshots -------------------------------------------------------------------------
    async def screenshot(self, name: str, *, docs: bool = False) -> Path:
        """Saves build/screenshots/<name>.png; also docs/dashboard.png when ``docs`` and the
        environment has UPDATE_SCREENSHOT=1."""
        SCREENSHOTS.mkdir(parents=True, exist_ok=True)
        path = SCREENSHOTS / f"{name}.png"
        assert await self.run(self.driver.save_screenshot, str(path)), path
        if docs and os.environ.get("UPDATE_SCREENSHOT") == "1":
            DOCS_SCREENSHOT.write_bytes(path.read_bytes())
        return path

    # -- between tests -----------------------------------------------------------------------
    async def leave(self) -> None:
        """Collects the console, then leaves the page (its polling stops with it)."""
        await self.run(self._get, "about:blank")
        await self.run(self._collect)

    async def reset(self) -> None:
        """A blank page, no cookies, no collected console or responses, the default window."""
        await self.leave()
        await self.run(self.driver.execute_cdp_cmd, "Network.clearBrowserCookies", {})
        await self.run(self.driver.set_window_size, 1280, 800)
        await self.run(self.network.forget)
        self.console.clear()
        self.base_url = ""


def describe(findings: Iterable[Finding]) -> str:
    return "; ".join(f"{f.label} in {f.where}" for f in findings)
