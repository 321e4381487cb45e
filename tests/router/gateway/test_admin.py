"""The admin API: master key only, document 001's statistics, live key management."""

from __future__ import annotations

import json
import re

import pytest

from router.gateway.openapi import build_openapi
from router.simulator import SimKey
from tests.helpers import both_pool_shards
from tests.router.gateway.conftest import GatewayFactory
from tests.router.gateway.harness import (
    MODEL,
    GatewayHarness,
    PoolKey,
    assert_error_shape,
    chat_body,
    env_name,
)

#: The same with the pool in one slot and in three shards (POOL_SHARDS).
pytestmark = [pytest.mark.integration, both_pool_shards]
MASKED = re.compile(r"^sk-proj-[A-Za-z0-9_-]{3}\.\.\.[A-Za-z0-9_-]{4}$")


def admin_operations() -> list[tuple[str, str]]:
    """(method, concrete path) of every admin route in the OpenAPI document."""
    out = []
    for path, item in build_openapi()["paths"].items():
        if path.startswith("/api/v1/admin"):
            concrete = path.replace("{key_id}", "pool-a").replace("{vkey_id}", "vk-x")
            concrete = concrete.replace("{scope}", "user").replace("{id}", "alice")
            out.extend((method.upper(), concrete) for method in item)
    return out


async def served_by(gw: GatewayHarness, key: str, n: int) -> dict[str, int]:
    """Send n requests; answer how many each pool key admitted (from the simulator)."""
    assert gw.sim is not None
    gw.sim.reset_stats()
    for _ in range(n):
        status, _, _ = await gw.request("POST", "/v1/chat/completions", token=key, body=chat_body())
        assert status == 200
    return {
        key_id: models[MODEL]["admitted_requests"]
        for key_id, models in gw.sim.stats()["keys"].items()
    }


async def test_admin_routes_refuse_anything_but_the_master_key(gw: GatewayHarness) -> None:
    vkey = await gw.vkey(name="not-admin")
    operations = admin_operations()
    assert len(operations) >= 16
    for method, path in operations:
        for token in (None, vkey, gw.master + "x", "Bearer"):
            status, body, _ = await gw.request(method, path, token=token, body={})
            assert status == 401, (method, path, token)
            assert assert_error_shape(body)["type"] == "authentication_error"
    # nothing was changed by the refused calls
    status, keys = await gw.admin("GET", "/keys")
    assert status == 200 and {k["key_id"] for k in keys["data"]} == {"pool-a", "pool-b"}
    assert all(k["state"] == "healthy" and k["active"] for k in keys["data"])


async def test_admin_api_is_off_without_a_master_key(make_gateway: GatewayFactory) -> None:
    gw = await make_gateway(ROUTER_MASTER_KEY=None)
    status, body, _ = await gw.request("GET", "/api/v1/admin/keys", token="anything")
    assert status == 403 and assert_error_shape(body)["code"] == "admin_disabled"


async def test_openai_stats_has_document_001s_shape(gw: GatewayHarness) -> None:
    key = await gw.vkey()
    await served_by(gw, key, 3)
    status, body = await gw.admin("GET", "/openai/stats")
    assert status == 200 and body["success"] is True
    data = body["data"]
    assert data["total_keys"] == 2 and data["healthy_keys"] == 2
    assert isinstance(data["rotation_strategy"], str)
    assert len(data["keys"]) == 2
    for masked, entry in data["keys"].items():
        assert MASKED.match(masked), masked
        assert {
            "requests",
            "successes",
            "failures",
            "circuit_open",
            "rate_limited",
            "last_used",
        } <= set(entry)
    assert sum(e["successes"] for e in data["keys"].values()) == 3
    text = json.dumps(body)
    assert not any(k.secret in text for k in gw.pool)


async def test_key_status_is_masked(gw: GatewayHarness) -> None:
    await served_by(gw, await gw.vkey(), 2)
    status, body = await gw.admin("GET", "/keys/pool-a")
    assert status == 200 and body["data"]["key_id"] == "pool-a"
    assert MASKED.match(body["data"]["masked_key"])
    assert body["data"]["rpm_usage"]["limit"] == 600
    status, listing = await gw.admin("GET", "/keys")
    text = json.dumps(listing)
    assert not any(k.secret in text for k in gw.pool)
    status, body = await gw.admin("GET", "/keys/nope")
    assert status == 404 and assert_error_shape(body)["code"] == "key_not_found"


