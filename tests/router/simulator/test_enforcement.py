"""Limits hold under concurrent load, per key and per quota group, and the stats prove it."""

from __future__ import annotations

import asyncio

import aiohttp
import pytest

from router.simulator import SimKey
from tests.router.simulator.conftest import OTHER, SECRET, SimFactory

pytestmark = pytest.mark.integration
BODY = {
    "model": "gpt-4o-mini",
    "messages": [{"role": "user", "content": "hello"}],
    "max_tokens": 50,
}


async def fire(http: aiohttp.ClientSession, url: str, secrets: list[str], count: int) -> list[int]:
    async def one(i: int) -> int:
        headers = {"Authorization": f"Bearer {secrets[i % len(secrets)]}"}
        async with http.post(url, json=BODY, headers=headers) as response:
            await response.read()
            return response.status

    return list(await asyncio.gather(*(one(i) for i in range(count))))


async def test_strict_requests_limit_under_a_burst(
    make_sim: SimFactory, http: aiohttp.ClientSession
) -> None:
    sim = await make_sim(key={"rpm": 40, "strict": True})
    statuses = await fire(http, sim.base_url + "/v1/chat/completions", [SECRET], 150)
    assert statuses.count(200) == 40 and statuses.count(429) == 110
    usage = sim.usage("k1", "gpt-4o-mini")
    assert usage["admitted_requests"] == 40 and usage["max_window_requests"] == 40
    assert usage["rate_limited_by"] == {"requests": 110}


async def test_strict_tokens_limit_counts_settled_tokens(
    make_sim: SimFactory, http: aiohttp.ClientSession
) -> None:
    sim = await make_sim(key={"tpm": 1000, "strict": True})
    statuses = await fire(http, sim.base_url + "/v1/chat/completions", [SECRET], 60)
    usage = sim.usage("k1", "gpt-4o-mini")
    assert statuses.count(200) == usage["admitted_requests"] > 0
    assert usage["max_window_tokens"] <= 1000
    # each admission charged 8 prompt + 50 max_tokens = 58 and settled at 8 + 24 = 32
    assert usage["admitted_tokens"] == 32 * usage["admitted_requests"]


async def test_quota_group_shares_one_budget(
    make_sim: SimFactory, http: aiohttp.ClientSession
) -> None:
    keys = [
        SimKey(key_id=f"g{i}", secret=s, rpm=30, strict=True, quota_group="project-a")
        for i, s in enumerate((SECRET, OTHER))
    ]
    sim = await make_sim(keys=keys)
    statuses = await fire(http, sim.base_url + "/v1/chat/completions", [SECRET, OTHER], 100)
    assert statuses.count(200) == 30
    stats = sim.stats()
    group = stats["groups"]["project-a"]["gpt-4o-mini"]
    assert group["admitted_requests"] == 30 and group["max_window_requests"] == 30
    assert group["limits"] == {"rpm": 30, "tpm": None, "rpd": None}
    assert sum(stats["keys"][k]["gpt-4o-mini"]["admitted_requests"] for k in ("g0", "g1")) == 30


async def test_limits_are_per_model(make_sim: SimFactory, http: aiohttp.ClientSession) -> None:
    sim = await make_sim(key={"rpm": 1, "model_limits": {"gpt-4o": {"rpm": 2}}})
    url = sim.base_url + "/v1/chat/completions"
    headers = {"Authorization": f"Bearer {SECRET}"}
    results = []
    for model in ("gpt-4o-mini", "gpt-4o-mini", "gpt-4o", "gpt-4o", "gpt-4o"):
        async with http.post(url, json={**BODY, "model": model}, headers=headers) as response:
            results.append(response.status)
    assert results == [200, 429, 200, 200, 429]


async def test_refund_policy_is_configurable(
    make_sim: SimFactory, http: aiohttp.ClientSession
) -> None:
    for refund, expected in ((True, 32), (False, 58)):
        sim = await make_sim(key={"tpm": 10_000}, refund_unused=refund)
        await fire(http, sim.base_url + "/v1/chat/completions", [SECRET], 1)
        assert sim.usage("k1", "gpt-4o-mini")["admitted_tokens"] == expected


async def test_request_log_shows_earlier_turns(
    make_sim: SimFactory, http: aiohttp.ClientSession
) -> None:
    sim = await make_sim(request_log_size=2)
    turns = [
        {"role": "user", "content": "first"},
        {"role": "assistant", "content": "ok"},
        {"role": "user", "content": "second"},
    ]
    for count in (1, 3, 3):
        body = {**BODY, "messages": turns[:count]}
        async with http.post(
            sim.base_url + "/v1/chat/completions",
            json=body,
            headers={"Authorization": f"Bearer {SECRET}"},
        ) as response:
            assert response.status == 200
    log = sim.requests(key_id="k1")
    assert len(log) == 2
    entry = log[-1].as_dict()
    assert [m["content"] for m in entry["messages"]] == ["first", "ok", "second"]
    assert entry["key_fingerprint"] and SECRET not in str(entry) and entry["outcome"] == "admitted"
