"""The dashboard over HTTP with traffic through the gateway (real Redis, the simulator): what each
page and JSON endpoint shows, that none of them holds a secret, and that an action changes the key
as the admin API and the router's next selections see it."""

from __future__ import annotations

import json
import re
from typing import Any

import pytest

from tests.helpers import both_pool_shards
from tests.router.dashboard.browser import APIS, PAGES, DashboardClient
from tests.router.gateway.conftest import GatewayFactory
from tests.router.gateway.harness import MODEL, GatewayHarness, PoolKey, chat_body

#: The same with the pool in one slot and in three shards (POOL_SHARDS).
pytestmark = [pytest.mark.integration, both_pool_shards]
PROMPT = "the-prompt-text-never-shown-4242"
READ_TOKEN = "dashboard-read-token-5f1e0c7a9b"


async def _traffic(gw: GatewayHarness, calls: int, user: str = "alice") -> str:
    vkey = await gw.vkey(name="dash", user_id=user)
    client = gw.client(vkey)
    try:
        for _ in range(calls):
            await client.chat.completions.create(**chat_body(PROMPT))
    finally:
        await client.close()
    return vkey


async def _json(ui: DashboardClient, path: str) -> Any:
    status, body, _ = await ui.get(path)
    assert status == 200, (path, body)
    return json.loads(body)


def _assert_no_secret(text: str, secrets: list[str], where: str) -> None:
    for secret in secrets:
        assert secret not in text, f"a secret reached {where}"


async def test_no_page_or_answer_holds_a_secret(make_gateway: GatewayFactory) -> None:
    gw = await make_gateway(DASHBOARD_TOKEN=READ_TOKEN)
    vkey = await _traffic(gw, 4)
    secrets = [k.secret for k in gw.pool] + [gw.master, vkey, READ_TOKEN, PROMPT]
    status, _ = await gw.admin("PUT", "/budgets/user/alice", {"limit_usd": 5, "period": "day"})
    assert status == 200
    async with DashboardClient(gw) as ui:
        status, login_page, headers = await ui.get("/ui/login")
        _assert_no_secret(login_page + json.dumps(headers), secrets, "/ui/login")
        await ui.login()
        records = (await _json(ui, "/ui/api/requests"))["requests"]
        seen: list[tuple[str, str]] = []
        paths = [f"/ui/{p}" for p in PAGES] + [f"/ui/api/{p}" for p in APIS]
        paths += [f"/ui/requests/{records[0]['request_id']}", "/ui/spend?by=vkey&since=1h"]
        paths += ["/ui/api/spend?by=user", "/ui/static/app.js", "/ui/static/app.css"]
        for path in paths:
            status, body, headers = await ui.get(path)
            assert status == 200, (path, body)
            seen.append((path, body + json.dumps(headers)))
        status, body, headers = await ui.act("pool-a", "cooldown", {"seconds": 5, "reason": "t"})
        assert status == 200
        seen.append(("cooldown", body + json.dumps(headers)))
    for path, text in seen:
        _assert_no_secret(text, secrets, path)
        if path.startswith("/ui/") and not path.startswith(("/ui/api", "/ui/static")):
            scripts = re.findall(r"<script[^>]*>", text)
            assert scripts == ['<script src="/ui/static/app.js" defer>'], path
            assert " style=" not in text and " on" + "click=" not in text, path
            assert "default-src 'self'" in text, "the CSP header is on every page"