async def test_cooldown_set_and_cleared(gw: GatewayHarness) -> None:
    key = await gw.vkey()
    status, body = await gw.admin(
        "POST", "/keys/pool-a/cooldown", {"seconds": 300, "reason": "maintenance"}
    )
    assert status == 200 and body["data"]["state"] == "cooldown"
    assert body["data"]["reason"] == "maintenance"
    assert await served_by(gw, key, 4) == {"pool-b": 4}
    status, body = await gw.admin("DELETE", "/keys/pool-a/cooldown")
    assert status == 200 and body["data"]["state"] == "healthy"
    assert (await served_by(gw, key, 4)).get("pool-a", 0) > 0
    status, body = await gw.admin("POST", "/keys/pool-a/cooldown", {"seconds": -1})
    assert status == 400 and assert_error_shape(body)["param"] == "seconds"


async def test_deactivate_activate_remove(gw: GatewayHarness) -> None:
    key = await gw.vkey()
    status, body = await gw.admin("POST", "/keys/pool-b/deactivate")
    assert status == 200 and body["data"]["active"] is False
    assert await served_by(gw, key, 3) == {"pool-a": 3}
    status, body = await gw.admin("POST", "/keys/pool-b/activate")
    assert status == 200 and body["data"]["active"] is True
    status, body = await gw.admin("DELETE", "/keys/pool-a")
    assert status == 200 and body["data"]["removed"] is True
    assert await served_by(gw, key, 3) == {"pool-b": 3}
    status, listing = await gw.admin("GET", "/keys")
    assert [k["key_id"] for k in listing["data"]] == ["pool-b"]


async def test_add_update_and_save_a_key(gw: GatewayHarness) -> None:
    assert gw.sim is not None
    new = PoolKey("pool-c", rpm=120)
    gw.sim.add_key(SimKey(key_id="pool-c", secret=new.secret, providers=["openai"], rpm=120))
    gw.environ[env_name("pool-c")] = new.secret  # its secret, from the env secret store
    entry = new.entry(gw.sim.base_url_for("openai"))
    status, body = await gw.admin("POST", "/keys", entry)
    assert status == 201 and body["data"]["key_id"] == "pool-c"
    status, body = await gw.admin("POST", "/keys", entry)
    assert status == 400 and assert_error_shape(body)["param"] == "key_id"  # already exists
    await gw.admin("POST", "/keys/pool-a/deactivate")
    await gw.admin("POST", "/keys/pool-b/deactivate")
    assert await served_by(gw, await gw.vkey(), 2) == {"pool-c": 2}

    status, body = await gw.admin("PATCH", "/keys/pool-c", {"rpm": 90})
    assert status == 200 and body["data"]["rpm_usage"]["limit"] == 90
    for change, field in (
        ({"rpm": "lots"}, "rpm"),
        ({"self": 1}, "self"),
        ({"key_id": "x"}, "key_id"),
    ):
        status, body = await gw.admin("PATCH", "/keys/pool-c", change)
        assert status == 400 and assert_error_shape(body)["param"] == field, change

    status, body = await gw.admin("POST", "/save")
    assert status == 200
    saved = json.loads((gw.tmp_path / "keys.json").read_text())
    assert {k["key_id"] for k in saved["keys"]} == {"pool-a", "pool-b", "pool-c"}
    assert new.secret not in json.dumps(saved)


async def test_a_literal_secret_is_refused(gw: GatewayHarness) -> None:
    entry = {
        "key_id": "leak",
        "provider": "openai",
        "model_name": MODEL,
        "api_key": gw.pool[0].secret,
    }
    status, body = await gw.admin("POST", "/keys", entry)
    assert status == 400
    assert gw.pool[0].secret not in json.dumps(body)


async def test_reload(gw: GatewayHarness) -> None:
    status, body = await gw.admin("POST", "/reload")
    assert status == 200 and body["data"] == {"keys": 2}
