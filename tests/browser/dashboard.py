"""The dashboard under test: a gateway (real Redis, the provider simulator) seen through the browser.

``Dashboard`` logs in with the master key, sends traffic with the official ``openai`` SDK in a
background task (bounded), and knows every secret the page must never see: the pool's keys, the
master key and the virtual key the traffic uses. The ids and data attributes used here are the
dashboard's DOM contract (the ids, data-page, data-key-id, data-field and data-action names).
"""

from __future__ import annotations

import asyncio
import contextlib
import re
from collections.abc import AsyncIterator
from typing import Any

import aiohttp

from tests.browser.browser import Browser
from tests.router.gateway.harness import MODEL, GatewayHarness, PoolKey

PAGES = ("overview", "keys", "models", "spend", "requests")
#: An element each page shows once it is rendered.
PAGE_MARK = {
    "overview": "#capacity-now",
    "keys": "table#keys-table",
    "models": "table#models-table",
    "spend": "table#spend-table",
    "requests": "table#requests-table",
}
#: Traffic stops by itself after this many calls.
TRAFFIC_LIMIT = 600
TRAFFIC_PACE = 0.05  # seconds between two calls: a steady trickle, not a load test


def dashboard_pool() -> list[PoolKey]:
    return [
        PoolKey("pool-a", rpm=600, tags={"team": "search"}),
        PoolKey("pool-b", rpm=600, tags={"team": "search"}),
        PoolKey("pool-c", rpm=300, tpm=200_000, tags={"team": "ads"}),
    ]


def number(text: str) -> int:
    """The integer a cell shows (thousands separators and units dropped)."""
    digits = re.sub(r"\D", "", text)
    if not digits:
        raise ValueError(f"no number in {text!r}")
    return int(digits)


class Dashboard:
    def __init__(self, gw: GatewayHarness, browser: Browser) -> None:
        self.gw = gw
        self.browser = browser
        self.vkey = ""
        self._traffic: asyncio.Task[int] | None = None
        self._stop = asyncio.Event()

    def secrets(self) -> dict[str, str]:
        found = {f"secret of {k.key_id}": k.secret for k in self.gw.pool}
        found["master key"] = self.gw.master
        read_only = getattr(self.gw.settings, "DASHBOARD_TOKEN", None)
        if read_only is not None:
            found["dashboard token"] = read_only.get_secret_value()
        if self.vkey:
            found["virtual key"] = self.vkey
        return found

    def read_only_token(self) -> str:
        token = getattr(self.gw.settings, "DASHBOARD_TOKEN", None)
        assert token is not None, "the gateway has no DASHBOARD_TOKEN"
        return str(token.get_secret_value())

    async def login(self, token: str | None = None) -> None:
        b = self.browser
        await b.get("/ui/login")
        await b.type("#login-token", token or self.gw.master)
        await b.click("#login-submit")
        await b.wait_for_path("/ui/overview")
        await b.wait_for("nav#nav")

    async def open(self, page: str) -> None:
        """Opens a page and waits until its first refresh has landed."""
        await self.browser.get(f"/ui/{page}")
        await self.browser.wait_for(PAGE_MARK.get(page, "main#main"))
        await self.loaded()

    async def loaded(self) -> str:
        return str(
            await self.browser.wait_until(
                lambda d: d.find_element("id", "last-updated").text.strip(),
                "#last-updated never filled",
            )
        )

    async def csrf(self) -> str:
        return str(
            await self.browser.js("return document.querySelector('meta[name=csrf-token]').content;")
        )

    async def session_cookie(self) -> str:
        cookie = await self.browser.run(self.browser.driver.get_cookie, "llmr_session")
        assert cookie is not None, "no llmr_session cookie"
        return str(cookie["value"])

    # -- traffic -----------------------------------------------------------------------------
    async def calls(self, n: int) -> None:
        """n chat completions through the gateway with the official SDK."""
        if not self.vkey:
            self.vkey = await self.gw.vkey(name="browser-traffic")
        async with self.gw.client(self.vkey) as client:
            for i in range(n):
                await client.chat.completions.create(
                    model=MODEL, messages=[{"role": "user", "content": f"call {i}"}]
                )

    @contextlib.asynccontextmanager
    async def traffic(self) -> AsyncIterator[None]:
        """A steady trickle of calls in a background task while the block runs."""
        if not self.vkey:
            self.vkey = await self.gw.vkey(name="browser-traffic")
        self._stop.clear()
        self._traffic = asyncio.create_task(self._trickle())
        try:
            yield
        finally:
            await self.stop_traffic()

    async def _trickle(self) -> int:
        sent = 0
        async with self.gw.client(self.vkey) as client:
            while sent < TRAFFIC_LIMIT and not self._stop.is_set():
                await client.chat.completions.create(
                    model=MODEL, messages=[{"role": "user", "content": f"trickle {sent}"}]
                )
                sent += 1
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._stop.wait(), TRAFFIC_PACE)
        return sent

    async def stop_traffic(self) -> int:
        if self._traffic is None:
            return 0
        self._stop.set()
        task, self._traffic = self._traffic, None
        return await asyncio.wait_for(task, 30)

    # -- outside the browser -----------------------------------------------------------------
    async def post_with_cookie(
        self, path: str, body: Any, headers: dict[str, str] | None = None
    ) -> tuple[int, Any]:
        """A POST with the browser's session cookie, from aiohttp (no page, no CSRF header)."""
        cookie = await self.session_cookie()
        sent = {"Cookie": f"llmr_session={cookie}", **(headers or {})}
        async with (
            aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=10)) as session,
            session.post(self.gw.url + path, json=body, headers=sent) as response,
        ):
            text = await response.text()
            return response.status, (
                await response.json(content_type=None) if text.startswith("{") else text
            )

    async def get_with_cookie(self, path: str, cookie: str) -> int:
        async with (
            aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=10)) as session,
            session.get(
                self.gw.url + path,
                headers={"Cookie": f"llmr_session={cookie}"},
                allow_redirects=False,
            ) as response,
        ):
            return response.status

    async def key_state(self, key_id: str) -> dict[str, Any]:
        status, body = await self.gw.admin("GET", f"/keys/{key_id}")
        assert status == 200, body
        return dict(body["data"])

    def served(self) -> dict[str, int]:
        """Requests the simulator admitted per pool key since its last reset."""
        assert self.gw.sim is not None
        return {
            key_id: models.get(MODEL, {}).get("admitted_requests", 0)
            for key_id, models in self.gw.sim.stats()["keys"].items()
        }
