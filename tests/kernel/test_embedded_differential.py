"""The embedded store against real Redis: random sequences of the key-pool scripts (sync, reserve
with every strategy, settle with every outcome, release, health actions) run with the same
arguments on a real redis-server and on the embedded store (kernel/embedded/) must answer the same
replies and leave the same keyspace (every key's type, value and whether it has a TTL; stream
entries by content, their IDs being the servers' clocks).

Each step gives its time explicitly (the scripts' ``now``), so both backends see the same clock.
"""

from __future__ import annotations

import asyncio
import uuid
from dataclasses import dataclass
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from kernel.embedded_store import private_client
from kernel.redis_keys import RedisKeys
from kernel.settings import Settings
from kernel.store import Store, create_store
from tests.lua.pool import (
    GROUP,
    T0,
    Key,
    health_action,
    limits,
    release_one,
    reserve_one,
    settle_one,
    sync,
)

STRATEGIES = ["capacity", "round_robin", "least_used", "random", "weighted"]
OUTCOMES = ["success", "neutral", "rate_limited", "auth", "transient", "unreachable", "cancelled"]
ACTIONS = ["cooldown", "clear", "disable", "enable", "reset"]


@dataclass
class Step:
    kind: str  # reserve | settle | release | health | wait
    tokens: int
    strategy: str
    pick: int
    outcome: str
    actual: int | None
    retry_after: float | None
    seconds: float


steps = st.builds(
    Step,
    kind=st.sampled_from(["reserve"] * 4 + ["settle"] * 3 + ["release", "health", "wait"]),
    tokens=st.integers(0, 3000),
    strategy=st.sampled_from(STRATEGIES),
    pick=st.integers(0, 1000),
    outcome=st.sampled_from(OUTCOMES),
    actual=st.one_of(st.none(), st.integers(0, 5000)),
    retry_after=st.one_of(st.none(), st.sampled_from([0.5, 2.0, 30.0, 120.0])),
    seconds=st.sampled_from([0.0, 0.25, 1.0, 7.5, 30.0, 61.0, 3600.0, 86400.0]),
)
pools = st.lists(
    st.tuples(st.integers(0, 1), st.sampled_from([0.5, 1.0, 3.0])), min_size=1, max_size=4
)
limit_sets = st.tuples(
    st.sampled_from([0, 2, 5, 60]), st.sampled_from([0, 1000, 5000]), st.sampled_from([0, 3, 50])
)


async def snapshot(store: Store, prefix: str) -> dict[str, Any]:
    """Every key under ``prefix``: (type, value, has a TTL)."""
    client = store.client
    out: dict[str, Any] = {}
    for key in sorted([k async for k in client.scan_iter(match="{" + prefix + "}*", count=1000)]):
        kind = await client.type(key)
        value: Any
        if kind == "hash":
            value = await client.hgetall(key)
        elif kind == "zset":
            value = await client.zrange(key, 0, -1, withscores=True)
        elif kind == "string":
            value = await client.get(key)
        elif kind == "list":
            value = await client.lrange(key, 0, -1)
        elif kind == "set":
            value = sorted(await client.smembers(key))
        else:
            value = [fields for _, fields in await client.xrange(key)]
        out[key] = (kind, value, await client.pttl(key) > 0)
    return out


async def apply(store: Store, step: Step, i: int, now: float, flight: list[str]) -> Any:
    if step.kind == "reserve":
        reply = await reserve_one(
            store,
            f"r{i}",
            step.tokens,
            now=now,
            strategy=step.strategy,
            tiers=(0, 1),
        )
        return reply
    if step.kind == "health":
        return await health_action(
            store, f"k{step.pick % 4}", ACTIONS[step.pick % 5], seconds=step.seconds, now=now
        )
    if not flight:
        return None
    rid = flight[step.pick % len(flight)]
    if step.kind == "release":
        return await release_one(store, rid, now=now)
    return await settle_one(
        store, rid, step.actual, step.outcome, now=now, retry_after=step.retry_after
    )


async def scenario(url: str, pool: list[tuple[int, float]], lim: Any, plan: list[Step]) -> None:
    prefix = f"d{uuid.uuid4().hex[:10]}"
    redis = create_store(Settings.from_env({}, REDIS_URL=url, REDIS_KEY_PREFIX=prefix))
    embedded = Store(client=private_client(), kind="embedded", keys=RedisKeys(prefix))
    keys = [Key(f"k{n}", tier=tier, weight=weight) for n, (tier, weight) in enumerate(pool)]
    try:
        for store in (redis, embedded):
            await sync(store, keys, {GROUP: limits(*lim)}, tiers=(0, 1))
        flight: list[str] = []
        now = T0
        for i, step in enumerate(plan):
            now += step.seconds if step.kind == "wait" else 0.001
            replies = [await apply(s, step, i, now, list(flight)) for s in (redis, embedded)]
            assert replies[0] == replies[1], (i, step)
            if step.kind == "reserve" and type(replies[0]).__name__ == "Reserved":
                flight.append(f"r{i}")
            elif step.kind in ("settle", "release") and flight:
                flight.remove(flight[step.pick % len(flight)])
        assert await snapshot(redis, prefix) == await snapshot(embedded, prefix)
    finally:
        found = [k async for k in redis.client.scan_iter(match="{" + prefix + "}*", count=1000)]
        if found:
            await redis.call(redis.client.delete(*found))
        await redis.close()


@settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(pool=pools, lim=limit_sets, plan=st.lists(steps, min_size=1, max_size=40))
def test_the_scripts_answer_and_store_the_same_on_redis_and_the_embedded_store(
    redis_url: str, pool: list[tuple[int, float]], lim: Any, plan: list[Step]
) -> None:
    asyncio.run(scenario(redis_url, pool, lim, plan))


@pytest.mark.parametrize("outcome", OUTCOMES)
async def test_every_settle_outcome_leaves_the_same_keyspace(redis_url: str, outcome: str) -> None:
    plan = [
        Step("reserve", 10, "capacity", 0, outcome, None, None, 0.0),
        Step("settle", 0, "capacity", 0, outcome, 25, 2.0, 0.0),
        Step("wait", 0, "capacity", 0, outcome, None, None, 61.0),
        Step("reserve", 10, "round_robin", 0, outcome, None, None, 0.0),
    ]
    await scenario(redis_url, [(0, 1.0), (1, 1.0)], (5, 1000, 3), plan)
