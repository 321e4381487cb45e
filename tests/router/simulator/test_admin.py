"""The /_sim administration routes."""

from __future__ import annotations

import aiohttp
import pytest

from tests.router.simulator.conftest import OTHER, SECRET, SimFactory

pytestmark = pytest.mark.integration
BODY = {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "hello"}]}


async def chat(http: aiohttp.ClientSession, base: str, secret: str) -> int:
    async with http.post(
        base + "/v1/chat/completions", json=BODY, headers={"Authorization": f"Bearer {secret}"}
    ) as r:
        return r.status


async def test_keys_faults_stats_and_reset(
    make_sim: SimFactory, http: aiohttp.ClientSession
) -> None:
    sim = await make_sim()
    base = sim.base_url
    assert await chat(http, base, OTHER) == 401
    async with http.post(
        base + "/_sim/keys", json={"key_id": "new", "secret": OTHER, "rpm": 5}
    ) as r:
        assert r.status == 201 and (await r.json()) == {"key_id": "new"}
    assert await chat(http, base, OTHER) == 200
    async with http.post(base + "/_sim/keys/new/revoke") as r:
        assert r.status == 200
    assert await chat(http, base, OTHER) == 401
    async with http.post(base + "/_sim/keys/new/restore") as r:
        assert r.status == 200
    async with http.put(base + "/_sim/faults", json={"error_rate": 1.0}) as r:
        assert r.status == 200 and (await r.json())["error_rate"] == 1.0
    assert await chat(http, base, SECRET) == 500
    async with http.put(base + "/_sim/keys/k1/faults", json={"error_rate": 0.0}) as r:
        assert r.status == 200
    assert await chat(http, base, SECRET) == 200
    async with http.get(base + "/_sim/stats") as r:
        stats = await r.json()
    assert stats["keys"]["k1"]["gpt-4o-mini"]["faults"] == {"server_error": 1}
    assert stats["keys"]["new"]["gpt-4o-mini"]["auth_failures"] == 1
    async with http.get(base + "/_sim/requests", params={"key_id": "k1", "limit": "1"}) as r:
        records = await r.json()
    assert len(records) == 1 and records[0]["outcome"] == "admitted"
    async with http.post(base + "/_sim/reset") as r:
        assert r.status == 200
    async with http.get(base + "/_sim/stats") as r:
        assert (await r.json())["keys"] == {}


async def test_bad_admin_input_is_named(make_sim: SimFactory, http: aiohttp.ClientSession) -> None:
    sim = await make_sim()
    async with http.post(sim.base_url + "/_sim/keys", json={"secret": "short"}) as r:
        assert r.status == 400 and "secret" in (await r.json())["error"]
    async with http.put(sim.base_url + "/_sim/faults", json={"error_rate": 2}) as r:
        assert r.status == 400 and "error_rate" in (await r.json())["error"]
    async with http.post(sim.base_url + "/_sim/keys/nobody/revoke") as r:
        assert r.status == 404
    async with http.get(sim.base_url + "/_sim/health") as r:
        assert (await r.json()) == {"ok": True}
