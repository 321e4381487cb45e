"""What the page loaded: every response the browser received, with its body, for the secret scan.

Chromium's performance log carries the DevTools Network events; each finished response's body is
read with ``Network.getResponseBody`` while the page that loaded it is still there. A body the
browser no longer holds (the page navigated away first) is fetched again, for GETs, with the
browser's cookies through aiohttp; the scan then covers it too.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

import aiohttp
from selenium import webdriver
from selenium.common.exceptions import WebDriverException


@dataclass
class Loaded:
    """One response the browser received."""

    url: str
    method: str = "GET"
    status: int = 0
    headers: dict[str, str] = field(default_factory=dict)
    body: str | None = None

    def text(self) -> str:
        return "\n".join([self.url, json.dumps(self.headers), self.body or ""])


class NetworkRecorder:
    """Reads the performance log; keeps every http(s) response and its body."""

    def __init__(self, driver: webdriver.Chrome) -> None:
        self.driver = driver
        self.loaded: dict[str, Loaded] = {}
        self.done: list[Loaded] = []

    def drain(self) -> None:
        """Reads the events logged since the last call; fetches the bodies that just finished."""
        for entry in self.driver.get_log("performance"):  # type: ignore[no-untyped-call]
            message = json.loads(entry["message"])["message"]
            self._event(message.get("method", ""), message.get("params", {}))

    def _event(self, method: str, params: dict[str, Any]) -> None:
        request_id = str(params.get("requestId", ""))
        if method == "Network.requestWillBeSent":
            request = params["request"]
            if request["url"].startswith("http"):
                self.loaded[request_id] = Loaded(request["url"], request.get("method", "GET"))
        elif method == "Network.responseReceived" and request_id in self.loaded:
            response = params["response"]
            item = self.loaded[request_id]
            item.status = int(response.get("status", 0))
            item.headers = {str(k): str(v) for k, v in response.get("headers", {}).items()}
        elif method in ("Network.loadingFinished", "Network.loadingFailed") and (
            request_id in self.loaded
        ):
            item = self.loaded.pop(request_id)
            if method == "Network.loadingFinished":
                item.body = self._body(request_id)
            self.done.append(item)

    def _body(self, request_id: str) -> str | None:
        try:
            got = self.driver.execute_cdp_cmd("Network.getResponseBody", {"requestId": request_id})
        except WebDriverException:
            return None  # gone with its page, or a response without a body (a redirect)
        return str(got.get("body", ""))

    def responses(self) -> list[Loaded]:
        self.drain()
        return self.done + list(self.loaded.values())

    def forget(self) -> None:
        self.drain()
        self.loaded.clear()
        self.done.clear()


async def refetch_missing(responses: list[Loaded], cookies: list[dict[str, Any]]) -> int:
    """Fetches again, with the browser's cookies, each GET whose body the browser no longer
    held; answers how many were fetched."""
    header = "; ".join(f"{c['name']}={c['value']}" for c in cookies)
    fetched = 0
    timeout = aiohttp.ClientTimeout(total=10)
    headers = {"Cookie": header} if header else {}
    async with aiohttp.ClientSession(headers=headers, timeout=timeout) as session:
        for item in responses:
            if item.body is not None or item.method != "GET" or item.status in (301, 302, 303, 307):
                continue
            async with session.get(item.url, allow_redirects=False) as response:
                item.body = await response.text(errors="replace")
                fetched += 1
    return fetched
