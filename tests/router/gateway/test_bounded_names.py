"""Thousands of random model names through the gateway (issue 13, item 5): state stays flat.

Every name matches a key's ``gpt-4o*`` binding, so each is answered (by the simulator, under the
caller's exact name). The pool's Redis keys and hashes, the process's caches and the series of
``/metrics`` stay as they were after the first names.
"""

from __future__ import annotations

import asyncio
import gc
import secrets
import tracemalloc
from collections import Counter
from pathlib import Path
from typing import Any

import aiohttp

from keys.engine import SERVING_CACHE_MODELS
from router.gateway.models import KNOWN_LIMIT
from tests.keys.test_bounded_names import pool_footprint
from tests.router.gateway.conftest import GatewayFactory
from tests.router.gateway.harness import GatewayHarness, PoolKey

BATCH = 25
ROOT = Path(__file__).resolve().parents[3]


def pattern_pool() -> list[PoolKey]:
    return [
        PoolKey("pool-a", rpm=None, models=["gpt-4o-mini", "gpt-4o*"]),
        PoolKey("pool-b", rpm=None, models=["gpt-4o*"]),
    ]


async def chat(session: aiohttp.ClientSession, gw: GatewayHarness, token: str, model: str) -> Any:
    body = {"model": model, "messages": [{"role": "user", "content": "hi"}], "max_tokens": 5}
    headers = {"Authorization": f"Bearer {token}"}
    async with session.post(gw.base_url + "/chat/completions", json=body, headers=headers) as r:
        answer = await r.json()
        assert r.status == 200, answer
        assert answer["model"] == model  # the provider was called with the caller's own name
        return answer


async def send_names(
    session: aiohttp.ClientSession, gw: GatewayHarness, token: str, count: int
) -> None:
    for start in range(0, count, BATCH):
        names = ["gpt-4o-" + secrets.token_hex(6) for _ in range(min(BATCH, count - start))]
        await asyncio.gather(*(chat(session, gw, token, name) for name in names))


def router_memory() -> int:
    """Bytes still held that the project's code allocated, the in-process simulator's left out
    (it counts per model, as the test's upstream)."""
    gc.collect()
    snapshot = tracemalloc.take_snapshot().filter_traces(
        [tracemalloc.Filter(True, f"{ROOT}/*"), tracemalloc.Filter(False, "*/router/simulator/*")]
    )
    return sum(stat.size for stat in snapshot.statistics("filename"))


async def metric_series(gw: GatewayHarness) -> list[str]:
    status, text, _ = await gw.request("GET", "/metrics")
    assert status == 200
    return [line.rsplit(" ", 1)[0] for line in text.splitlines() if not line.startswith("#")]


async def rollups_are_capped(gw: GatewayHarness) -> None:
    """Every minute's usage rollup holds at most USAGE_ROLLUP_MAX_NAMES names per dimension
    (plus ``~other``), whatever names the clients chose."""
    store = gw.gateway.store
    cap = gw.settings.USAGE_ROLLUP_MAX_NAMES
    minutes = [k async for k in store.client.scan_iter(match=store.keys.pool_tag + ":usage:m:*")]
    assert minutes
    others = 0
    for key in minutes:
        fields = await store.client.hkeys(key)
        per_dim = Counter(f.split("|", 1)[0] for f in fields if not f.startswith("#"))
        assert all(count <= cap + 1 for count in per_dim.values()), per_dim
        others += "model|~other" in fields
    assert others, "the names should have overflowed the cap"


async def test_thousands_of_names_leave_redis_memory_and_metrics_flat(
    make_gateway: GatewayFactory,
) -> None:
    gw = await make_gateway(pool=pattern_pool(), USAGE_ROLLUP_MAX_NAMES=100)
    token = await gw.vkey(name="names")
    engine = gw.gateway.router.key_manager.engine
    tracemalloc.start()
    try:
        async with aiohttp.ClientSession() as session:
            await chat(session, gw, token, "gpt-4o-mini")
            await send_names(session, gw, token, 10)
            await metric_series(gw)  # the first scrape adds the series of /metrics itself
            footprint, series = await pool_footprint(engine), await metric_series(gw)
            await send_names(session, gw, token, 990)
            at_1000 = router_memory()
            await send_names(session, gw, token, 2000)
            at_3000 = router_memory()
            assert await pool_footprint(engine) == footprint
            assert sorted(await metric_series(gw)) == sorted(series)
            await rollups_are_capped(gw)
    finally:
        tracemalloc.stop()
    labels = {line for line in series if line.startswith("llm_router_requests_total")}
    assert labels == {
        'llm_router_requests_total{model="gpt-4o-mini",outcome="success",provider="openai"}',
        'llm_router_requests_total{model="gpt-4o*",outcome="success",provider="openai"}',
    }
    for cache in (engine._serving, engine._index, engine._bindings):
        assert len(cache) <= SERVING_CACHE_MODELS
    assert len(engine._layouts) == 2
    assert len(gw.gateway.router.key_manager.pool.strategies) <= SERVING_CACHE_MODELS
    assert len(gw.gateway.catalog._known) <= KNOWN_LIMIT
    # the catalog's bounded memory of names it was asked for (KNOWN_LIMIT) is still filling up
    grown = at_3000 - at_1000
    assert grown < 1024 * 1024, f"{grown} bytes more held after 2,000 more names"
