"""A logged-in dashboard client over HTTP (aiohttp, a cookie jar): what a browser sends, minus
the JavaScript. ``DashboardClient.login`` posts the login form; ``csrf`` is read from the page's
``<meta name="csrf-token">`` as app.js reads it."""

from __future__ import annotations

import re
from typing import Any

import aiohttp

from tests.router.gateway.harness import GatewayHarness

CSRF = re.compile(r'<meta name="csrf-token" content="([^"]*)">')
PAGES = ("overview", "keys", "models", "spend", "requests")
APIS = ("overview", "keys", "models", "spend", "requests")


class DashboardClient:
    def __init__(self, harness: GatewayHarness) -> None:
        self.harness = harness
        self.session = aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True))
        self.csrf = ""

    async def __aenter__(self) -> DashboardClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.session.close()

    async def get(self, path: str, **kwargs: Any) -> tuple[int, str, dict[str, str]]:
        kwargs.setdefault("allow_redirects", False)
        async with self.session.get(self.harness.url + path, **kwargs) as response:
            return response.status, await response.text(), dict(response.headers)

    async def post(self, path: str, **kwargs: Any) -> tuple[int, str, dict[str, str]]:
        kwargs.setdefault("allow_redirects", False)
        async with self.session.post(self.harness.url + path, **kwargs) as response:
            return response.status, await response.text(), dict(response.headers)

    async def login(self, token: str | None = None) -> tuple[int, str, dict[str, str]]:
        answer = await self.post("/ui/login", data={"token": token or self.harness.master})
        if answer[0] == 303:
            status, page, _ = await self.get("/ui/overview")
            assert status == 200, page
            found = CSRF.search(page)
            assert found, "every page carries its CSRF token"
            self.csrf = found[1]
        return answer

    async def act(
        self, key_id: str, action: str, body: Any = None, csrf: str | None = None
    ) -> tuple[int, str, dict[str, str]]:
        headers = {} if csrf == "" else {"X-CSRF-Token": csrf if csrf is not None else self.csrf}
        return await self.post(f"/ui/api/keys/{key_id}/{action}", json=body or {}, headers=headers)
