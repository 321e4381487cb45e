"""Who gets in: login and logout, the session cookie's flags, sessions in Redis (unknown and
expired ones), CSRF on actions, the read-only token, and no dashboard without a master key."""

from __future__ import annotations

import asyncio
import hashlib
import json
import ssl
from http.cookies import SimpleCookie
from pathlib import Path
from types import SimpleNamespace

import aiohttp
import pytest
import redis.asyncio as aioredis
import trustme
from aiohttp import web

from router.gateway import GatewayServer, build_app
from tests.router.dashboard.browser import PAGES, DashboardClient
from tests.router.gateway.conftest import GatewayFactory
from tests.router.gateway.harness import GatewayHarness
from tests.servers import RedisServer

pytestmark = pytest.mark.integration


def _cookie(headers: dict[str, str]) -> SimpleCookie:
    cookie: SimpleCookie = SimpleCookie()
    cookie.load(headers["Set-Cookie"])
    return cookie


async def test_login_sets_a_strict_http_only_cookie_and_logout_ends_the_session(
    gw: GatewayHarness, redis_url: str
) -> None:
    async with DashboardClient(gw) as ui:
        status, _, headers = await ui.get("/ui")
        assert (status, headers["Location"]) == (303, "/ui/login")
        status, page, headers = await ui.post("/ui/login", data={"token": "wrong-" + gw.master})
        assert status == 401 and "Set-Cookie" not in headers
        assert 'id="login-error"' in page and "Wrong master key" in page
        assert gw.master not in page

        status, _, headers = await ui.login()
        assert (status, headers["Location"]) == (303, "/ui/overview")
        morsel = _cookie(headers)["llmr_session"]
        assert morsel["httponly"] and morsel["samesite"] == "Strict"
        assert morsel["path"] == "/ui" and morsel["max-age"] == str(8 * 3600)
        assert not morsel["secure"], "plain HTTP: a Secure cookie would never come back"
        stored = gw.gateway.store.keys.ui_session(hashlib.sha256(morsel.value.encode()).hexdigest())
        client = aioredis.from_url(redis_url, decode_responses=True)
        try:
            ttl = await client.ttl(stored)
            assert 8 * 3600 - 60 < ttl <= 8 * 3600
            assert morsel.value not in (await client.get(stored) or "")
            for page_name in PAGES:
                status, _, _ = await ui.get(f"/ui/{page_name}")
                assert status == 200, page_name

            status, body, _ = await ui.post("/ui/logout", data={"csrf": "not-" + ui.csrf})
            assert status == 403 and "csrf_failed" in body
            status, _, headers = await ui.post("/ui/logout", data={"csrf": ui.csrf})
            assert (status, headers["Location"]) == (303, "/ui/login")
            assert await client.exists(stored) == 0
        finally:
            await client.aclose()
        status, _, headers = await ui.get("/ui/overview")
        assert (status, headers["Location"]) == (303, "/ui/login")


async def test_unknown_and_expired_sessions_get_the_login_page(
    gw: GatewayHarness, redis_url: str
) -> None:
    async with DashboardClient(gw) as ui:
        ui.session.cookie_jar.update_cookies({"llmr_session": "made-up-token"})
        status, _, headers = await ui.get("/ui/keys")
        assert (status, headers["Location"]) == (303, "/ui/login")
        status, body, _ = await ui.get("/ui/api/keys")
        assert status == 401 and "login_required" in body

    async with DashboardClient(gw) as ui:
        await ui.login()
        token = next(c.value for c in ui.session.cookie_jar if c.key == "llmr_session")
        stored = gw.gateway.store.keys.ui_session(hashlib.sha256(token.encode()).hexdigest())
        client = aioredis.from_url(redis_url, decode_responses=True)
        try:
            await client.pexpire(stored, 1)  # the session's TTL runs out
            for _ in range(200):
                if not await client.exists(stored):
                    break
                await asyncio.sleep(0.01)
            assert not await client.exists(stored)
        finally:
            await client.aclose()
        status, _, headers = await ui.get("/ui/overview")
        assert (status, headers["Location"]) == (303, "/ui/login")
        status, body, _ = await ui.get("/ui/api/overview")
        assert status == 401 and "login_required" in body


async def test_a_session_made_by_one_worker_is_accepted_by_another(gw: GatewayHarness) -> None:
    other = await GatewayServer(gw.build_gateway()).start()  # same Redis and prefix: a 2nd worker
    try:
        async with DashboardClient(gw) as ui:
            await ui.login()
            ui.harness = SimpleNamespace(url=other.url, master=gw.master)  # type: ignore[assignment]
            status, body, _ = await ui.get("/ui/api/keys")
            assert status == 200 and "pool-a" in body
            status, body, _ = await ui.act("pool-b", "cooldown", {"seconds": 30, "reason": "w2"})
            assert status == 200, body
        _, key = await gw.admin("GET", "/keys/pool-b")
        assert (key["data"]["state"], key["data"]["reason"]) == ("cooldown", "w2")
    finally:
        await other.stop()