async def test_the_pages_show_the_pool_and_its_traffic(make_gateway: GatewayFactory) -> None:
    pool = [PoolKey("pool-a", tags={"team": "red"}), PoolKey("pool-b", rpm=300)]
    gw = await make_gateway(pool=pool, routing={"aliases": {"fast": [MODEL]}})
    await _traffic(gw, 5)
    async with DashboardClient(gw) as ui:
        await ui.login()
        status, page, _ = await ui.get("/ui/keys")
        for key in gw.pool:
            assert f'data-key-id="{key.key_id}"' in page
        assert 'data-tags="team=red"' in page and 'id="confirm-dialog"' in page
        assert 'data-field="rpm" role="progressbar"' in page and 'aria-valuemax="300"' in page
        keys = {k["key_id"]: k for k in (await _json(ui, "/ui/api/keys"))["keys"]}
        assert sum(k["requests"] for k in keys.values()) == 5
        assert keys["pool-b"]["rpm"]["limit"] == 300 and keys["pool-a"]["state"] == "healthy"
        # where the limits come from: configured, and also reported by the provider ("both")
        # once the key has answered a call
        sources = [keys[k.key_id]["limits_source"] for k in gw.pool]
        assert "both" in sources and set(sources) <= {"configured", "both"}
        for key in gw.pool:
            masked = keys[key.key_id]["masked"]
            assert "..." in masked and masked[:6] == key.secret[:6] and key.secret not in masked

        overview = await _json(ui, "/ui/api/overview")
        assert overview["outcomes"] == {"success": 5}
        assert overview["requests_per_second"] > 0 and overview["rpm_capacity"] == 900
        assert overview["capacity_now"] > 0 and overview["latency_p50_ms"] is not None
        assert sum(p["requests"] for p in overview["series"]) == 5
        status, page, _ = await ui.get("/ui/overview")
        assert 'tr data-outcome="success"' in page and 'id="capacity-now"' in page

        models = {m["model"]: m for m in (await _json(ui, "/ui/api/models"))["models"]}
        assert models[MODEL]["rpm"] == 900 and models[MODEL]["aliases"] == ["fast"]
        assert {k["key_id"] for k in models[MODEL]["keys"]} == {"pool-a", "pool-b"}
        assert models["fast"]["chain"] == [MODEL]
        status, page, _ = await ui.get("/ui/models")
        assert f'data-model="{MODEL}"' in page

        spend = await _json(ui, "/ui/api/spend?by=user&since=1h")
        assert [(r["name"], r["requests"]) for r in spend["rows"]] == [("alice", 5)]
        status, body, _ = await ui.get("/ui/api/spend?by=bogus")
        assert status == 400 and '"by"' in body

        listing = (await _json(ui, "/ui/api/requests?limit=3"))["requests"]
        assert len(listing) == 3 and listing[0]["ts"] >= listing[-1]["ts"]
        assert all(r["outcome"] == "success" and "prompt" not in r for r in listing)
        one = listing[0]
        chosen = (await _json(ui, f"/ui/api/requests?key_id={one['key_id']}"))["requests"]
        assert chosen and {r["key_id"] for r in chosen} == {one["key_id"]}
        none = (await _json(ui, "/ui/api/requests?outcome=rate_limited"))["requests"]
        assert none == []
        status, page, _ = await ui.get(f"/ui/requests/{one['request_id']}")
        assert status == 200 and 'id="request-detail"' in page and 'data-field="attempts"' in page
        status, body, _ = await ui.get("/ui/api/requests/no-such-request")
        assert status == 404 and "request_not_found" in body


async def _served_by(gw: GatewayHarness, calls: int) -> set[str]:
    before = {
        r["request_id"] for r in (await gw.admin("GET", "/usage/records"))[1]["data"]["records"]
    }
    await _traffic(gw, calls, user="bob")
    records = (await gw.admin("GET", "/usage/records"))[1]["data"]["records"]
    return {r["key_id"] for r in records if r["request_id"] not in before}


async def test_actions_change_the_key_for_the_admin_api_and_the_router(gw: GatewayHarness) -> None:
    async with DashboardClient(gw) as ui:
        await ui.login()
        status, body, _ = await ui.act("pool-a", "cooldown", {"seconds": 300, "reason": "maint"})
        assert status == 200, body
        row = json.loads(body)["data"]
        assert (row["state"], row["reason"]) == ("cooldown", "maint") and row["until_ts"]
        _, key = await gw.admin("GET", "/keys/pool-a")
        assert (key["data"]["state"], key["data"]["reason"]) == ("cooldown", "maint")
        assert await _served_by(gw, 4) == {"pool-b"}, "the next selections avoid the cooled key"
        status, page, _ = await ui.get("/ui/keys")
        assert re.search(r'data-field="until" data-until="[0-9.]+">[45] min \d+ s left<', page)

        status, body, _ = await ui.act("pool-a", "clear-cooldown")
        assert status == 200 and json.loads(body)["data"]["state"] == "healthy"
        _, key = await gw.admin("GET", "/keys/pool-a")
        assert key["data"]["state"] == "healthy"

        status, body, _ = await ui.act("pool-b", "disable")
        assert status == 200 and json.loads(body)["data"]["state"] == "disabled"
        _, key = await gw.admin("GET", "/keys/pool-b")
        assert (key["data"]["state"], key["data"]["active"]) == ("disabled", False)
        assert await _served_by(gw, 3) == {"pool-a"}
        status, body, _ = await ui.act("pool-b", "enable")
        assert status == 200 and json.loads(body)["data"]["state"] == "healthy"

        status, body, _ = await ui.act("pool-a", "cooldown", {"seconds": -5})
        assert status == 400 and json.loads(body)["error"]["param"] == "seconds"
        status, body, _ = await ui.act("no-such-key", "disable")
        assert status == 404 and "key_not_found" in body


async def test_markup_in_the_pool_is_shown_as_text(gw: GatewayHarness) -> None:
    hostile = '"><script>alert(1)</script><img src=x onerror=alert(2)>'
    status, body = await gw.admin("PATCH", "/keys/pool-a", {"tags": {"note": hostile}})
    assert status == 200, body
    status, body = await gw.admin(
        "POST", "/keys/pool-b/cooldown", {"seconds": 60, "reason": hostile}
    )
    assert status == 200, body
    async with DashboardClient(gw) as ui:
        await ui.login()
        status, page, _ = await ui.get("/ui/keys")
        assert status == 200
        assert "<script>alert" not in page and "<img src=x" not in page
        assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page  # the reason, escaped
        assert 'data-tags="note=&quot;&gt;&lt;script&gt;' in page  # the tag, escaped
        keys = {k["key_id"]: k for k in (await _json(ui, "/ui/api/keys"))["keys"]}
        assert keys["pool-b"]["reason"] == hostile  # JSON carries text; app.js sets textContent