async def test_actions_need_the_session_csrf_token(gw: GatewayHarness) -> None:
    async with DashboardClient(gw) as ui:
        await ui.login()
        for csrf in ("", "forged-token"):
            status, body, _ = await ui.act("pool-a", "disable", csrf=csrf)
            assert status == 403 and '"csrf_failed"' in body, body
        _, key = await gw.admin("GET", "/keys/pool-a")
        assert key["data"]["state"] == "healthy", "a refused action changes nothing"
        status, body, _ = await ui.act("pool-a", "disable")
        assert status == 200, body
        _, key = await gw.admin("GET", "/keys/pool-a")
        assert key["data"]["state"] == "disabled"

    async with DashboardClient(gw) as other:  # another session's token is not this one's
        await other.login()
        theirs = other.csrf
    async with DashboardClient(gw) as ui:
        await ui.login()
        status, body, _ = await ui.act("pool-a", "enable", csrf=theirs)
        assert status == 403 and "csrf_failed" in body
        status, body, _ = await ui.post(
            "/ui/api/keys/pool-a/enable",
            json={},
            headers={"X-CSRF-Token": ui.csrf, "Origin": "http://evil.example"},
        )
        assert status == 403 and "csrf_failed" in body


async def test_the_read_only_token_sees_everything_and_acts_on_nothing(
    make_gateway: GatewayFactory,
) -> None:
    gw = await make_gateway(DASHBOARD_TOKEN="read-only-dashboard-token-0123456789")
    async with DashboardClient(gw) as ui:
        status, _, _ = await ui.login("read-only-dashboard-token-0123456789")
        assert status == 303
        status, page, _ = await ui.get("/ui/keys")
        assert status == 200 and 'data-key-id="pool-a"' in page
        assert "data-action=" not in page and "confirm-dialog" not in page
        for action in ("cooldown", "disable", "clear-cooldown", "enable"):
            status, body, _ = await ui.act("pool-a", action, {"seconds": 60})
            assert status == 403 and '"read_only"' in body, body
        _, key = await gw.admin("GET", "/keys/pool-a")
        assert key["data"]["state"] == "healthy"
        status, _, _ = await ui.post("/ui/login", data={"token": gw.master + "x"})
        assert status == 401


async def test_without_a_master_key_the_dashboard_is_off(make_gateway: GatewayFactory) -> None:
    gw = await make_gateway(ROUTER_MASTER_KEY=None, DASHBOARD_TOKEN="a-dashboard-token-1234")
    async with DashboardClient(gw) as ui:
        for path in ("/ui", "/ui/login", "/ui/overview", "/ui/api/keys", "/ui/static/app.js"):
            status, _, _ = await ui.get(path)
            assert status == 404, path
        status, _, _ = await ui.post("/ui/login", data={"token": "a-dashboard-token-1234"})
        assert status == 404


async def test_the_cookie_is_secure_over_tls(gw: GatewayHarness, tmp_path: Path) -> None:
    ca = trustme.CA()
    server_context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert("127.0.0.1").configure_cert(server_context)
    client_context = ssl.create_default_context()
    ca.configure_trust(client_context)
    runner = web.AppRunner(build_app(gw.build_gateway()))
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0, ssl_context=server_context)
    await site.start()
    port = runner.addresses[0][1]
    try:
        async with (
            aiohttp.ClientSession() as session,
            session.post(
                f"https://127.0.0.1:{port}/ui/login",
                data={"token": gw.master},
                ssl=client_context,
                allow_redirects=False,
            ) as response,
        ):
            assert response.status == 303
            morsel = _cookie(dict(response.headers))["llmr_session"]
            assert morsel["secure"] and morsel["httponly"] and morsel["samesite"] == "Strict"
    finally:
        await runner.cleanup()


async def test_a_known_session_keeps_the_dashboard_while_redis_is_down(
    make_gateway: GatewayFactory,
) -> None:
    redis = RedisServer().start()
    try:
        gw = await make_gateway(REDIS_URL=redis.url, REDIS_TIMEOUT_SECONDS=0.5)
        async with DashboardClient(gw) as ui, DashboardClient(gw) as stranger:
            await ui.login()
            redis.stop()
            status, body, _ = await ui.get("/ui/api/overview")
            assert status == 200, body
            overview = json.loads(body)
            assert overview["usage_error"] and "unreachable" in overview["usage_error"]
            assert overview["keys"]["total"] == 2 and overview["cost_today"] is None
            status, page, _ = await ui.get("/ui/overview")
            assert status == 200 and 'id="usage-error" role="alert">' in page
            status, page, _ = await ui.get("/ui/keys")
            assert status == 200 and 'data-key-id="pool-a"' in page
            stranger.session.cookie_jar.update_cookies({"llmr_session": "never-seen-here"})
            status, _, headers = await stranger.get("/ui/keys")
            assert (status, headers["Location"]) == (303, "/ui/login")
    finally:
        redis.stop()
